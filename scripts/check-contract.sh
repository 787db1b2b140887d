#!/usr/bin/env bash
# Checks the API's contract without running the app: docs/openapi.json is a
# valid OpenAPI 3.1 document (and the Power Automate connector, once there,
# valid Swagger 2.0) by openapi-spec-validator, and every JSON example of the
# README's API section fits the operation it illustrates
# (scripts/check-readme-examples.py). Without PyPI it says so and skips.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/contract-venv.sh

if ! python=$(contract_venv); then
    echo "check-contract: skipped: the contract tools are not installed"
    exit 0
fi
"$python" -m openapi_spec_validator --schema 3.1 --validation-errors all docs/openapi.json
connector=connectors/power-automate/apiDefinition.swagger.json
if [ -e "$connector" ]; then
    "$python" -m openapi_spec_validator --schema 2.0 --validation-errors all "$connector"
fi
"$python" scripts/check-readme-examples.py
