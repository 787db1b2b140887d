# Sourced by the contract checks: the pinned tools of
# scripts/requirements-contract.txt in a venv of their own, outside the
# clone like the Cargo target folder, reinstalled when that file changes.
#
# contract_venv prints the python to run them with, or says why there is
# none (no network to PyPI, no pip) and fails, so a caller can skip its step
# and let the rest of the suite run.
contract_venv() {
    local requirements venv stamp
    requirements="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/requirements-contract.txt"
    venv="${SWITCHBOARD_CONTRACT_VENV:-$HOME/.cache/switchboard/contract-venv}"
    stamp=$(sha256sum "$requirements" | cut -d' ' -f1)
    if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$stamp" ]; then
        echo "contract: installing scripts/requirements-contract.txt into $venv" >&2
        rm -rf "$venv"
        if ! install_contract_tools "$venv" "$requirements" >&2; then
            echo "contract: could not install the contract tools (is PyPI reachable?)" >&2
            rm -rf "$venv"
            return 1
        fi
        echo "$stamp" > "$venv/.requirements"
    fi
    echo "$venv/bin/python"
}

install_contract_tools() {
    local venv=$1 requirements=$2
    if python3 -m venv "$venv" 2>/dev/null; then
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
        return
    fi
    # Debian's python3 without python3-venv: the packages in a folder of
    # their own, put on the path by a python of its own.
    rm -rf "$venv"
    mkdir -p "$venv/bin"
    python3 -m pip install -q --disable-pip-version-check --target "$venv/site" -r "$requirements" || return 1
    printf '#!/bin/sh\nPYTHONPATH="%s/site${PYTHONPATH:+:$PYTHONPATH}" exec python3 "$@"\n' "$venv" > "$venv/bin/python"
    chmod +x "$venv/bin/python"
}
