#!/usr/bin/env bash
# Install the Debian packages the engine uses when they are missing: bubblewrap (bwrap), which
# boxes in model code, and chromium, the headless browser the gallery's tests drive (and
# `metalake ui` opens). Needs root and apt-get; elsewhere it says what to install and goes on
# (model hosts then run unboxed, and `metalake status` says so).
set -euo pipefail

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} (Debian packages) ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "warning: ${missing[*]} not installed; install it as root (apt-get install" \
         "${missing[*]}): without bubblewrap model code runs without a sandbox, and the" \
         "gallery's browser tests need chromium" >&2
fi
