"""Settings for every service, read once from ``TICKETING_*`` environment variables.

Each service builds one :class:`Settings` at start-up and passes it in; nothing reads the
environment anywhere else. Defaults are the development stack that ``make run`` starts
(with ``TICKETING_ENV=dev``); without ``TICKETING_ENV`` a service runs as prod, which refuses
to start while a secret is a default or another value published here (``Settings.from_env``).
Each setting is declared once, below (type, default, bounds, doc); the parsing, the list of
variables and the README's table come from that declaration (ticketing.settings_schema).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ticketing.domain.challenge import MAX_DIFFICULTY
from ticketing.settings_platform import PlatformSettings
from ticketing.settings_schema import (
    ConfigError,
    Secret,
    as_declared_types,
    declared,
    markdown_table,
    no_trailing_slash,
    public_secrets,
    read_env,
    setting,
)

__all__ = ["BOOKING_STAGES", "VARIABLES", "ConfigError", "Secret", "Settings", "default"]

# What a booking worker process may run: the partition queues' batch loop (reserves,
# releases, reads) and the payments stage (booking.payments: confirms, Stripe events).
BOOKING_STAGES = ("commands", "payments")


def booking_stages(raw: str, name: str = "TICKETING_BOOKING_STAGES") -> tuple[str, ...]:
    """The stages a comma-separated list names, in BOOKING_STAGES order; empty means all."""
    given = {part.strip() for part in raw.split(",") if part.strip()}
    if not given:
        return BOOKING_STAGES
    if given - set(BOOKING_STAGES):
        raise ConfigError(
            f"{name} must name commands, payments or both (comma-separated), got {raw!r}"
        )
    return tuple(stage for stage in BOOKING_STAGES if stage in given)


def _stages(raw: str, name: str) -> str:
    return ",".join(booking_stages(raw, name))


def _slot(raw: str, name: str) -> str:
    raw = raw.strip()
    if not raw:
        return ""
    index, _, count = raw.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise ConfigError(f"{name} must be i/n with 0 <= i < n (e.g. 0/3), got {raw!r}")
    return f"{int(index)}/{int(count)}"


def _difficulty(raw: str, name: str) -> int:
    if not (raw.isascii() and raw.isdigit() and int(raw) <= MAX_DIFFICULTY):
        raise ConfigError(f"{name} must be a whole number from 0 to {MAX_DIFFICULTY}, got {raw!r}")
    return int(raw)


@dataclass(frozen=True, slots=True)
class Settings(PlatformSettings):
    """Every setting: the shared ones (PlatformSettings) and those of booking, payments and
    the queue."""

    hold_ttl_seconds: int = setting(
        600,
        "how long a hold keeps its seats",
        minimum=1,
    )
    max_tickets_per_user: int = setting(
        8,
        "per-user cap per event, held plus booked",
        minimum=1,
    )
    booking_partitions: int = setting(
        8,
        "booking command queues; each event maps to one",
        minimum=1,
    )
    booking_worker_slot: str = setting(
        "",
        "`i/n`: this booking worker is first in line for the partitions p with p % n == i "
        "(RabbitMQ consumer priority); the others take them only when it is busy or gone. `make"
        " run` gives its two workers `0/2` and `1/2`; without a slot all workers compete for "
        "every partition",
        parse=_slot,
    )
    booking_rpc_timeout_seconds: float = setting(
        5.0,
        "how long the front door waits for a booking worker before `503`",
    )
    booking_stages: str = setting(
        "commands,payments",
        "what a `booking_worker` process runs: `commands` (the partition queues: reserves, "
        "releases, reads), `payments` (the `booking.payments` queue: confirms, Stripe events, "
        "and the refunds owed) or both; `python -m booking_worker --stages ...` overrides it. "
        "`make run` and docker-compose run two commands-only workers and one payments-only "
        "worker; at least one process must run payments",
        parse=_stages,
    )
    booking_batch_max: int = setting(
        32,
        "booking_worker: most commands applied in one transaction",
        minimum=1,
    )
    booking_worker_metrics_port: int = setting(
        9104,
        "booking_worker `/metrics`",
    )
    sweep_interval_seconds: float = setting(
        1.0,
        "how often expired holds are released",
    )
    idempotency_retention_hours: int = setting(
        24,
        "how long a booking command's stored reply answers a retry with the same "
        "`Idempotency-Key`; older replies are pruned in batches by the workers' sweepers",
        minimum=1,
    )
    stripe_api_key: Secret = setting(  # noqa: RUF009 (a str: immutable)
        Secret("sk_test_ticketing_dev"),
        "Stripe secret key",
        shipped=("sk_test_ticketing_compose",),
    )
    stripe_api_base: str = setting(
        "http://127.0.0.1:8420",
        "Stripe API base (localstripe in development and tests)",
        parse=no_trailing_slash,
    )
    stripe_webhook_secret: Secret = setting(  # noqa: RUF009 (a str: immutable)
        Secret("whsec_ticketing_dev_only"),
        "verifies `POST /webhooks/stripe` signatures",
        shipped=("whsec_ticketing_compose_only",),
    )
    localstripe_port: int = setting(
        8420,
        "port of the localstripe server `make run` starts",
        minimum=1,
    )
    localstripe_state: str = setting(
        ".run/localstripe/state.pickle",
        "where that localstripe keeps its state: held in memory, snapshotted atomically, never "
        "rewritten per request; a missing or damaged file starts it empty",
    )
    stripe_latency_ms: int = setting(
        0,
        "localstripe answers each API call this much later (uniform jitter of +-20%), to model "
        "a real provider in benches (`bench/onsale.py` uses 300); tests keep 0",
    )
    payments_concurrency: int = setting(
        64,
        "booking_worker: most Stripe calls (confirms, payment webhooks) in flight at once; they"
        " never queue in front of reserves and releases",
        minimum=1,
    )
    admission_secret: Secret = setting(  # noqa: RUF009 (a str: immutable)
        Secret("dev-only-admission-secret-change-me-in-prod"),
        "signs admission tokens (not the JWT secret)",
        shipped=("compose-only-admission-secret-change-me",),
    )
    queue_ticket_secret: Secret = setting(  # noqa: RUF009 (a str: immutable)
        Secret("dev-only-queue-ticket-secret-change-me-in-prod"),
        "signs queue tickets for places in line, the gateway's and the waitingroom's (not the "
        "JWT or admission secret; admitted fans' tickets are signed with a key derived from "
        "the admission secret)",
        shipped=("compose-only-queue-ticket-secret-change-me",),
    )
    command_secret: Secret = setting(  # noqa: RUF009 (a str: immutable)
        Secret("dev-only-command-secret-change-me-in-prod"),
        "signs the booking commands the front door sends; a booking worker acts on no other "
        "(not the JWT, admission or queue-ticket secret)",
        shipped=("compose-only-command-secret-change-me",),
    )
    queue_admit_per_minute: int = setting(
        60,
        "admissions per minute of a queue until an operator sets `admit_per_minute`",
    )
    queue_max_active: int = setting(
        500,
        "most active (admitted) sessions of a queue until an operator sets `max_active`",
    )
    queue_session_seconds: int = setting(
        600,
        "admission session length until an operator sets `session_seconds`",
        minimum=1,
    )
    queue_mode: str = setting(
        "manual",
        "queue mode until an operator sets `mode`: `manual` or `auto`",
        choices=("manual", "auto"),
    )
    queue_abandon_seconds: int = setting(
        60,
        "a waiting fan not seen (websocket or status poll) for this long loses their place",
        minimum=1,
    )
    queue_user_rate_per_minute: int = setting(
        120,
        "queue join and status calls per fan per minute (a sixth of it at once), across processes",
        minimum=1,
    )
    queue_ip_rate_per_minute: int = setting(
        6000,
        "the same per client address (`X-Real-IP`); raise it for load tests from one host",
        minimum=1,
    )
    queue_allowed_origins: str = setting(
        "",
        "extra `Origin`s (comma-separated) allowed to open queue websockets; the gateway's own "
        "host always is",
    )
    queue_auto_max_backlog: int = setting(
        200,
        "auto mode: booking commands waiting in RabbitMQ above which the admission rate is halved",
        minimum=1,
    )
    queue_auto_max_latency_ms: int = setting(
        500,
        "auto mode: average reserve latency above which the admission rate is halved",
        minimum=1,
    )
    admission_claim_seconds: int = setting(
        60,
        "claim window until an operator sets `claim_seconds`: an admitted fan who holds no "
        "seats by then loses the admission to the next fan",
        minimum=1,
    )
    queue_admission_margin_percent: int = setting(
        10,
        "admission margin until an operator sets `admission_margin_percent`: fans admitted but "
        "not yet holding, times the seats a fan takes on average, stay within the seats left "
        "plus this share",
    )
    challenge_default_difficulty: int = setting(
        0,
        "proof-of-work difficulty at a queue's door until an operator sets "
        "`challenge_difficulty`: 0 (off) to 10, each step doubling the work; 3 is under 2 s at "
        "worst in a browser (ticketing/domain/challenge.py has the scale)",
        parse=_difficulty,
    )
    challenge_auto_joins_per_second: int = setting(
        200,
        "automatic challenge mode: joins per second at an event's door (over 10 s) above "
        "which the difficulty goes up a step, and down a step when below both thresholds",
        minimum=1,
    )
    challenge_auto_failed_per_second: int = setting(
        20,
        "automatic challenge mode: failed solutions per second (over 10 s) above which the "
        "difficulty goes up a step",
        minimum=1,
    )
    challenge_auto_max_difficulty: int = setting(
        MAX_DIFFICULTY,
        "automatic challenge mode: the highest difficulty it raises an event's door to, 0 to "
        "10 (an operator's own `challenge_difficulty` holds even above it); each step doubles "
        "every fan's solve, honest fans' too, so an on-sale whose fans alone pass the joins "
        "threshold climbs to it",
        parse=_difficulty,
    )
    # Every TICKETING_* variable as given (read by tests' controls); it holds secrets, so it
    # stays out of repr.
    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        as_declared_types(self)

    @property
    def is_dev(self) -> bool:
        return self.env == "dev"

    @property
    def booking_stage_names(self) -> tuple[str, ...]:
        return booking_stages(self.booking_stages)

    @property
    def waitingroom_ports(self) -> list[int]:
        """One port per waitingroom process; the gateway spreads fans over all of them."""
        return [self.waitingroom_port + i for i in range(self.waitingroom_processes)]

    @property
    def frontdoor_ports(self) -> list[int]:
        """One port per booking front door process, after the waitingroom processes'."""
        first = self.waitingroom_port + self.waitingroom_processes
        return [first + i for i in range(self.frontdoor_processes)]

    @property
    def booking_ports(self) -> list[int]:
        """Where the gateway sends the booking routes: the front doors, or without any,
        the waitingroom processes (which serve every route)."""
        return self.frontdoor_ports or self.waitingroom_ports

    def to_env(self) -> dict[str, str]:
        """Every variable, set so that ``from_env`` in a child process gives these settings
        back (an empty string reads as the default there)."""
        return {d.variable: str(getattr(self, d.attribute)) for d in declared(type(self))}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values = read_env(cls, env)
        # The rules that tie settings together; each setting's own bounds are declared above.
        if values["jwt_algorithm"] == "RS256" and not (
            values["jwt_public_key"] or values["jwt_jwks_url"]
        ):
            raise ConfigError(
                "TICKETING_JWT_ALGORITHM=RS256 needs TICKETING_JWT_PUBLIC_KEY or "
                "TICKETING_JWT_JWKS_URL"
            )
        secret = values["jwt_secret"]
        if values["jwt_algorithm"] == "HS256" and len(secret.encode()) < 32:
            raise ConfigError("TICKETING_JWT_SECRET must be at least 32 bytes for HS256")
        if values["env"] == "prod":
            _refuse_public_secrets(cls, values)
        extra = {k: v for k, v in env.items() if k.startswith("TICKETING_")}
        return cls(**values, extra=extra)


def _refuse_public_secrets(cls: type[Settings], values: Mapping[str, object]) -> None:
    """Prod starts only with secrets of its own: each Secret setting's default and shipped
    development values are public (a queue ticket signed with the default key restores its
    bearer's place), and so are RabbitMQ's guest login and the compose dev passwords in a
    URL (whoever reaches the broker could read commands and forge replies). Under RS256
    tokens are verified with the public key, so the HS256 secret is not needed. Every
    offending variable is named at once."""
    needless = frozenset({"jwt_secret"} if values["jwt_algorithm"] != "HS256" else ())
    public = public_secrets(cls, values, needless)
    if public:
        raise ConfigError(
            "TICKETING_ENV=prod (the default) needs secrets of its own; unset or a development "
            f"value published with the project: {', '.join(public)}. Set each, or set "
            "TICKETING_ENV=dev for development"
        )


# Every variable the project reads, with its default and meaning (derived from Settings).
VARIABLES: dict[str, tuple[str, str]] = {
    d.variable: (str(d.default), d.spec.doc) for d in declared(Settings)
}


def default(name: str) -> str:
    return VARIABLES[name][0]


if __name__ == "__main__":  # python -m ticketing.config: the README's table of variables
    print(markdown_table(Settings), end="")
