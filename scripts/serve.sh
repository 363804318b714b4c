#!/usr/bin/env bash
# Installs gradserve into .venv (once) and starts the service on the embedded worker pool.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/gradserve serve "$@"
