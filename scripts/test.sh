#!/usr/bin/env bash
# Sets up and runs every check Tao's CI runs, on a fresh Debian machine with a Rust toolchain:
#   1. installs the Debian packages the tests need (when missing),
#   2. starts a throwaway PostgreSQL server on loopback (reused when already running),
#   3. cargo fmt --check, cargo clippy -D warnings, cargo test (store tests on SQLite and PostgreSQL),
#   4. a smoke run of the built binary: serve, token, catalog, release, graceful stop.
# Idempotent: running it twice works. Needs root (or sudo) only to install packages.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf '\n==> %s\n' "$*"; }

# ---- 1. packages ----------------------------------------------------------------------------------
missing=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || missing+=(postgresql)
command -v curl >/dev/null || missing+=(curl)
command -v shellcheck >/dev/null || missing+=(shellcheck)
# deploy tests: real sshd hosts, a real registry, images built from busybox (docs/DESIGN.md §5)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null || missing+=(openssh-client)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
[ -x /bin/busybox ] || missing+=(busybox-static)
# blue-green rollouts: the per-host proxy's test image is built from Debian's HAProxy (tests/it/support)
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v docker >/dev/null || missing+=(docker.io)
# the web console's browser tests: headless chromium over WebDriver (tests/it/support/browser.rs)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# ---- 2. PostgreSQL ---------------------------------------------------------------------------------
# A private cluster (not the distribution's), trust auth on 127.0.0.1 only, data in /tmp (never in the
# repository); fsync off: it holds only test databases.
PG_PORT=${TAO_TEST_PG_PORT:-54329}
PG_DIR=${TAO_TEST_PG_DIR:-/tmp/tao-test-pg}
export TAO_TEST_PG_URL="postgres://postgres@127.0.0.1:${PG_PORT}/postgres"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# `-U postgres`: without it pg_isready logs in as the calling user, and the server logs a FATAL each run.
if ! "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres; then
  say "starting PostgreSQL on 127.0.0.1:$PG_PORT ($PG_DIR)"
  if [ ! -f "$PG_DIR/PG_VERSION" ]; then
    rm -rf "$PG_DIR"; mkdir -p "$PG_DIR"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$PG_DIR"
    as_pg "$pg_bin/initdb" -D "$PG_DIR" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  as_pg "$pg_bin/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $PG_PORT -k /tmp -c fsync=off -c max_connections=200" start >/dev/null
fi
"$pg_bin/pg_isready" -h 127.0.0.1 -p "$PG_PORT" -U postgres

# ---- 2b. deploy test prerequisites ------------------------------------------------------------------
# The harness starts its own sshd instances and registry; sshd needs its privilege separation directory,
# and the tests need a running Docker engine (they create the deploy user `tao-deploy` themselves).
[ "$(id -u)" -eq 0 ] && mkdir -p /run/sshd
docker info >/dev/null 2>&1 || { echo "Docker engine not reachable: start dockerd (deploy tests use it)" >&2; exit 1; }

# ---- 3. checks and tests ---------------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
say "cargo test (SQLite and PostgreSQL at $TAO_TEST_PG_URL)"
# CI must never hang: each test has its own limit (tests/it/support: `limit`, HTTP and PostgreSQL
# timeouts), and the whole run has this one (build included; exit 124 when it fires). libtest names any
# test running for over 60 s as it goes.
TEST_TIMEOUT=${TAO_TEST_TIMEOUT:-1500}
timeout --signal=TERM --kill-after=30 "$TEST_TIMEOUT" \
  cargo test --locked --all-targets --no-fail-fast 2>&1 | tee "${TMPDIR:-/tmp}/tao-test.log"
status=${PIPESTATUS[0]}
[ "$status" -ne 124 ] || echo "cargo test exceeded ${TEST_TIMEOUT}s (TAO_TEST_TIMEOUT) and was stopped" >&2
test "$status" -eq 0

# ---- 4. smoke run of the built binary --------------------------------------------------------------
say "smoke run of the built binary"
cargo build --locked --quiet
TAO="${CARGO_TARGET_DIR:-$ROOT/target}/debug/tao"
"$ROOT/scripts/smoke.sh" "$TAO" "sqlite"
"$ROOT/scripts/smoke.sh" "$TAO" "$TAO_TEST_PG_URL"

say "all checks passed"
