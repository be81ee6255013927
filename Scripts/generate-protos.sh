#!/usr/bin/env bash
# Regenerates the committed Swift code for Protos/accm/v1/*.proto into Sources/Wire/Generated with protoc and
# protoc-gen-swift built from the swift-protobuf version the package depends on (no build plugin: it would
# cost every clean build ~10 minutes). With --check it regenerates into a temporary folder and fails when the
# committed files differ (CI runs that).
#   bash Scripts/generate-protos.sh [--check]
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/.*swift-protobuf", exact: "\([0-9.]*\)".*/\1/p' Package.swift)
[ -n "$version" ] || { echo "error: no exact swift-protobuf version in Package.swift" >&2; exit 1; }
command -v protoc >/dev/null || { echo "error: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }

tools=.build-protoc-gen-swift
if [ ! -x "$tools/bin/protoc-gen-swift" ] || [ "$(cat "$tools/version" 2>/dev/null)" != "$version" ]; then
    rm -rf "$tools"
    mkdir -p "$tools"
    # The package's own checkout (swift package resolve), else the local mirror of GitHub.
    swift package resolve >/dev/null
    git clone -q --branch "$version" .build/checkouts/swift-protobuf "$tools/src" 2>/dev/null \
        || git clone -q --branch "$version" https://github.com/apple/swift-protobuf "$tools/src"
    swift build -c release --package-path "$tools/src" --product protoc-gen-swift >/dev/null
    mkdir -p "$tools/bin"
    cp "$(swift build -c release --package-path "$tools/src" --show-bin-path)/protoc-gen-swift" "$tools/bin/"
    echo "$version" > "$tools/version"
fi

out=Sources/Wire/Generated
target=$out
if [ "${1:-}" = "--check" ]; then target=$(mktemp -d); fi
mkdir -p "$target"
protoc --plugin=protoc-gen-swift="$tools/bin/protoc-gen-swift" --proto_path=Protos \
    --swift_out="$target" --swift_opt=Visibility=Public Protos/accm/v1/*.proto
# The digest of the sources the code was made from: WireSchemaTests compares it with the .proto files.
(cd Protos && sha256sum accm/v1/*.proto) > "$target/PROTOS.sha256"
if [ "${1:-}" = "--check" ]; then
    if ! diff -r "$out" "$target" >/dev/null; then
        diff -r "$out" "$target" | head -20
        echo "error: Sources/Wire/Generated is stale: run bash Scripts/generate-protos.sh and commit" >&2
        exit 1
    fi
    echo "Sources/Wire/Generated is up to date with Protos/ (swift-protobuf $version)"
    rm -rf "$target"
fi
