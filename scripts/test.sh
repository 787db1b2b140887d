#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is needed,
# builds the components once, starts a loopback Redis for the Redis-backed
# cases, checks formatting, module structure and lints, runs every test,
# then audits the log lines the app wrote during the run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_toolchain

if ! command -v redis-server >/dev/null 2>&1; then
    echo "test.sh: installing redis-server (Debian package) for the Redis-backed cases"
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq redis-server >/dev/null ||
        echo "test.sh: could not install redis-server; Redis cases will be skipped"
fi
# The console's browser tests drive Debian's Chromium through chromedriver;
# without them those tests say they are skipped and the rest runs.
if ! command -v chromedriver >/dev/null 2>&1; then
    echo "test.sh: installing chromium and chromium-driver (Debian packages) for the console's browser tests"
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq chromium chromium-driver >/dev/null ||
        echo "test.sh: could not install chromium; the console's browser tests will be skipped"
fi
redis_dir=$(mktemp -d)
# Stops Redis and waits for it (it writes its log while shutting down), so
# the folder can go; a cleanup failure must not turn a green run red.
cleanup() {
    if [ -n "${port:-}" ]; then redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; fi
    if [ -f "$redis_dir/redis.pid" ]; then kill "$(cat "$redis_dir/redis.pid")" 2>/dev/null || true; fi
    rm -rf "$redis_dir" 2>/dev/null || true
}
trap cleanup EXIT
if command -v redis-server >/dev/null 2>&1; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --daemonize yes \
        --pidfile "$redis_dir/redis.pid" --dir "$redis_dir" --logfile "$redis_dir/redis.log"
    for _ in $(seq 50); do
        if redis-cli -p "$port" ping >/dev/null 2>&1; then
            export SWITCHBOARD_TEST_REDIS_URL="redis://127.0.0.1:$port"
            break
        fi
        sleep 0.1
    done
    [ -n "${SWITCHBOARD_TEST_REDIS_URL:-}" ] || echo "test.sh: redis-server did not start; Redis cases will be skipped"
fi

cargo fmt --all --check
# Module layers without cycles, functions that read like their steps.
python3 scripts/check-structure.py
# The SpinKube manifests (deploy/spinkube/) against spin.toml; they are read
# with PyYAML.
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
    echo "test.sh: installing PyYAML for scripts/check-deploy.py"
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    python3 -m pip install -q pyyaml ||
        { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq python3-yaml >/dev/null; }
fi
python3 scripts/check-deploy.py
# The API's contract: a valid OpenAPI document, and the README's examples fit it.
scripts/check-contract.sh
build_wasm
# The host's cargo commands below all select the default members in the
# release profile, so they resolve the same features and share what they
# compile: clippy's build scripts and proc-macros serve the tests, and the
# tests' build serves the rest. A narrower selection (`-p devhost`, `-p e2e`)
# would resolve fewer features and rebuild most of the tree, wasmtime too.
cargo clippy --locked --release --all-targets -- -D warnings
cargo clippy --locked --target wasm32-wasip2 --release "${WASM_PACKAGES[@]}" -- -D warnings
# Every line the guests write goes to one file, which the log audit reads
# after the suite (R-OPS-2: no secret or customer data in any of them).
export DEVHOST_GUEST_LOG_FILE="$redis_dir/guest.log"
# It also builds $CARGO_TARGET_DIR/release/devhost, which the dev host's own
# tests (devhost/tests/) run and fuzz-contract.sh serves.
cargo test --locked --release
cargo test --locked --release --test e2e -- --ignored --exact operations::log_audit_of_the_whole_suite
# The running app against its contract: schemathesis tries every operation
# with a key of each role and fails on any answer the contract does not describe.
scripts/fuzz-contract.sh
