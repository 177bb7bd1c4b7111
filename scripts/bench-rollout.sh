#!/usr/bin/env bash
# Rollout benchmark (issue #14): one busybox web component on 3 real sshd hosts (the machine's Docker
# engine, images from the local registry, a real HAProxy per host), deployed 1.0.0 → 1.1.0 → 1.0.0 …
# with each strategy — recreate, rolling (batch 1), blue-green — while a prober sends HTTP requests to
# every published port (3 connections per port, each on fresh TCP connections). Prints, side by side
# from one run: requests, failed requests, the longest gap without a successful answer, the mean deploy
# wall time and its ratio to recreate.
#
#   scripts/bench-rollout.sh                        # defaults: 2 rounds (4 deploys) per strategy, drain 1s
#   BENCH_ROUNDS=5 BENCH_DRAIN=5s scripts/bench-rollout.sh
#
# Goals: zero failed requests for blue-green; its extra wall time under 20% of a recreate deploy (the
# drain is part of a blue-green deploy's wall time: it is the user's setting, reported beside it).
# Needs what scripts/test.sh installs (sshd, docker-registry, busybox-static, haproxy) and root.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_ROUNDS=${BENCH_ROUNDS:-2} BENCH_DRAIN=${BENCH_DRAIN:-1s}
cargo test --quiet --test it rollout::bench_rollout_strategies -- --ignored --nocapture --test-threads=1 2>&1 |
  grep -v -E '^\S*\s+(INFO|WARN|DEBUG)|^\s*$|^running|^test result|^test rollout'
