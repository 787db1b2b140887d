#!/usr/bin/env bash
# Installs what is needed, builds the app, and serves spin.toml on
# 127.0.0.1:3000 with the dev host (like `spin up`). Extra arguments go to
# `devhost up`, e.g. --listen 127.0.0.1:8080 or --runtime-config-file F.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_toolchain
build_wasm
# The default members, like test.sh's cargo commands: `-p devhost` would
# resolve other features and compile wasmtime a second time.
cargo build --locked --release --bin devhost
exec "$CARGO_TARGET_DIR/release/devhost" up --listen 127.0.0.1:3000 --from spin.toml "$@"
