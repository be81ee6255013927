#!/usr/bin/env bash
# Installs the Debian packages the build needs (idempotent; apt runs only when something is missing).
# The Swift toolchain (6.1 or newer) is expected on PATH. With --tests, also what the tests drive: curl, headless
# Chromium, Prometheus (promtool and the server), and the Python clients (openai, Playwright, kubernetes-validate).
set -euo pipefail
tests=false
[ "${1:-}" = "--tests" ] && tests=true

packages=(pkg-config libopenblas-dev libzmq3-dev protobuf-compiler protobuf-c-compiler libprotobuf-c-dev zlib1g-dev
          libturbojpeg0-dev iproute2 curl)  # iproute2: the several-hosts test puts processes in network namespaces
$tests && packages+=(chromium prometheus python3 python3-pip)
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
if $tests; then
    python=python3
    # PyPI packages of the client, browser and manifest tests (Playwright drives Debian's Chromium: no browser download).
    $python -m pip install -q --disable-pip-version-check openai==3.60.0 playwright==1.65.2 kubernetes-validate==1.37.0 \
        PyYAML==6.0.3 2>/dev/null || $python -m pip install -q --break-system-packages openai==3.60.0 playwright==1.65.2 \
        kubernetes-validate==1.37.0 PyYAML==6.0.3
fi
