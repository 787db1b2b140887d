# Sourced by the other scripts: one place for the build environment.
#
# One Cargo target folder outside the clone, so every clone on this machine
# (and CI's fresh clones) reuses the slow-to-build wasmtime artifacts. A fresh
# machine simply starts it empty.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Everything a build needs that is not in the repository.
ensure_toolchain() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again" >&2
        exit 1
    fi
    if ! rustup target list --installed | grep -qx wasm32-wasip2; then
        rustup target add wasm32-wasip2
    fi
}

# Every Wasm component: the app's (spin.toml), the conformance suite's guest
# and the benches' no-op (benches/noop/spin.toml).
WASM_PACKAGES=(-p admin -p console -p templates -p outbound -p conversations -p webhook-twilio -p webhook-telesign -p webhook-facebook -p webhook-gbm -p conformance-guest -p bench-noop)

# Builds every component once (release, wasm32-wasip2) and puts the .wasm
# files where spin.toml expects them, whatever CARGO_TARGET_DIR is.
build_wasm() {
    cargo build --locked --target wasm32-wasip2 --release "${WASM_PACKAGES[@]}"
    local out="$CARGO_TARGET_DIR/wasm32-wasip2/release"
    if [ "$(cd "$out" && pwd -P)" != "$(mkdir -p target/wasm32-wasip2/release && cd target/wasm32-wasip2/release && pwd -P)" ]; then
        cp -p "$out"/*.wasm target/wasm32-wasip2/release/
    fi
}
