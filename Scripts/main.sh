#!/usr/bin/env bash
# The main job on the embedded default: the shipped model family (Models/accm-world) answers a question about
# a test image with 4 of its 64 visual tokens, then `accm eval` scores every pruning method and budget on the
# committed test split (2,492 questions; the table, results.csv, accuracy_vs_flops.png land in eval-out/).
# Extra arguments go to `accm eval` (e.g. --limit 200 for a quick run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup-system.sh
swift build -c release --product accm
.build/release/accm ask --image Training/test/images/00000.png --keep 4 "What color is the cross?"
echo
exec .build/release/accm eval --keep 64,16,8,4 "$@"
