#!/usr/bin/env bash
# Make this machine ready to run and test ticketing; idempotent and quick when it already is.
#
#   1. installs the Debian packages that are missing (apt-get runs only then)
#   2. starts PostgreSQL, Redis and RabbitMQ when they are local and not answering
#   3. creates .venv and installs requirements.lock, then the project itself (--no-deps),
#      when requirements.lock or pyproject.toml differ from what was installed last time
#   4. waits until each server answers its own protocol (not just an open port)
#
# `deploy/setup.sh --venv-only` (make venv, for make check) does step 3 alone, and the
# Python packages of step 1 when Python is missing: no server is started or waited for.
# `deploy/setup.sh --no-servers` (make run-cluster, which runs clusters of its own) does
# steps 1 and 3.
#
# The servers this run started are listed in .run/started-services (one a line, rewritten
# every run) so that deploy/run.sh stops exactly those when `make run` ends.
# Addresses come from the TICKETING_* URLs: a remote server is waited for, never started.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$PATH:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive
VENV=.venv
STAMP=$VENV/.installed  # holds the checksum of the lock and pyproject.toml it installed
LOCK=requirements.lock
STARTED=.run/started-services
WAIT_SECONDS=${SETUP_WAIT_SECONDS:-120}

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) for: $*"
    fi
}

venv_only=false
servers=true
case "${1:-}" in
    --venv-only) venv_only=true ;;
    --no-servers) servers=false ;;
    "") ;;
    *) die "unknown argument: $1 (--venv-only or --no-servers)" ;;
esac

python_ok() { command -v python3.11 >/dev/null && python3.11 -c 'import ensurepip, venv' 2>/dev/null; }

# --- 3. virtualenv, from the lock (a function: the full run does it while servers boot) ----
install_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        local base; base=$(command -v python3.11 || command -v python3)
        say "creating $VENV with $base"
        "$base" -m venv "$VENV"
    fi
    local want; want=$(cat "$LOCK" pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
        say "installing $LOCK and the project into $VENV (first run, or the lock or pyproject.toml changed)"
        # Exactly the pinned versions, each checked against its hash; then the project
        # alone, editable, so that nothing unpinned slips in through it.
        "$VENV/bin/python" -m pip install -q --require-hashes -r "$LOCK"
        "$VENV/bin/python" -m pip install -q --no-deps -e .
        echo "$want" >"$STAMP"
    else
        say "$VENV: up to date with $LOCK"
    fi
}

if $venv_only; then
    if [ ! -x "$VENV/bin/python" ] && ! python_ok; then
        say "installing python3 python3-venv"
        as_root apt-get update -q
        as_root apt-get install -y -q --no-install-recommends python3 python3-venv
    fi
    install_venv
    exit 0
fi

mkdir -p .run
if $servers; then : >"$STARTED"; fi

# --- 1. Debian packages ---------------------------------------------------------------------
missing=()
{ compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && command -v pg_ctlcluster >/dev/null; } \
    || missing+=(postgresql)
{ command -v redis-server >/dev/null && command -v redis-cli >/dev/null; } || missing+=(redis-server)
command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
command -v nginx >/dev/null || missing+=(nginx)
# The gateway answers queue joins itself in Lua (deploy/lua/queue_join.lua): Debian's Lua
# module for nginx, its Redis client (lua-resty-redis; Debian makes it pull nginx-extras, a
# set of dynamic modules our config never loads), cjson, and lrucache (the verified RS256
# tokens; RSA itself is nginx's own OpenSSL, through LuaJIT's FFI).
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || missing+=(libnginx-mod-http-lua)
[ -f /usr/share/lua/5.1/nginx/redis.lua ] || missing+=(lua-nginx-redis)
compgen -G '/usr/lib/*/lua/5.1/cjson.so' >/dev/null || missing+=(lua-cjson)
[ -f /usr/share/lua/5.1/resty/lrucache.lua ] || missing+=(lua-resty-lrucache)
command -v wrk >/dev/null || missing+=(wrk)
# pg_auto_failover (keeper and monitor extension): the PostgreSQL failover formation of
# deploy/pg_autofailover.py and its tests. PostgreSQL 15 is what Debian 12 installs.
command -v pg_autoctl >/dev/null || missing+=(pg-auto-failover-cli)
pg_major=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n1)
compgen -G '/usr/lib/postgresql/*/lib/pgautofailover.so' >/dev/null \
    || missing+=("postgresql-${pg_major:-15}-auto-failover")
