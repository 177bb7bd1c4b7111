#!/usr/bin/env bash
# CI template serving benchmark: p50/p99 latency of GET /ci/v1/monitor/api/component.yml on a cache miss
# (a new catalog revision before each request, so each one renders) and cached, then cached requests/s
# next to nginx serving the same rendered file statically (reference only: nginx does no work per request).
#
#   scripts/bench-ci.sh                       # defaults: 500 requests per latency run, 5 s at 16 clients
#   BENCH_N=2000 BENCH_SECONDS=10 BENCH_CONCURRENCY=32 scripts/bench-ci.sh
#
# Installs nginx-light when nginx is missing (Debian). Target: cache-miss p99 < 10 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_N:-500}
SECONDS_RPS=${BENCH_SECONDS:-5}
CONCURRENCY=${BENCH_CONCURRENCY:-16}
PORT_TAO=${BENCH_PORT:-47811}; PORT_NGINX=$((PORT_TAO + 1))
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx-light"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx-light
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet --bin tao --example bench_ci
OUT=${CARGO_TARGET_DIR:-target}/release
TAO=$OUT/tao; BENCH=$OUT/examples/bench_ci
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; echo "port $1 did not open" >&2; exit 1; }

cp -r examples/tao.yaml examples/templates "$WORK/"
DB="sqlite://$WORK/tao.db"
TOKEN=$("$TAO" --json token create --name bench --scope admin --database-url "$DB" --catalog "$WORK/tao.yaml" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
[ -n "$TOKEN" ] || { echo "could not create a token" >&2; exit 1; }
TAO_LOG=warn "$TAO" serve --listen "127.0.0.1:$PORT_TAO" --database-url "$DB" --catalog "$WORK/tao.yaml" \
  --public-url https://tao.example & PIDS+=($!)

mkdir -p "$WORK/www/ci/v1/monitor/api"
chmod a+rx "$WORK"   # nginx's workers run as another user when started by root
"$TAO" ci render component --project monitor/api --catalog "$WORK/tao.yaml" --public-url https://tao.example \
  > "$WORK/www/ci/v1/monitor/api/component.yml"
cat > "$WORK/nginx.conf" <<CONF
daemon off;
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  types { text/yaml yml; }
  client_body_temp_path $WORK/nginx-tmp;
  server { listen 127.0.0.1:$PORT_NGINX; root $WORK/www; etag on; }
}
CONF
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" & PIDS+=($!)
wait_port "$PORT_TAO"; wait_port "$PORT_NGINX"

PATH_CI=/ci/v1/monitor/api/component.yml
echo "== GET $PATH_CI ($(nproc) cores)"
"$BENCH" miss --base "http://127.0.0.1:$PORT_TAO" --token "$TOKEN" --catalog "$WORK/tao.yaml" --path "$PATH_CI" --n "$N"
"$BENCH" cached --label "tao, cached" --url "http://127.0.0.1:$PORT_TAO$PATH_CI" --n "$N"
"$BENCH" cached --label "nginx, static file" --url "http://127.0.0.1:$PORT_NGINX$PATH_CI" --n "$N"
"$BENCH" rps --label "tao, cached" --url "http://127.0.0.1:$PORT_TAO$PATH_CI" --concurrency "$CONCURRENCY" --seconds "$SECONDS_RPS"
"$BENCH" rps --label "nginx, static file" --url "http://127.0.0.1:$PORT_NGINX$PATH_CI" --concurrency "$CONCURRENCY" --seconds "$SECONDS_RPS"
