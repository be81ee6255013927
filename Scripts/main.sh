#!/usr/bin/env bash
# The main job on the embedded default: `accm serve` on the shipped model family (Models/accm-world) — the HTTP
# gateway, the coordinator and a worker per stage in one process. Waits until /health is ready, prints the
# playground's URL and one answer obtained through POST /v1/chat/completions (4 of 64 visual tokens kept), then
# keeps serving until Ctrl-C. Extra arguments go to `accm serve` (e.g. --port 8080).
# The accuracy table is `accm eval` (see the README: `.build/release/accm eval --keep 64,16,8,4`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup-system.sh
command -v curl >/dev/null || { echo "error: curl is needed" >&2; exit 1; }
swift build -c release --product accm
port=8000
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[$i]}" = "--port" ] && port=${args[$((i + 1))]}; done
.build/release/accm serve "$@" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null' INT TERM EXIT
for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ] && break
    kill -0 $server 2>/dev/null || { echo "error: accm serve stopped" >&2; exit 1; }
    sleep 0.2
done
echo "playground: http://127.0.0.1:$port/"
image=$(base64 -w0 Training/test/images/00000.png)
curl -s "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' -d @- <<JSON
{"messages": [{"role": "user", "content": [{"type": "text", "text": "What color is the cross?"},
  {"type": "image_url", "image_url": {"url": "data:image/png;base64,$image"}}]}],
 "temperature": 0, "max_tokens": 16, "accm": {"visual_tokens": 4}}
JSON
echo
echo "serving until Ctrl-C"
wait $server
