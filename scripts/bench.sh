#!/usr/bin/env bash
# Benchmarks (they print numbers; nothing here passes or fails on speed).
# `scripts/bench.sh` runs bench-health on the in-memory store; extra
# arguments go to it, e.g. `--redis redis://127.0.0.1:6379 --seconds 10`.
# `scripts/bench.sh inbound [...]` runs bench-inbound (the signed callbacks of
# Twilio WhatsApp, TeleSign SMS, Messenger and Business Messages, on existing
# and new conversations) instead, with the same arguments;
# `scripts/bench.sh outbound [...]` runs bench-outbound (100-contact send
# calls against a loopback TeleSign simulator; 8 connections unless
# `--connections` says otherwise); `scripts/bench.sh health [...]` names the
# default; `scripts/bench.sh all [...]` runs the three in turn, with the same
# arguments, so one run prints every figure. Each compares the dev host with
# two native baselines (the core on MemoryPorts, and on the dev host's own
# store: in-memory SQLite, or Redis with `--redis`, each side on its own
# database of it, emptied first; see README, "Benchmarks"), health and
# inbound also with the no-op component (benches/noop), and ends with the
# key-value calls and fuel (Wasm instructions) of one request.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=health
case "${1:-}" in
    health | inbound | outbound | all)
        bench=$1
        shift
        ;;
esac
source scripts/env.sh
ensure_toolchain
build_wasm
# The default members, like run.sh and test.sh: `-p bench` would resolve
# other features and compile wasmtime a second time.
cargo build --locked --release --bin bench-health --bin bench-inbound --bin bench-outbound
if [ "$bench" = all ]; then
    for one in health inbound outbound; do
        "$CARGO_TARGET_DIR/release/bench-$one" "$@"
        echo
    done
else
    "$CARGO_TARGET_DIR/release/bench-$bench" "$@"
fi