# promtool checks deploy/prometheus/ (tests/integration/platform/test_monitoring.py).
command -v promtool >/dev/null || missing+=(prometheus)
# Debian's chromium: the browser tests drive it through Playwright (`playwright install`
# downloads its own browsers from the internet; this uses the distribution's instead).
command -v chromium >/dev/null || missing+=(chromium)
if [ ! -x "$VENV/bin/python" ] && ! python_ok; then missing+=(python3 python3-venv); fi
if [ ${#missing[@]} -gt 0 ]; then
    say "installing missing packages: ${missing[*]}"
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    say "packages: all present"
fi

# `make run-cluster` (--no-servers): packages and the virtualenv; it starts servers of its own.
if ! $servers; then
    install_venv
    exit 0
fi

# --- 2. start local servers that do not answer ----------------------------------------------
if [ -x "$VENV/bin/python" ]; then PY=$VENV/bin/python; else PY=$(command -v python3.11 || command -v python3); fi

pg_version() {  # newest installed major version; its "main" cluster is created if absent
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
    if [ -z "$version" ]; then
        version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
        say "creating PostgreSQL $version cluster 'main'"
        as_root pg_createcluster "$version" main >&2
    fi
    echo "$version"
}

start_server() {  # name port
    case "$1" in
        postgres)
            local version; version=$(pg_version)
            say "starting PostgreSQL $version (cluster main)"
            as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start ;;
        redis)
            say "starting Redis on 127.0.0.1:$2"
            redis-server --daemonize yes --bind 127.0.0.1 --port "$2" --save "" --appendonly no >/dev/null ;;
        rabbitmq)
            say "starting RabbitMQ (it takes a few seconds to answer)"
            as_root rabbitmq-server -detached ;;
    esac
    echo "$1 $2" >>"$STARTED"
}

password_local_postgres() {
    # Development DSNs carry no password; a fresh Debian cluster wants one over TCP. The
    # DSN's role gets a password of its own, kept in ~/.pgpass (libpq and asyncpg read it,
    # deploy/probe.py too), not 'trust' rules that would let any local user in as anyone.
    local url=${TICKETING_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/ticketing}
    local role port
    read -r role port < <(python3 -c 'import sys; from urllib.parse import urlsplit
u = urlsplit(sys.argv[1]); print(u.username or "postgres", u.port or 5432)' "$url")
    local pgpass=${PGPASSFILE:-$HOME/.pgpass} password
    password=$(awk -F: -v r="$role" -v p="$port" \
        '$1 == "127.0.0.1" && $2 == p && $3 == "*" && $4 == r { print $5; exit }' \
        "$pgpass" 2>/dev/null || true)
    if [ -z "$password" ]; then
        password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
        (umask 077; printf '%s\n' "127.0.0.1:$port:*:$role:$password" \
            "localhost:$port:*:$role:$password" >>"$pgpass")
    fi
    chmod 600 "$pgpass"
    say "PostgreSQL wants a password on 127.0.0.1: role $role gets one of its own, kept in $pgpass"
    local sql="DO \$\$ BEGIN
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
            ALTER ROLE \"$role\" WITH LOGIN PASSWORD '$password';
        ELSE
            CREATE ROLE \"$role\" WITH LOGIN CREATEDB PASSWORD '$password';
        END IF; END \$\$"
    as_root runuser -u postgres -- psql -q -p "$port" -c "$sql" >/dev/null
}

status=$("$PY" -m deploy.probe status) || die "cannot probe servers (python: $PY)"
while read -r name state where host port; do
    case "$state/$where" in
        up/*) say "$name: answering on $host:$port" ;;
        down/local) start_server "$name" "$port" ;;
        auth/local) password_local_postgres ;;
        auth/*) die "$name on $host:$port wants a password; put it in TICKETING_DATABASE_URL" ;;
        *) say "$name: $host:$port is $state ($where); waiting for it" ;;
    esac
done <<<"$status"

# --- 3. virtualenv (while the servers boot) -------------------------------------------------
install_venv

# --- 4. wait until every server answers -----------------------------------------------------
wait_all() { "$VENV/bin/python" -m deploy.probe wait postgres redis rabbitmq --timeout "$WAIT_SECONDS"; }
rc=0; wait_all || rc=$?
if [ "$rc" = 3 ]; then password_local_postgres; rc=0; wait_all || rc=$?; fi
[ "$rc" = 0 ] || die "servers not ready (see above)"

if [ -s "$STARTED" ]; then
    say "started by this run: $(cut -d' ' -f1 "$STARTED" | paste -sd' ')"
fi
say "ready"
