#!/usr/bin/env bash
# Builds the release preset and runs raftkv-server with the given arguments (with none: a
# single node, HTTP on 127.0.0.1:8080, data in raftkv-data/ at the repository root). In a
# build without the server (RAFTKV_BUILD_SERVER=OFF), runs the in-process cluster example instead.
# Installs missing build dependencies first (needs root for that).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/install-deps.sh --server

server=reference-server/raftkv-server
example=examples/in_process_cluster
build_dir=build/release

cmake --preset release
# Build only what runs, when the build knows it; everything otherwise.
targets=()
for target in "$server" "$example"; do
    if ninja -C "$build_dir" -t query "$target" >/dev/null 2>&1; then
        targets+=(--target "$target")
        break
    fi
done
cmake --build --preset release "${targets[@]}"

if [[ -x "$build_dir/$server" ]]; then
    exec "$build_dir/$server" "$@"
fi
if [[ -x "$build_dir/$example" ]]; then
    echo "run-server: raftkv-server is not built yet; running the in-process cluster example" >&2
    if (($# > 0)); then
        echo "run-server: ignoring arguments: $*" >&2
    fi
    exec "$build_dir/$example"
fi
echo "run-server: neither $build_dir/$server nor $build_dir/$example was built" >&2
exit 1
