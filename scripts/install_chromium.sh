#!/usr/bin/env bash
# Debian's Chromium, for the tests that open the HTML reports in a real browser (tests/it/browser.rs),
# run headless with no network. Installs it with apt-get when missing (needs root and the Debian
# registry); idempotent. Nothing else is fetched: the tests use the browser as it is packaged.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "install_chromium.sh: Chromium is not installed and installing it needs root (apt-get install chromium)" >&2
    exit 1
fi
echo "installing chromium (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
command -v chromium >/dev/null
