#!/usr/bin/env bash
# Installs everything the tests need into .venv (once), then lints and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch==2.13.0 (CPU) is a test-only reference; the CPU wheel is preferred when pip can see it.
.venv/bin/python -m pip install --quiet -e '.[test]'
# The playground's browser test drives Debian's chromium through its chromedriver (never a
# downloaded browser); it is skipped, saying why, only where they cannot be installed.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
            >/dev/null 2>&1 || echo "scripts/test.sh: chromium could not be installed; the browser test will be skipped" >&2
    else
        echo "scripts/test.sh: install chromium and chromium-driver (as root) to run the browser test" >&2
    fi
fi
.venv/bin/ruff check engine app gradserve tests bench scripts
.venv/bin/python -m pytest "$@"
