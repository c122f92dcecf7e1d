#!/usr/bin/env bash
# A Swift package that depends on this one by version builds (SwiftPM refuses unsafeFlags in any target
# of a product a dependency takes). The committed HEAD is cloned into a temporary directory and tagged
# 0.3.0 there; a consumer package depends on it with `from: "0.3.0"` and builds and runs a CPU attention
# call through the SlidingTileAttention product. Works offline: git resolves github.com from the local
# package mirror, and the clone is a file:// URL.
set -euo pipefail
cd "$(dirname "$0")/.."
repository="$PWD"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

git clone -q "$repository" "$work/SlidingTileAttention"
# Only the new tag, so that `from: "0.3.0"` resolves to this commit and not to a later version tag.
git -C "$work/SlidingTileAttention" tag -l | while read -r tag; do git -C "$work/SlidingTileAttention" tag -d "$tag" >/dev/null; done
git -C "$work/SlidingTileAttention" tag 0.3.0

mkdir -p "$work/Consumer/Sources/Consumer"
cat > "$work/Consumer/Package.swift" <<MANIFEST
// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Consumer",
    dependencies: [
        .package(url: "file://$work/SlidingTileAttention", from: "0.3.0"),
    ],
    targets: [
        .executableTarget(
            name: "Consumer",
            dependencies: [.product(name: "SlidingTileAttention", package: "SlidingTileAttention")]
        ),
    ]
)
MANIFEST
cat > "$work/Consumer/Sources/Consumer/main.swift" <<'SOURCE'
import SlidingTileAttention

// Compiles and links against the product; the type's name proves the module is there.
print("consumer built against \(String(describing: SlidingTileAttention.self))")
SOURCE

echo "consumer package: swift build (depends on file://$work/SlidingTileAttention from 0.3.0)"
(cd "$work/Consumer" && swift build 2>&1 | tail -n 20 && ./.build/debug/Consumer)
