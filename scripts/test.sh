#!/usr/bin/env bash
# Builds raftkv with AddressSanitizer and UndefinedBehaviorSanitizer and runs every test,
# as CI does. Installs missing build dependencies first (needs root for that).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/install-deps.sh
cmake --workflow --preset asan
