#!/usr/bin/env bash
# Writes the API's OpenAPI document, generated from the code, to
# docs/openapi.json (the console serves that file at /api/openapi.json; a
# test fails when it is not what the code generates). Run it after changing
# an API type or route, and commit the file.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_toolchain
cargo run --locked --quiet -p switchboard-contract --bin openapi > docs/openapi.json.new
mv docs/openapi.json.new docs/openapi.json
echo "wrote docs/openapi.json"
