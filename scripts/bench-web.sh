#!/usr/bin/env bash
# Web console benchmark (issue #13): 1,000 product versions, 10,000 tasks and 20 environments in a SQLite
# store; the overview, a release diff and the task list are each fetched BENCH_REQUESTS times beside the
# API JSON that carries the same facts, in one run. Prints p50/p99 per page, the ratios to the JSON and
# each page's weight. Goals: within 2x of the JSON, p99 under 50 ms, under 100 KB per page.
#
#   scripts/bench-web.sh                   # 200 requests per page
#   BENCH_REQUESTS=1000 scripts/bench-web.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_REQUESTS=${BENCH_REQUESTS:-200}
cargo test --release --quiet --test it web::bench_console_pages -- --ignored --nocapture --test-threads=1 2>&1 |
  grep -v -E '^\S*\s+(INFO|WARN|DEBUG)|^\s*$|^running|^test result|^test web'
