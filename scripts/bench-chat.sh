#!/usr/bin/env bash
# Chat interactions benchmark (issue #7): signed Discord interactions (9 in 10 `/status env-1`, 1 in 10
# `/deploy monitor 1.0.0 env-1`) sent open-loop at increasing rates to an embedded Tao (SQLite, the
# example catalog plus five test environments) while 5 deploys run (held by a fake executor for the whole
# run), next to a peer in the same process and run: a minimal axum handler that verifies the Ed25519
# signature and answers {"type":5}, the ceiling of any verifier. Prints p50/p99/max time from send to the
# 200 deferred answer per rate, and Tao/peer ratios. Discord's REST API is a local double.
#
#   scripts/bench-chat.sh                          # defaults: 25 50 100 200 per second, 3 s each
#   BENCH_RATES="100 400" BENCH_SECONDS=5 scripts/bench-chat.sh
#
# Target: p99 < 100 ms at every rate on the 2-core development machine (Discord's deadline is 3 s).
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=${BENCH_RATES:-"25 50 100 200"}
SECONDS_PER_RATE=${BENCH_SECONDS:-3}

cargo build --release --quiet --example bench_chat
BENCH=${CARGO_TARGET_DIR:-target}/release/examples/bench_chat
"$BENCH" --rates "$RATES" --seconds "$SECONDS_PER_RATE"
