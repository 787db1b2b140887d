# Sourced by the contract checks: a venv of their own with the pinned tools
# of scripts/requirements-contract.txt, outside the clone like the Cargo
# target folder, reinstalled when that file changes.
#
# contract_venv prints the venv's python, or says why there is none (no
# network to PyPI, no venv module) and fails, so a caller can skip its
# step and let the rest of the suite run.
contract_venv() {
    local requirements venv stamp
    requirements="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/requirements-contract.txt"
    venv="${SWITCHBOARD_CONTRACT_VENV:-$HOME/.cache/switchboard/contract-venv}"
    stamp=$(sha256sum "$requirements" | cut -d' ' -f1)
    if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$stamp" ]; then
        echo "contract: installing scripts/requirements-contract.txt into $venv" >&2
        rm -rf "$venv"
        if ! python3 -m venv "$venv" >&2 ||
            ! "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" >&2; then
            echo "contract: could not install the contract tools (is PyPI reachable?)" >&2
            rm -rf "$venv"
            return 1
        fi
        echo "$stamp" > "$venv/.requirements"
    fi
    echo "$venv/bin/python"
}
