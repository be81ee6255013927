#!/usr/bin/env bash
# The main job on the embedded default: for now the engine benchmark at real model shapes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup-system.sh
swift build -c release --product accm
exec .build/release/accm bench engine "$@"
