#!/usr/bin/env bash
# Builds every component (release, wasm32-wasip2) once, where spin.toml expects them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_toolchain
build_wasm
