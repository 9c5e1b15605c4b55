"""The settings every service shares: where the stores are, auth, HTTP limits, ports, search.

Declared once each (type, default, bounds, doc; ticketing.settings_schema); the booking,
payment and queue settings extend these in ticketing.config, which services import.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_network
from urllib.parse import urlsplit

from ticketing.redis_url import parse_redis_url
from ticketing.settings_schema import (
    ConfigError,
    Secret,
    Url,
    setting,
    upper,
)


def _public_key(raw: str, name: str) -> str:
    if raw.lstrip().startswith("-----BEGIN"):
        return raw
    try:
        with open(raw, encoding="ascii") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {raw}") from exc


def _networks(raw: str, name: str) -> str:
    """CIDRs, comma-separated, in their canonical spelling; a host address is its /32 or
    /128. Host bits set (10.0.0.1/8) are refused: the list must say what it means."""
    try:
        networks = [ip_network(part.strip()) for part in raw.split(",") if part.strip()]
    except ValueError as exc:
        raise ConfigError(f"{name} must be comma-separated CIDRs: {exc}") from None
    return ",".join(str(n) for n in networks)


def _typesense_nodes(raw: str, name: str) -> str:
    """One Typesense URL, or every node of a cluster comma-separated, each ``http(s)://
    host:port`` without a path, in their given order (the order reads start from)."""
    urls = [part.strip().rstrip("/") for part in raw.split(",") if part.strip()]
    if not urls:
        raise ConfigError(f"{name} names no Typesense node")
    for url in urls:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError as exc:
            raise ConfigError(f"{name}: {url!r}: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
            raise ConfigError(f"{name}: {url!r} is not http(s)://host[:port]")
    if len(set(urls)) != len(urls):
        raise ConfigError(f"{name} names a node twice")
    return ",".join(urls)


def _postgres_urls(raw: str, name: str) -> Url:
    """PostgreSQL URLs separated by whitespace (a URL itself may list hosts with commas)."""
    urls = raw.split()
    for url in urls:
        if urlsplit(url).scheme not in ("postgresql", "postgres"):
            raise ConfigError(f"{name} must be postgresql:// URLs, space-separated, got {url!r}")
    return Url(" ".join(urls))


def _amqp_urls(raw: str, name: str) -> Url:
    """RabbitMQ URLs separated by whitespace: one node, or a cluster's nodes."""
    urls = raw.split()
    if not urls:
        raise ConfigError(f"{name} must name at least one amqp:// URL")
    for url in urls:
        scheme = urlsplit(url).scheme
        if scheme not in ("amqp", "amqps"):  # the URL itself may hold a password: not said
            raise ConfigError(
                f"{name} must be amqp:// URLs, space-separated, got one of scheme {scheme!r}"
            )
    return Url(" ".join(urls))


def _redis_url(raw: str, name: str) -> Url:
    """One server, a cluster's seeds or Sentinel's (ticketing.redis_connect)."""
    url = raw.strip()
    parse_redis_url(url, name)
    return Url(url)


