#!/usr/bin/env bash
# Installs the Debian packages raftkv needs to build, test and run its server.
# With --server, only those needed to build and run the server (no fuzzing compiler, no
# browser for the cluster page's test).
# Idempotent: when every package is present it does nothing and needs no root.
# RAFTKV_SKIP_DEPS=1 skips the check (for systems that provide these another way).
set -euo pipefail

packages=(
    g++ cmake ninja-build
    libboost1.81-dev libboost-json1.81-dev libboost-test1.81-dev
    libboost-serialization1.81-dev libboost-system1.81-dev libboost-program-options1.81-dev
    libleveldb-dev libyaml-cpp-dev
    # Debian's leveldb CMake package links leveldb::leveldb against -lsnappy.
    libsnappy-dev
    curl
    # TLS: Boost.Asio SSL builds on OpenSSL; the openssl tool makes test certificates.
    libssl-dev openssl
    # raftkv-server's log (reference-server/log.cpp).
    libspdlog-dev
    # raftkv-server's allocator, tcmalloc (cmake/raftkv_malloc.cmake; without it: glibc's malloc).
    libgoogle-perftools-dev
)

# For the tests only.
test_packages=(
    # The fuzz targets (test/fuzz, the fuzz preset): clang and its libFuzzer runtime.
    clang libclang-rt-14-dev
    # e2e_ui_test loads the cluster page (GET /ui) in headless Chromium.
    chromium
    # nemesis_test's network namespaces (RAFTKV_NEMESIS_NETNS=1, root): ip netns, veth, nftables.
    iproute2 nftables
)

case "${1:-}" in
--server) ;;
"") packages+=("${test_packages[@]}") ;;
*)
    echo "usage: $0 [--server]" >&2
    exit 2
    ;;
esac

if [[ "${RAFTKV_SKIP_DEPS:-0}" == 1 ]]; then
    exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install-deps: dpkg-query not found; this script supports Debian 12 (bookworm)." >&2
    echo "Install the equivalents of: ${packages[*]}" >&2
    echo "then rerun with RAFTKV_SKIP_DEPS=1." >&2
    exit 1
fi

missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
    if [[ "$status" != installed ]]; then
        missing+=("$package")
    fi
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "Run this script as root (for example: sudo $0), or install them yourself:" >&2
    echo "  apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
