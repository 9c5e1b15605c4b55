"""docker-compose files read the way compose reads them, with no docker engine: each file's
``${...}`` filled in from an environment first (compose interpolates a file before it merges
it, so an override cannot supply a value the base file requires), then the files merged in
order, mappings key by key. The dev override sets only mappings and scalars on the base's
services (tests/e2e/test_compose_prod.py checks it), where that merge is compose's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "docker-compose.yml"
DEV = ROOT / "docker-compose.dev.yml"
DEV_ENV = ROOT / "docker-compose.dev.env"

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INTERPOLATION = re.compile(
    rf"\$(?:(?P<escaped>\$)|\{{(?P<braced>{_NAME})(?:(?P<op>:?[-?+])(?P<arg>[^}}]*))?\}}"
    rf"|(?P<named>{_NAME}))"
)


class MissingVariable(ValueError):
    """What ``docker compose`` stops with: a ``${NAME:?message}`` with NAME unset or empty."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` with every string's ``$NAME``, ``${NAME}``, ``${NAME:-default}``,
    ``${NAME-default}``, ``${NAME:?message}``, ``${NAME?message}``, ``${NAME:+other}`` and
    ``$$`` replaced as compose does."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: _substitute(m, env), value)
    return value


def _substitute(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match["escaped"]:
        return "$"
    name = match["braced"] or match["named"]
    op, arg = match["op"] or "", match["arg"] or ""
    value = env.get(name)
    # With a colon, empty counts as unset.
    missing = value is None or (op.startswith(":") and value == "")
    if op.endswith("-"):
        return arg if missing else str(value)
    if op.endswith("?"):
        if missing:
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        return str(value)
    if op.endswith("+"):
        return "" if missing else arg
    return value or ""


def merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    return override


def read_env_file(path: Path) -> dict[str, str]:
    """An ``--env-file``: ``NAME=value`` lines; blank lines and ``#`` comments skipped."""
    lines = (line.strip() for line in path.read_text().splitlines())
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def required_variables(path: Path) -> set[str]:
    """The variables a compose file requires (``${NAME:?...}``)."""
    return set(re.findall(rf"\$\{{({_NAME}):\?", path.read_text()))


def raw(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def load(files: list[Path], env: Mapping[str, str]) -> dict[str, Any]:
    """The services of ``docker compose -f files[0] -f files[1] ...`` given ``env``."""
    model: dict[str, Any] = {}
    for path in files:
        model = merge(model, interpolate(raw(path), env))
    services: dict[str, Any] = model["services"]
    return services


def prod_environment() -> dict[str, str]:
    """An operator's environment for docker-compose.yml: every required variable a value
    of its own (long enough for any secret)."""
    return {
        name: f"{name.lower()}-of-this-deployment-0123456789" for name in required_variables(BASE)
    }


def prod_services() -> dict[str, Any]:
    return load([BASE], prod_environment())


def dev_services() -> dict[str, Any]:
    return load([BASE, DEV], read_env_file(DEV_ENV))