@dataclass(frozen=True, slots=True)
class PlatformSettings:
    env: str = setting(
        "prod",
        "`dev`, `test` or `prod`; `prod` refuses to start while a secret is unset or a value "
        "published here (see Production below); `POST /auth/dev-token` exists only in `dev`",
        choices=("dev", "test", "prod"),
    )
    database_url: Url = setting(  # noqa: RUF009 (a str: immutable)
        Url("postgresql://postgres@127.0.0.1:5432/ticketing"),
        "PostgreSQL, the source of truth; for a failover formation, its nodes "
        "comma-separated with `?target_session_attrs=read-write` (whichever takes writes)",
        shipped=("ticketing",),  # docker-compose.dev.env's password
    )
    db_pool_max: int = setting(
        10,
        "connections per process",
        minimum=1,
    )
    database_replica_urls: Url = setting(  # noqa: RUF009 (a str: immutable)
        Url(""),
        "streaming replicas catalog_api reads from (space-separated PostgreSQL URLs; every "
        "node of a failover formation may be listed: a node out of recovery is read only while "
        "no replica can be); empty: every read goes to `TICKETING_DATABASE_URL`",
        parse=_postgres_urls,
        shipped=("ticketing",),  # docker-compose.dev.env's password
    )
    pg_replica_max_lag_seconds: float = setting(
        2.0,
        "catalog_api reads from a replica only while its replay lag (sampled twice a second) "
        "is at most this; a view read from a replica is cached this long, not "
        "`TICKETING_CACHE_TTL_SECONDS`",
        minimum=0,
    )
    redis_url: Url = setting(  # noqa: RUF009 (a str: immutable)
        Url("redis://127.0.0.1:6379/0"),
        "cache, rate limits, queue: one server `redis://[:password@]host:port[/db]`, a Redis "
        "Cluster `redis+cluster://[:password@]host1:port1,host2:port2,...` (seed nodes; db 0 "
        "only), or Sentinel's primary `redis+sentinel://[:password@]s1:p1,s2:p2,.../<master-"
        "name>[/db]` (the sentinels; the password is the data nodes')",
        parse=_redis_url,
    )
    redis_prefix: str = setting(
        "tk:",
        "prefix of every key this deployment writes",
    )
    amqp_url: Url = setting(  # noqa: RUF009 (a str: immutable)
        Url("amqp://guest:guest@127.0.0.1:5672/"),
        "RabbitMQ (vhost in the path); for a cluster, its nodes' URLs space-separated: each "
        "connection goes to the first that answers, starting at a random one",
        parse=_amqp_urls,
        # RabbitMQ's own default login, and docker-compose.dev.env's password.
        shipped=("guest", "ticketing"),
    )
    amqp_queue_type: str = setting(
        "classic",
        "`classic` or `quorum`: the type of the booking, payments, search_sync and "
        "dead-letter queues (quorum: replicated over a cluster's nodes by Raft, a node's loss "
        "loses nothing; on one node, durable like classic). Set before a vhost's first start: "
        "RabbitMQ cannot change a queue's type, a service meeting the other type refuses to "
        "start and says how to move",
        choices=("classic", "quorum"),
    )
    typesense_url: str = setting(
        "http://127.0.0.1:8108",
        "Typesense: one URL, or a cluster's nodes comma-separated (catalog_api reads from any "
        "healthy node and fails over to the next; search_sync writes through any, which "
        "forwards to the leader)",
        parse=_typesense_nodes,
    )
    typesense_api_key: Secret = setting(  # noqa: RUF009 (a str: immutable)
        Secret("ticketing-dev-key"),
        "Typesense API key",
        shipped=("ticketing-compose-key",),
    )
    typesense_collection: str = setting(
        "events",
        "the alias search reads and sync writes",
    )
    typesense_timeout_seconds: float = setting(
        1.0,
        "per-request timeout to Typesense",
    )
    typesense_port: int = setting(
        8108,
        "port of the Typesense server `make run` starts",
        minimum=1,
    )
    typesense_data_dir: str = setting(
        ".run/typesense",
        "its data directory",
    )
    jwt_algorithm: str = setting(
        "HS256",
        "`HS256` or `RS256`",
        choices=("HS256", "RS256"),
        parse=upper,
    )
    jwt_secret: Secret = setting(  # noqa: RUF009 (a str: immutable)
        Secret("dev-only-secret-change-me-in-production"),
        "HS256 secret, at least 32 bytes (not needed under RS256)",
        shipped=("compose-only-secret-change-me-for-real-use",),
    )
    jwt_public_key: str = setting(
        "",
        "RS256 public keys that verify the platform's tokens (PEM text or a file path; the "
        "current and the previous key while keys roll over), served at `/.well-known/jwks.json`",
        parse=_public_key,
    )
    jwt_private_key_file: str = setting(
        "",
        "RS256 signing key (a PEM file) of the waitingroom, which signs dev and admission "
        "tokens; its public key must be among `TICKETING_JWT_PUBLIC_KEY`",
    )
    jwt_jwks_url: str = setting(
        "",
        "an external identity provider's JWKS URL: its RS256 access tokens are accepted too",
    )
    jwt_issuer: str = setting(
        "",
        "the `iss` the external provider's tokens must carry (checked when set)",
    )
    jwt_audience: str = setting(
        "",
        "the `aud` the external provider's tokens must carry (checked when set)",
    )
    dev_token_ttl_seconds: int = setting(
        3600,
        "lifetime of development tokens",
        minimum=1,
    )
    rate_limit_per_minute: int = setting(
        1200,
        "requests per client (user, else IP) per minute, across all processes",
        minimum=1,
    )
    rate_limit_burst: int = setting(
        100,
        "requests a client may send at once",
        minimum=1,
    )
    cache_ttl_seconds: int = setting(
        86400,
        "view cache lifetime (views are invalidated on change)",
        minimum=1,
    )
    max_body_bytes: int = setting(
        65536,
        "largest request body (gateway and services)",
        minimum=1024,
    )
    host: str = setting(
        "127.0.0.1",
        "address the services bind",
    )
    catalog_port: int = setting(
        8081,
        "catalog_api",
        minimum=1,
    )
    waitingroom_port: int = setting(
        8082,
        "waitingroom (the first process; the others take the next ports)",
        minimum=1,
    )
    frontdoor_processes: int = setting(
        1,
        "booking front door processes the supervisor runs after the waitingroom processes, on "
        "the next ports (`--role booking`: booking routes only, no sockets, no queue loops); "
        "`0` leaves booking to the waitingroom processes",
    )
    waitingroom_processes: int = setting(
        2,
        "waitingroom processes behind the gateway (`python -m waitingroom --supervise`, what "
        "`make run` and compose run; plain `python -m waitingroom` is one); each holds up to "
        "about 15,000 waiting fans' websockets under this machine's 20,000 open files per "
        "process",
        minimum=1,
    )
    search_sync_metrics_port: int = setting(
        9103,
        "search_sync `/metrics`",
    )
    gateway_port: int = setting(
        8080,
        "nginx, the public base URL",
        minimum=1,
    )
    gateway_metrics_port: int = setting(
        9106,
        "nginx's own `/metrics` (the joins it answers), not public",
        minimum=1,
    )
    gateway_queue_join: str = setting(
        "on",
        "`off` sends every queue join to the waitingroom (the gateway's Lua answers none): a "
        "switch for an incident, and `bench/surge.py --python-joins`",
        choices=("on", "off"),
    )
    trusted_proxies: str = setting(
        "127.0.0.1/32,::1/128",
        "proxies (comma-separated CIDRs) trusted to name the client: nginx takes the client "
        "from `X-Forwarded-For` only from these (the load balancer in front of it), the "
        "services take `X-Real-IP` only from these (the gateway), else the peer's address "
        "is the client's, for every per-address limit",
        parse=_networks,
    )
    sync_batch_max: int = setting(
        200,
        "search_sync: most changes per Typesense import",
        minimum=1,
    )
    sync_batch_wait_ms: int = setting(
        50,
        "search_sync: how long it gathers a batch",
    )
    outbox_poll_seconds: float = setting(
        1.0,
        "outbox relay poll interval (besides `LISTEN`)",
    )

    @property
    def typesense_nodes(self) -> tuple[str, ...]:
        """The URL of each Typesense node (one unless a cluster's nodes are listed)."""
        return tuple(url.strip() for url in self.typesense_url.split(",") if url.strip())
