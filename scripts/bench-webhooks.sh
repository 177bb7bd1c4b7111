#!/usr/bin/env bash
# Webhook intake benchmark: replays the GitLab webhook fixtures (10% redeliveries) at increasing
# concurrency against `tao serve`, next to a minimal axum + sqlx handler doing the same durable insert
# (the ceiling) and a do-nothing handler, on SQLite and on PostgreSQL, in one run. Prints acknowledged
# events/s, p50/p99 ack latency, and checks every distinct delivery is stored exactly once.
#
#   scripts/bench-webhooks.sh                 # defaults: 4000 events per run, concurrency 1 8 32 64
#   BENCH_EVENTS=20000 BENCH_CONCURRENCY="32" scripts/bench-webhooks.sh
#
# PostgreSQL comes from TAO_TEST_PG_URL (scripts/test.sh starts one on 127.0.0.1:54329).
# Target: at 32 senders on SQLite, Tao >= 70% of the ceiling's events/s with p99 < 20 ms, 0 lost/duplicated.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${BENCH_EVENTS:-4000}
LEVELS=${BENCH_CONCURRENCY:-"1 8 32 64"}
BACKENDS=${BENCH_BACKENDS:-"sqlite postgres"}
PG_ADMIN=${TAO_TEST_PG_URL:-postgres://postgres@127.0.0.1:54329/postgres}
PORT_NOOP=${BENCH_PORT:-47801}; PORT_CEIL=$((PORT_NOOP + 1)); PORT_TAO=$((PORT_NOOP + 2))

cargo build --release --quiet --bin tao --example bench_webhooks
OUT=${CARGO_TARGET_DIR:-target}/release
TAO=$OUT/tao; BENCH=$OUT/examples/bench_webhooks
WORK=$(mktemp -d)
PIDS=()
SUFFIX=$$
stop() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }
cleanup() {
  stop
  "$BENCH" dropdb "$PG_ADMIN" "tao_bench_${SUFFIX}_tao" >/dev/null 2>&1 || true
  "$BENCH" dropdb "$PG_ADMIN" "tao_bench_${SUFFIX}_ceiling" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; echo "port $1 did not open" >&2; exit 1; }

for backend in $BACKENDS; do
  if [ "$backend" = sqlite ]; then
    TAO_DB="sqlite://$WORK/tao.db"; CEIL_DB="sqlite://$WORK/ceiling.db"
  else
    "$BENCH" createdb "$PG_ADMIN" "tao_bench_${SUFFIX}_tao"
    "$BENCH" createdb "$PG_ADMIN" "tao_bench_${SUFFIX}_ceiling"
    TAO_DB="${PG_ADMIN%/*}/tao_bench_${SUFFIX}_tao"; CEIL_DB="${PG_ADMIN%/*}/tao_bench_${SUFFIX}_ceiling"
  fi
  echo "== $backend ($EVENTS events per run, every 10th a redelivery)"
  "$BENCH" noop --listen "127.0.0.1:$PORT_NOOP" & PIDS+=($!)
  "$BENCH" ceiling --listen "127.0.0.1:$PORT_CEIL" --db "$CEIL_DB" & PIDS+=($!)
  TAO_EVENT_WORKERS=${BENCH_TAO_WORKERS:-2} TAO_LOG=warn TAO_GITLAB_WEBHOOK_SECRET=bench-secret "$TAO" serve --listen "127.0.0.1:$PORT_TAO" --database-url "$TAO_DB" & PIDS+=($!)
  wait_port "$PORT_NOOP"; wait_port "$PORT_CEIL"; wait_port "$PORT_TAO"
  for c in $LEVELS; do
    "$BENCH" load --label "noop" --url "http://127.0.0.1:$PORT_NOOP/api/v1/gitlab/webhook" --db - --table - --concurrency "$c" --events "$EVENTS"
    "$BENCH" load --label "ceiling/$backend" --url "http://127.0.0.1:$PORT_CEIL/api/v1/gitlab/webhook" --db "$CEIL_DB" --table ceiling_event --concurrency "$c" --events "$EVENTS"
    "$BENCH" load --label "tao/$backend" --url "http://127.0.0.1:$PORT_TAO/api/v1/gitlab/webhook" --db "$TAO_DB" --table gitlab_event --concurrency "$c" --events "$EVENTS"
  done
  stop
done
