#!/usr/bin/env bash
# Configures (once) and builds Vantage in ./build; incremental after that.
# Warnings are errors: the tree builds clean with g++ 12.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -DVANTAGE_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
echo "build.sh: building in ./build (a clean build takes several minutes on 2 cores)" >&2
# Show what goes wrong, not the per-file progress; pipefail keeps cmake's status.
cmake --build build -j"$(nproc)" 2>&1 |
  { grep -vE '^\[ *[0-9]+%\] (Building|Linking|Built|Generating|protoc)|^(gmake|make)\[[0-9]+\]: (Entering|Leaving)' || true; }
