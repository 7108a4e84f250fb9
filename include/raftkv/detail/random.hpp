#ifndef RAFTKV_DETAIL_RANDOM_HPP
#define RAFTKV_DETAIL_RANDOM_HPP

#include <cstdint>

namespace raftkv::detail {

/// splitmix64: a good 64-bit mixer, used to seed and to spread node ids.
constexpr std::uint64_t splitmix64(std::uint64_t& state) noexcept
{
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/// A small deterministic generator (xoshiro256**). Unlike the std distributions, the
/// numbers it yields are the same on every platform, so a seed replays exactly.
class random {
public:
    explicit random(std::uint64_t seed = 0) noexcept
    {
        for (auto& w : s_)
            w = splitmix64(seed);
    }

    std::uint64_t next() noexcept
    {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    /// A number in [0, n). REQUIRES: n > 0. (The modulo bias is below 2^-40 for the small
    /// ranges raftkv draws from.)
    std::uint64_t below(std::uint64_t n) noexcept { return next() % n; }

private:
    static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept
    {
        return (x << k) | (x >> (64 - k));
    }
    std::uint64_t s_[4];
};

} // namespace raftkv::detail

#endif
