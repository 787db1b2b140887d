#!/usr/bin/env bash
# Benchmarks (they print numbers; nothing here passes or fails on speed).
# `scripts/bench.sh` runs bench-health on the in-memory store; extra
# arguments go to it, e.g. `--redis redis://127.0.0.1:6379 --seconds 10`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_toolchain
build_wasm
cargo build --locked --release -p bench
"$CARGO_TARGET_DIR/release/bench-health" "$@"
