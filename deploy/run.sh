#!/usr/bin/env bash
# `make run`: bring the development stack up in the foreground; Ctrl-C takes it all down.
#
# setup -> migrate -> demo data (skipped when present) -> gateway config -> honcho.
# Honcho stops every process when one exits or on Ctrl-C; the EXIT trap then stops the
# servers (PostgreSQL, Redis, RabbitMQ) that setup.sh started for this run, and only those.
set -euo pipefail
cd "$(dirname "$0")/.."

# Defaults of the run command; a variable already set in the environment wins. dev: the
# development secrets (which prod, the default without TICKETING_ENV, refuses) and
# POST /auth/dev-token.
export TICKETING_ENV="${TICKETING_ENV:-dev}"
export PYTHONUNBUFFERED=1
DEMO_EVENTS="${DEMO_EVENTS:-10000}"
export PATH="$PWD/.venv/bin:$PATH:/usr/sbin:/sbin"
# `make run-cluster` (deploy/run_cluster.py) runs this too, once its clusters are up:
# RUN_PROCFILE is its Procfile, RUN_DIR where the gateway's config goes, and RUN_SETUP=no
# leaves out setup.sh, which would start the machine's own servers were they down.
PROCFILE="${RUN_PROCFILE:-deploy/Procfile}"
export RUN_DIR="${RUN_DIR:-$PWD/.run}"

say() { printf 'run: %s\n' "$*" >&2; }

started=()
started_known=false
stop_started() {
    local name port entry
    # Interrupted during setup: its list so far is the best record of what it started.
    if ! $started_known && [ -f .run/started-services ]; then mapfile -t started < .run/started-services; fi
    for entry in "${started[@]}"; do
        read -r name port <<<"$entry"
        say "stopping $name (started by this run)"
        case "$name" in
            postgres) pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main stop || true ;;
            redis) redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true ;;
            rabbitmq) rabbitmqctl stop >/dev/null 2>&1 || true ;;
        esac
    done
}
trap stop_started EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${RUN_SETUP:-yes}" != no ]; then
    deploy/setup.sh
    mapfile -t started < .run/started-services
fi
started_known=true

python -m deploy.probe ports-free \
    || { say "another stack (or another \`make run\`) holds those ports; stop it or set TICKETING_*_PORT"; exit 1; }
# Access and admission tokens are RS256 (unless TICKETING_JWT_ALGORITHM=HS256 is set): the
# key pair is made on the first start and kept in .run/keys; every service verifies with
# the public key, the waitingroom alone signs. `python -m ticketing.keys rotate .run/keys`
# rolls it over (see ticketing/keys.py).
export TICKETING_JWT_ALGORITHM="${TICKETING_JWT_ALGORITHM:-RS256}"
if [ "${TICKETING_JWT_ALGORITHM^^}" = RS256 ] && [ -z "${TICKETING_JWT_PUBLIC_KEY:-}" ]; then
    python -m ticketing.keys init .run/keys
    export TICKETING_JWT_PUBLIC_KEY="$PWD/.run/keys/public.pem"
    export TICKETING_JWT_PRIVATE_KEY_FILE="${TICKETING_JWT_PRIVATE_KEY_FILE:-$PWD/.run/keys/signing.pem}"
fi
python -m ticketing.db.migrate up
python -m ticketing.demo --events "$DEMO_EVENTS"
python -m deploy.render_nginx --output "$RUN_DIR/nginx.conf" --prefix "$RUN_DIR/nginx"
nginx -t -q -c "$RUN_DIR/nginx.conf" -p "$RUN_DIR/nginx" -e stderr

say "starting the stack (TICKETING_ENV=$TICKETING_ENV); Ctrl-C stops it"
honcho -f "$PROCFILE" -d . start
