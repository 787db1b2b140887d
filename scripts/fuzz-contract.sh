#!/usr/bin/env bash
# Fuzzes the API against its contract (docs/openapi.json) with schemathesis:
# starts the dev host on a free loopback port with spin.toml, seeds an
# organisation, runs every operation with a key of each role (and the
# operator's and scheduler's tokens where the document names them), and
# fails on any answer the document does not describe (a 5xx, an undocumented
# status or content type, a body or header off its schema).
#
#   scripts/fuzz-contract.sh                  # what scripts/test.sh runs
#   scripts/fuzz-contract.sh --examples 500 --max-time 3600   # a longer hunt
#   (also --seed N; see scripts/fuzz-contract.py --help)
#
# It builds nothing: scripts/test.sh has built the components and the dev
# host (or run `source scripts/env.sh; build_wasm; cargo build --release -p
# devhost`). Without PyPI it says so and skips. The app's calls to providers
# go to a closed loopback port, so nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/contract-venv.sh

devhost="$CARGO_TARGET_DIR/release/devhost"
for built in "$devhost" target/wasm32-wasip2/release/admin.wasm; do
    if [ ! -e "$built" ]; then
        echo "fuzz-contract: $built is missing: build with scripts/test.sh (or build_wasm and cargo build --locked --release --bin devhost)" >&2
        exit 1
    fi
done
if ! python=$(contract_venv); then
    echo "fuzz-contract: skipped: the contract tools are not installed"
    exit 0
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=$(free_port)
# Bound and released: nothing listens there, so every provider call is
# refused at once, and the app answers its documented 502s.
closed="http://127.0.0.1:$(free_port)"
operator_token="fuzz-operator-$RANDOM$RANDOM"
dispatch_token="fuzz-dispatch-$RANDOM$RANDOM"
scratch=$(mktemp -d)
printf '[key_value_store.default]\ntype = "spin"\n' > "$scratch/runtime-config.toml"

# The fuzzer and the dev host go when this script does, whatever ends it.
stop() {
    local pid
    for pid in ${driver_pid:-} ${host_pid:-}; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$scratch"
}
trap stop EXIT
trap 'exit 130' INT TERM HUP

variables=(--variable "public_base_url=http://127.0.0.1:$port" --variable "admin_token=$operator_token"
    --variable "dispatch_token=$dispatch_token" --variable "bot_origin=$closed")
for provider in twilio_api_base telesign_api_base graph_api_base gbm_api_base google_oauth_base; do
    variables+=(--variable "$provider=$closed")
done
"$devhost" up --listen "127.0.0.1:$port" --from spin.toml \
    --runtime-config-file "$scratch/runtime-config.toml" "${variables[@]}" 2> "$scratch/devhost.log" &
host_pid=$!
up=""
for _ in $(seq 600); do
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:$port/health" 2>/dev/null; then up=yes; break; fi
    if ! kill -0 "$host_pid" 2>/dev/null; then break; fi
    sleep 0.1
done
if [ -z "$up" ]; then
    cat "$scratch/devhost.log" >&2
    echo "fuzz-contract: the dev host did not start" >&2
    exit 1
fi

"$python" scripts/fuzz-contract.py --base "http://127.0.0.1:$port" \
    --operator-token "$operator_token" --dispatch-token "$dispatch_token" "$@" &
driver_pid=$!
wait "$driver_pid"
