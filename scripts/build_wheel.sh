#!/usr/bin/env bash
# Builds the `sliding-tile-attention` wheel into dist/: the release libsta_c.so (Swift runtime linked
# statically, stripped) inside the `sta` package, tagged py3-none-manylinux_2_<N>_x86_64 where N is the
# newest glibc the library needs (the glibc of the build system: build on an older one for a wider tag).
#
#   scripts/build_wheel.sh                    # swift build -c release --static-swift-stdlib --product sta_c, then the wheel
#   scripts/build_wheel.sh --check            # ... then install it into a fresh venv and run scripts/check_wheel.py
#   STA_WHEEL_LIBRARY=path scripts/build_wheel.sh   # bundle a library built before instead
#
# Standard tools only: pip's PEP 517 front end and the in-tree backend python/wheel_backend (no build
# dependencies, so no network is needed for the build itself; --check installs numpy into the venv).
set -euo pipefail
cd "$(dirname "$0")/.."

rm -f dist/sliding_tile_attention-*.whl
python3 -m pip wheel --disable-pip-version-check --no-deps --no-build-isolation -w dist .
wheel=$(ls dist/sliding_tile_attention-*.whl)
echo "wheel: $wheel ($(du -k "$wheel" | cut -f1) KiB)"

if [ "${1:-}" = "--check" ]; then
    venv=$(mktemp -d)/venv
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel"
    # From outside the checkout, without STA_LIBRARY: the installed package and its own library only.
    (cd "$(dirname "$venv")" && env -u STA_LIBRARY "$venv/bin/python" "$OLDPWD/scripts/check_wheel.py")
    rm -rf "$(dirname "$venv")"
fi
