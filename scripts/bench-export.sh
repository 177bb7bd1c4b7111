#!/usr/bin/env bash
# Event export benchmark: `GET /api/v1/events` (JSON lines, streamed) of 100k and 1M stored events against
# `psql \copy (…) TO STDOUT CSV` of the same rows on the same PostgreSQL, in one run. Prints MB, seconds
# and MB/s of each, the ratio Tao/psql, and Tao's peak resident memory (VmHWM) after each export: it must
# not grow with the export size (the endpoint streams page by page).
#
#   scripts/bench-export.sh                        # 100000 then 1000000 events
#   BENCH_SIZES="20000 100000" scripts/bench-export.sh
#
# PostgreSQL comes from TAO_TEST_PG_URL (scripts/test.sh starts one on 127.0.0.1:54329); psql is needed.
# Events are generated in the database (a compact push payload, ~1 KiB each), so 1M events take about a
# GiB of disk and a few minutes to generate.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${BENCH_SIZES:-"100000 1000000"}
PG_ADMIN=${TAO_TEST_PG_URL:-postgres://postgres@127.0.0.1:54329/postgres}
PORT=${BENCH_PORT:-47811}
DB="tao_bench_export_$$"
URL="${PG_ADMIN%/*}/$DB"

cargo build --release --quiet --bin tao
TAO=${CARGO_TARGET_DIR:-target}/release/tao
WORK=$(mktemp -d)
PID=""
cleanup() {
  [ -z "$PID" ] || { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
  psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

psql -q "$PG_ADMIN" -c "CREATE DATABASE $DB" >/dev/null
"$TAO" migrate --database-url "$URL" >/dev/null
TOKEN=$("$TAO" token create --name bench --scope read --database-url "$URL" 2>/dev/null)
# A push payload as GitLab sends it, compacted, with one commit (about 1 KiB).
PAYLOAD=$(python3 -c '
import json
d = json.load(open("tests/fixtures/gitlab/webhooks/push.json"))
d["commits"] = d["commits"][:1]
print(json.dumps(d, separators=(",", ":")))')
PAYLOAD_SQL=${PAYLOAD//\'/\'\'}

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

have=0
printf '%-10s %-8s %10s %8s %10s %12s %s\n' events what MB s MB/s ratio "tao VmHWM"
for n in $SIZES; do
  if [ "$n" -gt "$have" ]; then
    psql -q "$URL" -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO gitlab_event (delivery_id, event_header, kind, project_id, project_path, ref, object_key, received_at,
                          state, attempts, next_attempt_at, processed_at)
SELECT 'bench-' || g, 'Push Hook', 'push', 15, 'monitor/api', 'refs/heads/main', 'push:15', 1700000000000 + g,
       'processed', 1, 0, 1700000000000 + g
FROM generate_series($((have + 1)), $n) AS g;
INSERT INTO gitlab_event_payload (event_id, payload)
SELECT e.id, '$PAYLOAD_SQL' FROM gitlab_event e
WHERE NOT EXISTS (SELECT 1 FROM gitlab_event_payload p WHERE p.event_id = e.id);
ANALYZE gitlab_event; ANALYZE gitlab_event_payload;
SQL
    have=$n
  fi
  TAO_EVENT_WORKERS=0 TAO_LOG=warn "$TAO" serve --listen "127.0.0.1:$PORT" --database-url "$URL" >"$WORK/serve.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.05; done
  start=$(date +%s.%N)
  bytes=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/events" | wc -c)
  end=$(date +%s.%N)
  hwm=$(awk '/VmHWM/ {print $2 " " $3}' "/proc/$PID/status")
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  tao_s=$(calc "$end - $start")
  start=$(date +%s.%N)
  pbytes=$(psql -q "$URL" -c "\\copy (SELECT e.*, p.payload FROM gitlab_event e LEFT JOIN gitlab_event_payload p ON p.event_id = e.id ORDER BY e.id) TO STDOUT WITH CSV" | wc -c)
  end=$(date +%s.%N)
  psql_s=$(calc "$end - $start")
  tao_mbs=$(calc "$bytes / 1048576 / $tao_s")
  psql_mbs=$(calc "$pbytes / 1048576 / $psql_s")
  printf '%-10s %-8s %10.1f %8.2f %10.1f %12.2f %s\n' "$n" tao "$(calc "$bytes / 1048576")" "$tao_s" "$tao_mbs" \
    "$(calc "$tao_mbs / $psql_mbs")" "$hwm"
  printf '%-10s %-8s %10.1f %8.2f %10.1f\n' "$n" psql "$(calc "$pbytes / 1048576")" "$psql_s" "$psql_mbs"
done
