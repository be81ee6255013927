#!/usr/bin/env bash
# Builds the C conformance peer (accm_client) against libprotobuf-c and libzmq. The C code for the wire
# format is generated with protoc-c from Protos/accm/v1/envelope.proto into the output directory, never into
# the repository (it is not committed). Prints the binary's path on its last line.
#   bash Tests/ConformancePeer/build.sh [OUTPUT_DIR]        (default: /tmp/accm-conformance-peer)
# Needs: apt-get install -y protobuf-c-compiler libprotobuf-c-dev libzmq3-dev
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-/tmp/accm-conformance-peer}
proto=$root/Protos/accm/v1/envelope.proto

command -v protoc-c >/dev/null || { echo "error: protoc-c not found (apt-get install protobuf-c-compiler)" >&2; exit 1; }
[ -f "$proto" ] || { echo "error: $proto not found" >&2; exit 1; }

out=$(realpath -m "$out")
case "$out/" in
    "$(realpath "$root")/"*)
        echo "error: the output directory $out is inside the repository: generated code is never written there" >&2
        exit 1 ;;
esac

# protoc-c before 1.5 (Debian 12 ships 1.4.1) rejects proto3 `optional`. A proto3 optional field is, by
# definition, a field alone in a synthetic oneof named `_<field>`: rewriting each one into exactly that gives
# the same wire encoding (same numbers, types and presence), so the peer is generated from a copy where
# `optional T x = N;` reads `oneof _x { T x = N; }`. The .proto in the repository is never changed.
mkdir -p "$out"
rm -rf "$out/proto" "$out/gen"
mkdir -p "$out/proto/accm/v1" "$out/gen"
sed -E 's/^([[:space:]]*)optional[[:space:]]+([A-Za-z0-9_.]+)[[:space:]]+([A-Za-z0-9_]+)[[:space:]]*=[[:space:]]*([0-9]+)[[:space:]]*;(.*)$/\1oneof _\3 { \2 \3 = \4; }\5/' \
    "$proto" > "$out/proto/accm/v1/envelope.proto"
if grep -nE '^[[:space:]]*optional[[:space:]]' "$out/proto/accm/v1/envelope.proto" >&2; then
    echo "error: an optional field above has a form build.sh cannot rewrite for protoc-c" >&2
    exit 1
fi
protoc-c --proto_path="$out/proto" --c_out="$out/gen" accm/v1/envelope.proto

"${CC:-cc}" -O2 -Wall -Wextra -Werror -I"$out/gen" \
    "$here/accm_client.c" "$out/gen/accm/v1/envelope.pb-c.c" \
    -o "$out/accm_client" -lprotobuf-c -lzmq
echo "$out/accm_client"
