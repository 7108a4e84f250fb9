#ifndef RAFTKV_SIM_DETAIL_HASH_HPP
#define RAFTKV_SIM_DETAIL_HASH_HPP

// Portable 64-bit hashing for the simulator's trace hash and log fingerprints. Unlike
// std::hash, the values are the same on every platform, so they can be compared
// across runs and machines.

#include <cstdint>
#include <string_view>

namespace raftkv::sim::detail {

/// A bijective 64-bit finalizer (splitmix64's): every input bit affects every output bit.
constexpr std::uint64_t hash_finalize(std::uint64_t x) noexcept
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/// Folds `value` into the running hash `seed`; order-sensitive.
constexpr std::uint64_t hash_combine(std::uint64_t seed, std::uint64_t value) noexcept
{
    return hash_finalize(seed ^ (value + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2)));
}

/// FNV-1a over `bytes`, finalized; the length is mixed in so prefixes differ.
constexpr std::uint64_t hash_bytes(std::string_view bytes) noexcept
{
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (char c : bytes) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ULL;
    }
    return hash_combine(h, bytes.size());
}

} // namespace raftkv::sim::detail

#endif
