#!/usr/bin/env bash
# Writes the API's OpenAPI document, generated from the code, to
# docs/openapi.json (the console serves that file at /api/openapi.json; a
# test fails when it is not what the code generates), and the Power Automate
# connector's Swagger 2.0 definition, converted from it, to
# connectors/power-automate/. Run it after changing an API type or route,
# and commit the files.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_toolchain
cargo run --locked --quiet -p switchboard-contract --bin openapi > docs/openapi.json.new
mv docs/openapi.json.new docs/openapi.json
echo "wrote docs/openapi.json"
connector=connectors/power-automate/apiDefinition.swagger.json
cargo run --locked --quiet -p switchboard-contract --bin openapi -- --power-automate > "$connector.new"
mv "$connector.new" "$connector"
echo "wrote $connector"
