#!/usr/bin/env bash
# Installs everything the tests need into .venv (once), then lints and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch==2.13.0 (CPU) is a test-only reference; the CPU wheel is preferred when pip can see it.
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/ruff check engine app tests bench scripts
.venv/bin/python -m pytest "$@"
