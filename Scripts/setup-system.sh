#!/usr/bin/env bash
# Installs the Debian packages the build needs (idempotent; apt runs only when something is missing).
# The Swift toolchain (6.1 or newer) is expected on PATH.
set -euo pipefail

packages=(pkg-config libopenblas-dev libzmq3-dev protobuf-compiler protobuf-c-compiler libprotobuf-c-dev zlib1g-dev
          libturbojpeg0-dev iproute2)  # iproute2: the several-hosts test puts processes in network namespaces
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "error: no swift on PATH (Swift 6.1 or newer is needed)" >&2; exit 1; }
