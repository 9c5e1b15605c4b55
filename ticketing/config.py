"""Settings for every service, read once from ``TICKETING_*`` environment variables.

Each service builds one :class:`Settings` at start-up and passes it in; nothing reads the
environment anywhere else. Defaults are the development stack that ``make run`` starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """A TICKETING_* variable has a value we cannot use."""


def _slot(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return ""
    index, _, count = raw.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise ConfigError(f"{name} must be i/n with 0 <= i < n (e.g. 0/3), got {raw!r}")
    return f"{int(index)}/{int(count)}"


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


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name)
    return default if raw is None or raw == "" else raw


# Every variable the project reads, with its default and meaning. The README table and the
# docker-compose test are checked against this list, so it is the one place to add a setting.
VARIABLES: dict[str, tuple[str, str]] = {
    "TICKETING_ENV": ("dev", "dev | test | prod; the dev token endpoint exists only in dev"),
    "TICKETING_DATABASE_URL": (
        "postgresql://postgres@127.0.0.1:5432/ticketing",
        "PostgreSQL DSN (the source of truth)",
    ),
    "TICKETING_DB_POOL_MAX": ("10", "max connections per process"),
    "TICKETING_REDIS_URL": ("redis://127.0.0.1:6379/0", "Redis URL (cache, rate limits, queue)"),
    "TICKETING_REDIS_PREFIX": ("tk:", "prefix of every Redis key this deployment writes"),
    "TICKETING_AMQP_URL": ("amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL (vhost in path)"),
    "TICKETING_TYPESENSE_URL": ("http://127.0.0.1:8108", "Typesense base URL"),
    "TICKETING_TYPESENSE_API_KEY": ("ticketing-dev-key", "Typesense API key"),
    "TICKETING_TYPESENSE_COLLECTION": ("events", "alias that search reads and sync writes"),
    "TICKETING_TYPESENSE_TIMEOUT_SECONDS": ("1.0", "per-request timeout to Typesense"),
    "TICKETING_JWT_ALGORITHM": ("HS256", "HS256 or RS256"),
    "TICKETING_JWT_SECRET": (
        "dev-only-secret-change-me-in-production",
        "HS256 signing secret (at least 32 bytes; must be set in prod)",
    ),
    "TICKETING_JWT_PUBLIC_KEY": ("", "RS256 public key (PEM text, or a path to a PEM file)"),
    "TICKETING_DEV_TOKEN_TTL_SECONDS": ("3600", "lifetime of tokens from /auth/dev-token"),
    "TICKETING_RATE_LIMIT_PER_MINUTE": ("1200", "requests per client per minute"),
    "TICKETING_RATE_LIMIT_BURST": ("100", "requests a client may send at once"),
    "TICKETING_CACHE_TTL_SECONDS": ("86400", "event view cache lifetime (invalidated on change)"),
    "TICKETING_MAX_BODY_BYTES": ("65536", "largest request body accepted"),
    "TICKETING_HOST": ("127.0.0.1", "address the HTTP services bind"),
    "TICKETING_CATALOG_PORT": ("8081", "catalog_api port"),
    "TICKETING_WAITINGROOM_PORT": ("8082", "waitingroom port (the first, with several)"),
    "TICKETING_WAITINGROOM_PROCESSES": (
        "2",
        "waitingroom processes `python -m waitingroom --supervise` runs, ports from the one above",
    ),
    "TICKETING_FRONTDOOR_PROCESSES": (
        "1",
        "booking front door processes the same supervisor runs (`--role booking`: reserve,"
        " confirm, bookings, webhooks), on the ports after the waitingroom's; 0 leaves"
        " booking to the waitingroom processes",
    ),
    "TICKETING_SEARCH_SYNC_METRICS_PORT": ("9103", "search_sync /metrics port"),
    "TICKETING_GATEWAY_PORT": ("8080", "nginx gateway port (the public base URL)"),
    "TICKETING_GATEWAY_METRICS_PORT": ("9106", "nginx gateway /metrics (its queue joins)"),
    "TICKETING_GATEWAY_QUEUE_JOIN": (
        "on",
        "on | off: the gateway answers plain queue joins itself (off: all go to the waitingroom)",
    ),
    "TICKETING_TYPESENSE_PORT": ("8108", "port of the Typesense server make run starts"),
    "TICKETING_TYPESENSE_DATA_DIR": (".run/typesense", "data directory of that Typesense server"),
    "TICKETING_SYNC_BATCH_MAX": ("200", "search_sync: most changes upserted in one import"),
    "TICKETING_SYNC_BATCH_WAIT_MS": ("50", "search_sync: how long to gather a batch"),
    "TICKETING_OUTBOX_POLL_SECONDS": ("1.0", "outbox relay: poll interval besides LISTEN"),
    "TICKETING_HOLD_TTL_SECONDS": ("600", "how long a hold keeps its seats"),
    "TICKETING_MAX_TICKETS_PER_USER": ("8", "per-user cap per event, held plus booked"),
    "TICKETING_BOOKING_PARTITIONS": ("8", "booking command queues; an event maps to one"),
    "TICKETING_BOOKING_WORKER_SLOT": (
        "",
        "i/n: this booking worker is first in line for partitions p with p % n == i (the"
        " others take them only when it is busy or gone); empty: no preference",
    ),
    "TICKETING_BOOKING_STAGES": (
        "commands,payments",
        "what a booking_worker process runs: commands (the partition queues), payments (the"
        " booking.payments queue: confirms, Stripe events) or both; at least one process of a"
        " deployment must run payments",
    ),
    "TICKETING_BOOKING_RPC_TIMEOUT_SECONDS": ("5.0", "how long the front door waits for a worker"),
    "TICKETING_BOOKING_BATCH_MAX": ("32", "booking_worker: most commands in one transaction"),
    "TICKETING_BOOKING_WORKER_METRICS_PORT": ("9104", "booking_worker /metrics port"),
    "TICKETING_SWEEP_INTERVAL_SECONDS": ("1.0", "how often expired holds are released"),
    "TICKETING_IDEMPOTENCY_RETENTION_HOURS": (
        "24",
        "how long a booking command's stored reply answers retries before it is pruned",
    ),
    "TICKETING_STRIPE_API_KEY": ("sk_test_ticketing_dev", "Stripe secret key"),
    "TICKETING_STRIPE_API_BASE": ("http://127.0.0.1:8420", "Stripe API base (localstripe in dev)"),
    "TICKETING_STRIPE_WEBHOOK_SECRET": (
        "whsec_ticketing_dev_only",
        "secret that signs Stripe webhooks",
    ),
    "TICKETING_LOCALSTRIPE_PORT": ("8420", "port of the localstripe server make run starts"),
    "TICKETING_LOCALSTRIPE_STATE": (
        ".run/localstripe/state.pickle",
        "where that localstripe keeps its state (a snapshot written atomically, not per request)",
    ),
    "TICKETING_STRIPE_LATENCY_MS": (
        "0",
        "localstripe: simulated provider latency per API call, +-20% jitter (benches: 300)",
    ),
    "TICKETING_PAYMENTS_CONCURRENCY": (
        "64",
        "booking_worker: most Stripe calls in flight at once (confirms and payment events)",
    ),
    "TICKETING_ADMISSION_SECRET": (
        "dev-only-admission-secret-change-me-in-prod",
        "signs admission tokens (its own key, not the JWT secret)",
    ),
    "TICKETING_QUEUE_TICKET_SECRET": (
        "dev-only-queue-ticket-secret-change-me-in-prod",
        "signs queue tickets (its own key, not the JWT or admission secret)",
    ),
    "TICKETING_QUEUE_ADMIT_PER_MINUTE": ("60", "default admissions per minute of a queue"),
    "TICKETING_QUEUE_MAX_ACTIVE": ("500", "default most active sessions of a queue"),
    "TICKETING_QUEUE_SESSION_SECONDS": ("600", "default admission session length"),
    "TICKETING_QUEUE_MODE": ("manual", "default queue mode: manual | auto"),
    "TICKETING_QUEUE_ABANDON_SECONDS": (
        "60",
        "a waiting fan not seen (websocket or status poll) for this long loses their place",
    ),
    "TICKETING_QUEUE_USER_RATE_PER_MINUTE": ("120", "queue join + status calls per fan per minute"),
    "TICKETING_QUEUE_IP_RATE_PER_MINUTE": ("6000", "queue join + status calls per address/min"),
    "TICKETING_QUEUE_ALLOWED_ORIGINS": (
        "",
        "extra Origins (comma-separated) allowed to open queue websockets besides the page's own",
    ),
    "TICKETING_QUEUE_AUTO_MAX_BACKLOG": (
        "200",
        "auto mode halves the admission rate when the booking queues hold more commands",
    ),
    "TICKETING_QUEUE_AUTO_MAX_LATENCY_MS": (
        "500",
        "auto mode halves the admission rate when reserves take longer on average",
    ),
    "TICKETING_ADMISSION_CLAIM_SECONDS": (
        "60",
        "default claim window: an admitted fan who holds no seats by then loses the admission",
    ),
    "TICKETING_QUEUE_ADMISSION_MARGIN_PERCENT": (
        "10",
        "default margin: fans admitted but not yet holding may need up to this much more than"
        " the seats left",
    ),
}


def default(name: str) -> str:
    return VARIABLES[name][0]


@dataclass(frozen=True, slots=True)
class Settings:
    env: str = "dev"
    database_url: str = default("TICKETING_DATABASE_URL")
    db_pool_max: int = 10
    redis_url: str = default("TICKETING_REDIS_URL")
    redis_prefix: str = "tk:"
    amqp_url: str = default("TICKETING_AMQP_URL")
    typesense_url: str = default("TICKETING_TYPESENSE_URL")
    typesense_api_key: str = default("TICKETING_TYPESENSE_API_KEY")
    typesense_collection: str = "events"
    typesense_timeout_seconds: float = 1.0
    jwt_algorithm: str = "HS256"
    jwt_secret: str = default("TICKETING_JWT_SECRET")
    jwt_public_key: str = ""
    dev_token_ttl_seconds: int = 3600
    rate_limit_per_minute: int = 1200
    rate_limit_burst: int = 100
    cache_ttl_seconds: int = 86400
    max_body_bytes: int = 65536
    host: str = "127.0.0.1"
    catalog_port: int = 8081
    waitingroom_port: int = 8082
    waitingroom_processes: int = 2
    frontdoor_processes: int = 1
    search_sync_metrics_port: int = 9103
    gateway_port: int = 8080
    gateway_metrics_port: int = 9106
    gateway_queue_join: str = "on"  # on | off
    typesense_port: int = 8108
    typesense_data_dir: str = ".run/typesense"
    sync_batch_max: int = 200
    sync_batch_wait_ms: int = 50
    outbox_poll_seconds: float = 1.0
    hold_ttl_seconds: int = 600
    max_tickets_per_user: int = 8
    booking_partitions: int = 8
    booking_worker_slot: str = ""
    booking_stages: str = "commands,payments"
    booking_rpc_timeout_seconds: float = 5.0
    booking_batch_max: int = 32
    booking_worker_metrics_port: int = 9104
    sweep_interval_seconds: float = 1.0
    idempotency_retention_hours: int = 24
    stripe_api_key: str = default("TICKETING_STRIPE_API_KEY")
    stripe_api_base: str = default("TICKETING_STRIPE_API_BASE")
    stripe_webhook_secret: str = default("TICKETING_STRIPE_WEBHOOK_SECRET")
    localstripe_port: int = 8420
    localstripe_state: str = default("TICKETING_LOCALSTRIPE_STATE")
    stripe_latency_ms: int = 0
    payments_concurrency: int = 64
    admission_secret: str = default("TICKETING_ADMISSION_SECRET")
    queue_ticket_secret: str = default("TICKETING_QUEUE_TICKET_SECRET")
    queue_admit_per_minute: int = 60
    queue_max_active: int = 500
    queue_session_seconds: int = 600
    queue_mode: str = "manual"
    queue_abandon_seconds: int = 60
    queue_user_rate_per_minute: int = 120
    queue_ip_rate_per_minute: int = 6000
    queue_allowed_origins: str = ""
    queue_auto_max_backlog: int = 200
    queue_auto_max_latency_ms: int = 500
    admission_claim_seconds: int = 60
    queue_admission_margin_percent: int = 10
    extra: Mapping[str, str] = field(default_factory=dict, compare=False)

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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        algorithm = _str(env, "TICKETING_JWT_ALGORITHM", "HS256").upper()
        if algorithm not in ("HS256", "RS256"):
            raise ConfigError(f"TICKETING_JWT_ALGORITHM must be HS256 or RS256, got {algorithm}")
        public_key = _str(env, "TICKETING_JWT_PUBLIC_KEY", "")
        if public_key and not public_key.lstrip().startswith("-----BEGIN"):
            try:
                with open(public_key, encoding="ascii") as fh:
                    public_key = fh.read()
            except OSError as exc:
                raise ConfigError(f"TICKETING_JWT_PUBLIC_KEY: cannot read {public_key}") from exc
        if algorithm == "RS256" and not public_key:
            raise ConfigError("TICKETING_JWT_ALGORITHM=RS256 needs TICKETING_JWT_PUBLIC_KEY")
        environment = _str(env, "TICKETING_ENV", "dev")
        if environment not in ("dev", "test", "prod"):
            raise ConfigError(f"TICKETING_ENV must be dev, test or prod, got {environment}")
        secret = _str(env, "TICKETING_JWT_SECRET", default("TICKETING_JWT_SECRET"))
        if algorithm == "HS256" and len(secret.encode()) < 32:
            raise ConfigError("TICKETING_JWT_SECRET must be at least 32 bytes for HS256")
        if environment == "prod" and secret == default("TICKETING_JWT_SECRET"):
            raise ConfigError("TICKETING_JWT_SECRET must be set in prod")
        gateway_join = _str(env, "TICKETING_GATEWAY_QUEUE_JOIN", "on")
        if gateway_join not in ("on", "off"):
            raise ConfigError(f"TICKETING_GATEWAY_QUEUE_JOIN must be on or off, got {gateway_join}")
        queue_mode = _str(env, "TICKETING_QUEUE_MODE", "manual")
        if queue_mode not in ("manual", "auto"):
            raise ConfigError(f"TICKETING_QUEUE_MODE must be manual or auto, got {queue_mode}")
        return cls(
            env=environment,
            database_url=_str(env, "TICKETING_DATABASE_URL", default("TICKETING_DATABASE_URL")),
            db_pool_max=_int(env, "TICKETING_DB_POOL_MAX", 10, minimum=1),
            redis_url=_str(env, "TICKETING_REDIS_URL", default("TICKETING_REDIS_URL")),
            redis_prefix=_str(env, "TICKETING_REDIS_PREFIX", "tk:"),
            amqp_url=_str(env, "TICKETING_AMQP_URL", default("TICKETING_AMQP_URL")),
            typesense_url=_str(
                env, "TICKETING_TYPESENSE_URL", default("TICKETING_TYPESENSE_URL")
            ).rstrip("/"),
            typesense_api_key=_str(
                env, "TICKETING_TYPESENSE_API_KEY", default("TICKETING_TYPESENSE_API_KEY")
            ),
            typesense_collection=_str(env, "TICKETING_TYPESENSE_COLLECTION", "events"),
            typesense_timeout_seconds=_float(env, "TICKETING_TYPESENSE_TIMEOUT_SECONDS", 1.0),
            jwt_algorithm=algorithm,
            jwt_secret=secret,
            jwt_public_key=public_key,
            dev_token_ttl_seconds=_int(env, "TICKETING_DEV_TOKEN_TTL_SECONDS", 3600, minimum=1),
            rate_limit_per_minute=_int(env, "TICKETING_RATE_LIMIT_PER_MINUTE", 1200, minimum=1),
            rate_limit_burst=_int(env, "TICKETING_RATE_LIMIT_BURST", 100, minimum=1),
            cache_ttl_seconds=_int(env, "TICKETING_CACHE_TTL_SECONDS", 86400, minimum=1),
            max_body_bytes=_int(env, "TICKETING_MAX_BODY_BYTES", 65536, minimum=1024),
            host=_str(env, "TICKETING_HOST", "127.0.0.1"),
            catalog_port=_int(env, "TICKETING_CATALOG_PORT", 8081, minimum=1),
            waitingroom_port=_int(env, "TICKETING_WAITINGROOM_PORT", 8082, minimum=1),
            waitingroom_processes=_int(env, "TICKETING_WAITINGROOM_PROCESSES", 2, minimum=1),
            frontdoor_processes=_int(env, "TICKETING_FRONTDOOR_PROCESSES", 1, minimum=0),
            search_sync_metrics_port=_int(env, "TICKETING_SEARCH_SYNC_METRICS_PORT", 9103),
            gateway_port=_int(env, "TICKETING_GATEWAY_PORT", 8080, minimum=1),
            gateway_metrics_port=_int(env, "TICKETING_GATEWAY_METRICS_PORT", 9106, minimum=1),
            gateway_queue_join=gateway_join,
            typesense_port=_int(env, "TICKETING_TYPESENSE_PORT", 8108, minimum=1),
            typesense_data_dir=_str(env, "TICKETING_TYPESENSE_DATA_DIR", ".run/typesense"),
            sync_batch_max=_int(env, "TICKETING_SYNC_BATCH_MAX", 200, minimum=1),
            sync_batch_wait_ms=_int(env, "TICKETING_SYNC_BATCH_WAIT_MS", 50),
            outbox_poll_seconds=_float(env, "TICKETING_OUTBOX_POLL_SECONDS", 1.0),
            hold_ttl_seconds=_int(env, "TICKETING_HOLD_TTL_SECONDS", 600, minimum=1),
            max_tickets_per_user=_int(env, "TICKETING_MAX_TICKETS_PER_USER", 8, minimum=1),
            booking_partitions=_int(env, "TICKETING_BOOKING_PARTITIONS", 8, minimum=1),
            booking_worker_slot=_slot(env, "TICKETING_BOOKING_WORKER_SLOT"),
            booking_stages=",".join(booking_stages(env.get("TICKETING_BOOKING_STAGES", ""))),
            booking_rpc_timeout_seconds=_float(env, "TICKETING_BOOKING_RPC_TIMEOUT_SECONDS", 5.0),
            booking_batch_max=_int(env, "TICKETING_BOOKING_BATCH_MAX", 32, minimum=1),
            booking_worker_metrics_port=_int(env, "TICKETING_BOOKING_WORKER_METRICS_PORT", 9104),
            sweep_interval_seconds=_float(env, "TICKETING_SWEEP_INTERVAL_SECONDS", 1.0),
            idempotency_retention_hours=_int(
                env, "TICKETING_IDEMPOTENCY_RETENTION_HOURS", 24, minimum=1
            ),
            stripe_api_key=_str(
                env, "TICKETING_STRIPE_API_KEY", default("TICKETING_STRIPE_API_KEY")
            ),
            stripe_api_base=_str(
                env, "TICKETING_STRIPE_API_BASE", default("TICKETING_STRIPE_API_BASE")
            ).rstrip("/"),
            stripe_webhook_secret=_str(
                env, "TICKETING_STRIPE_WEBHOOK_SECRET", default("TICKETING_STRIPE_WEBHOOK_SECRET")
            ),
            localstripe_port=_int(env, "TICKETING_LOCALSTRIPE_PORT", 8420, minimum=1),
            localstripe_state=_str(
                env, "TICKETING_LOCALSTRIPE_STATE", default("TICKETING_LOCALSTRIPE_STATE")
            ),
            stripe_latency_ms=_int(env, "TICKETING_STRIPE_LATENCY_MS", 0),
            payments_concurrency=_int(env, "TICKETING_PAYMENTS_CONCURRENCY", 64, minimum=1),
            admission_secret=_str(
                env, "TICKETING_ADMISSION_SECRET", default("TICKETING_ADMISSION_SECRET")
            ),
            queue_ticket_secret=_str(
                env, "TICKETING_QUEUE_TICKET_SECRET", default("TICKETING_QUEUE_TICKET_SECRET")
            ),
            queue_admit_per_minute=_int(env, "TICKETING_QUEUE_ADMIT_PER_MINUTE", 60),
            queue_max_active=_int(env, "TICKETING_QUEUE_MAX_ACTIVE", 500),
            queue_session_seconds=_int(env, "TICKETING_QUEUE_SESSION_SECONDS", 600, minimum=1),
            queue_mode=queue_mode,
            queue_abandon_seconds=_int(env, "TICKETING_QUEUE_ABANDON_SECONDS", 60, minimum=1),
            queue_user_rate_per_minute=_int(
                env, "TICKETING_QUEUE_USER_RATE_PER_MINUTE", 120, minimum=1
            ),
            queue_ip_rate_per_minute=_int(
                env, "TICKETING_QUEUE_IP_RATE_PER_MINUTE", 6000, minimum=1
            ),
            queue_allowed_origins=_str(env, "TICKETING_QUEUE_ALLOWED_ORIGINS", ""),
            queue_auto_max_backlog=_int(env, "TICKETING_QUEUE_AUTO_MAX_BACKLOG", 200, minimum=1),
            queue_auto_max_latency_ms=_int(
                env, "TICKETING_QUEUE_AUTO_MAX_LATENCY_MS", 500, minimum=1
            ),
            admission_claim_seconds=_int(env, "TICKETING_ADMISSION_CLAIM_SECONDS", 60, minimum=1),
            queue_admission_margin_percent=_int(
                env, "TICKETING_QUEUE_ADMISSION_MARGIN_PERCENT", 10
            ),
            extra={k: v for k, v in env.items() if k.startswith("TICKETING_")},
        )
