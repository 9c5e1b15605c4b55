"""How a setting is declared, and what is derived from the declaration.

A setting is one field of :class:`ticketing.config.Settings`, declared with :func:`setting`:
its name gives the variable (``TICKETING_`` + the name in capitals), its annotation the type
(``int``, ``float``, ``str``, :class:`Url` or :class:`Secret`), and the declaration the
default, the bounds and the doc. Reading the environment, the list of variables and the
README's table are all derived from it, so a default is written once.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")

PREFIX = "TICKETING_"
_SPEC = "ticketing.setting"


class ConfigError(ValueError):
    """A TICKETING_* variable has a value we cannot use."""


class Secret(str):
    """A value that must not be shown: a ``str`` wherever it is used (signing keys, API
    keys in headers), but its ``repr`` is masked, so a Settings object in a log line, an
    assertion or a traceback does not print it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('********')"


class Url(str):
    """A URL that may carry a password (PostgreSQL, Redis, RabbitMQ), or several separated
    by spaces: a ``str`` wherever it is used, but its ``repr`` masks every password."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(" ".join(_masked(url) for url in self.split(" ")))


def _masked(url: str) -> str:
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if not (at and colon):
        return url
    return urlunsplit(parts._replace(netloc=f"{user}:********@{host}"))


@dataclass(frozen=True, slots=True)
class Spec:
    doc: str
    minimum: int | None = None
    choices: tuple[str, ...] = ()
    # For a format of its own: (raw value, variable name) -> value, raising ConfigError.
    parse: Callable[[str, str], Any] | None = None
    # A Secret's development values published with the project besides its default (the
    # compose dev override's): as public as the default, so refused in prod like it. For a
    # Url: the published passwords (a server's default login, the compose dev override's).
    shipped: tuple[str, ...] = ()


def setting(
    default: T,
    doc: str,
    *,
    minimum: int | None = None,
    choices: tuple[str, ...] = (),
    parse: Callable[[str, str], T] | None = None,
    shipped: tuple[str, ...] = (),
) -> T:
    """A Settings field: its default, what it means (a line of the README's table), the
    least value an int may take, the values a str may take, a parser of its own, or a
    Secret's development values (a Url's passwords) shipped with the project, refused in
    prod."""
    spec = Spec(doc, minimum, choices, parse, shipped)
    return field(default=default, metadata={_SPEC: spec})


@dataclass(frozen=True, slots=True)
class Declared:
    attribute: str
    variable: str
    type: type
    default: Any
    spec: Spec

    def read(self, env: Mapping[str, str]) -> Any:
        """This setting's value in ``env``: the default when unset or empty."""
        raw = env.get(self.variable)
        if raw is None or raw == "":
            return self.default
        if self.spec.parse is not None:
            value = self.spec.parse(raw, self.variable)
        elif self.type is int:
            value = _number(int, "an integer", raw, self.variable)
        elif self.type is float:
            value = _number(float, "a number", raw, self.variable)
        else:
            value = self.type(raw)
        if self.spec.choices and value not in self.spec.choices:
            raise ConfigError(f"{self.variable} must be {either(self.spec.choices)}, got {value}")
        if self.least is not None and value < self.least:
            raise ConfigError(f"{self.variable} must be >= {self.least}, got {value}")
        return value

    @property
    def least(self) -> int | None:
        """The smallest value accepted: an int is never negative unless declared so."""
        if self.spec.minimum is None and self.type is int:
            return 0
        return self.spec.minimum

    @property
    def known_values(self) -> frozenset[str]:
        """The values anyone can read in this repository: the default and the shipped ones."""
        return frozenset({str(self.default), *self.spec.shipped})

    @property
    def shown_default(self) -> str:
        """The default as the README shows it: never a secret's value."""
        if self.type is Secret:
            return "a development secret"
        return f"`{self.default}`" if self.default != "" else "empty"


_declared: dict[type, tuple[Declared, ...]] = {}


def declared(cls: type) -> tuple[Declared, ...]:
    """Every setting of a settings dataclass, in declaration order."""
    if cls not in _declared:
        hints = typing.get_type_hints(cls)
        _declared[cls] = tuple(
            Declared(f.name, PREFIX + f.name.upper(), hints[f.name], f.default, f.metadata[_SPEC])
            for f in dataclasses.fields(cls)
            if _SPEC in f.metadata
        )
    return _declared[cls]


def read_env(cls: type, env: Mapping[str, str]) -> dict[str, Any]:
    """Each setting's value in ``env``, by attribute name; ConfigError names the variable."""
    return {d.attribute: d.read(env) for d in declared(cls)}


def public_secrets(
    cls: type, values: Mapping[str, Any], needless: frozenset[str] = frozenset()
) -> list[str]:
    """The variables of the Secret settings (but the ``needless`` attributes) whose value in
    ``values`` anyone can read here: unset (the default), blank, or a shipped development
    value (whitespace around a value does not make it another); and of the Url settings
    whose password is a published one. A Url without a password is the operator's choice
    (a socket, trust or certificate authentication)."""
    return [
        d.variable
        for d in declared(cls)
        if d.attribute not in needless and _published(d, values[d.attribute])
    ]


def _published(d: Declared, value: object) -> bool:
    if d.type is Secret:
        return str(value).strip() in {"", *d.known_values}
    if d.type is Url and d.spec.shipped:
        return any(_password_in(url, d.spec.shipped) for url in str(value).split())
    return False


def _password_in(url: str, published: tuple[str, ...]) -> bool:
    try:
        password = urlsplit(url).password
    except ValueError:
        return False  # not a URL at all: its server refuses it, nothing is published
    return password in published


def as_declared_types(settings: object) -> None:
    """Make the Secret and Url fields of a frozen settings dataclass what they are declared
    as, however they were given (``Settings(jwt_secret="...")`` in a test passes a str)."""
    for d in declared(type(settings)):
        value = getattr(settings, d.attribute)
        if d.type in (Secret, Url) and not isinstance(value, d.type):
            object.__setattr__(settings, d.attribute, d.type(value))


def markdown_table(cls: type) -> str:
    """The README's table of variables, as the declarations say it."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{d.variable}` | {d.shown_default} | {d.spec.doc} |" for d in declared(cls)]
    return "\n".join(rows) + "\n"


def upper(raw: str, _name: str) -> str:
    return raw.upper()


def no_trailing_slash(raw: str, _name: str) -> str:
    return raw.rstrip("/")


def either(choices: tuple[str, ...]) -> str:
    """``a, b or c``, for an error message."""
    return ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]


def _number(kind: Callable[[str], T], what: str, raw: str, variable: str) -> T:
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigError(f"{variable} must be {what}, got {raw!r}") from exc
