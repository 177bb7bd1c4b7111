#!/usr/bin/env bash
# Smoke run of a built `tao` binary against a real server process:
#   scripts/smoke.sh PATH/TO/tao sqlite|postgres://…
# Serves the example catalog on a free port, creates a token, creates and shows a product version through
# the CLI, checks that a bad request changes nothing, then stops the server with SIGTERM and expects a
# clean exit. A PostgreSQL URL gets a fresh database, dropped afterwards.
set -euo pipefail
TAO=$1; DB=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
PID=""; PGDB=""
cleanup() {
  [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
  if [ -n "$PGDB" ]; then psql -q "$DB" -c "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" >/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "smoke: FAILED: $*" >&2; [ ! -f "$WORK/serve.log" ] || tail -n 30 "$WORK/serve.log" >&2; exit 1; }

if [ "$DB" = sqlite ]; then
  export TAO_DATABASE_URL="sqlite://$WORK/tao.db"
else
  PGDB="tao_smoke_$$"
  psql -q "$DB" -c "CREATE DATABASE $PGDB" >/dev/null
  export TAO_DATABASE_URL="${DB%/*}/$PGDB"
fi
cp -r "$ROOT/examples/tao.yaml" "$ROOT/examples/templates" "$WORK/"

"$TAO" catalog check -f "$WORK/tao.yaml" >/dev/null || fail "the example catalog does not validate"
TAO_TOKEN=$("$TAO" token create --name smoke --scope admin 2>/dev/null)
export TAO_TOKEN

# Pick a free port by letting the kernel choose one, then hand it to the server.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export TAO_SERVER="http://127.0.0.1:$PORT"
"$TAO" serve --catalog "$WORK/tao.yaml" --listen "127.0.0.1:$PORT" >"$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
  curl -fsS "$TAO_SERVER/healthz" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || fail "server exited at start"
  sleep 0.1
done
out=$(curl -fsS "$TAO_SERVER/healthz") || fail "healthz"
grep -q '"status":"ok"' <<<"$out" || fail "healthz said: $out"

components=()
for c in ops sql graph agent api self-monitor; do components+=(--component "$c=1.0.0"); done
# Capture first, then match: `grep -q` would close the pipe early.
out=$("$TAO" release create monitor 1.0.0 "${components[@]}") || fail "release create"
grep -q "created monitor 1.0.0" <<<"$out" || fail "release create said: $out"
out=$("$TAO" release create monitor v1.0.0 "${components[@]}") || fail "idempotent re-create"
grep -q "unchanged" <<<"$out" || fail "idempotent re-create said: $out"
if "$TAO" release create monitor 1.0.0 --component ops=9.9.9 >/dev/null 2>&1; then fail "bad release accepted"; fi
out=$("$TAO" release show monitor 1.0.0) || fail "release show"
grep -q "v1.0.0" <<<"$out" || fail "release show said: $out"
"$TAO" --json release list monitor | python3 -c 'import json,sys; assert len(json.load(sys.stdin)) == 1' \
  || fail "release list should hold exactly one version"
out=$("$TAO" env list) || fail "env list"
grep -q "env-1" <<<"$out" || fail "env list said: $out"
out=$("$TAO" deploy monitor 1.0.0 env-1 --dry-run) || fail "deploy --dry-run"
grep -q "plan for env-1: 8 step(s)" <<<"$out" || fail "deploy --dry-run said: $out"

kill -TERM "$PID"
wait "$PID" || fail "server did not stop cleanly on SIGTERM"
PID=""
echo "smoke ($([ "$DB" = sqlite ] && echo sqlite || echo postgres)): ok"
