#!/usr/bin/env bash
# Builds raftkv with AddressSanitizer and UndefinedBehaviorSanitizer and runs every test,
# then builds the fuzz targets with clang and runs each for 20 s (docs/fuzzing.md), as CI
# does. Installs missing build dependencies first (needs root for that).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/install-deps.sh
cmake --workflow --preset asan
cmake --workflow --preset fuzz
