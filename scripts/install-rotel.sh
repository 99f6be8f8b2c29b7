#!/usr/bin/env bash
# Installs the rotel OTLP collector (PyPI package, pinned) into <repo>/.venv for the
# end-to-end tests, idempotently, and prints the path of its binary.
set -euo pipefail

ROTEL_VERSION="0.0.1a15"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"

find_binary() {
    local candidate
    for candidate in "$venv"/lib/python3*/site-packages/rotel/rotel-agent; do
        if [ -x "$candidate" ]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

installed_version() {
    "$venv/bin/python" -m pip show rotel 2>/dev/null | sed -n 's/^Version: //p'
}

if [ -x "$venv/bin/python" ] && [ "$(installed_version)" = "$ROTEL_VERSION" ] && find_binary >/dev/null; then
    find_binary
    exit 0
fi

if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >&2; then
        # Debian/Ubuntu ship venv (and ensurepip) separately.
        if command -v apt-get >/dev/null 2>&1; then
            echo "install-rotel: python3 -m venv failed; installing python3-venv with apt-get" >&2
            rm -rf "$venv"
            apt-get update >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv >&2
            python3 -m venv "$venv" >&2
        else
            echo "install-rotel: python3 -m venv failed and apt-get is not available; install Python's venv module" >&2
            exit 1
        fi
    fi
fi

"$venv/bin/python" -m pip install --disable-pip-version-check --quiet "rotel==$ROTEL_VERSION" >&2

if ! find_binary; then
    echo "install-rotel: rotel==$ROTEL_VERSION installed but no rotel-agent binary under $venv/lib/python3*/site-packages/rotel/" >&2
    exit 1
fi
