#ifndef RAFTKV_SIM_RANDOM_HPP
#define RAFTKV_SIM_RANDOM_HPP

// The simulator's only source of randomness: a seeded generator whose numbers, and the
// mapping of those numbers to ranges and probabilities, are the same bit for bit on
// every platform and standard library. That is what lets a seed replay a run exactly.

#include <raftkv/detail/random.hpp>

#include <cstdint>
#include <limits>

namespace raftkv::sim {

/** A seeded pseudo-random generator: xoshiro256** seeded through splitmix64 (the engine
    the core uses for election timeouts), with portable mappings to ranges and odds.

    The std distributions are not used on purpose: their algorithms differ between
    standard libraries, so a seed would not replay across platforms.

    @par Example
    @code
    raftkv::sim::random_generator rng{42};
    auto delay = rng.uniform(1000, 5000);   // in [1000, 5000]
    if (rng.chance(0.1)) drop_message();
    @endcode

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
class random_generator {
public:
    using result_type = std::uint64_t;

    explicit random_generator(std::uint64_t seed = 0) noexcept : engine_(seed) {}

    /// Restarts the sequence as if newly constructed with `seed`.
    void reseed(std::uint64_t seed) noexcept { engine_ = raftkv::detail::random(seed); }

    /// The next 64 uniformly distributed bits.
    std::uint64_t next() noexcept { return engine_.next(); }

    /// A number uniformly distributed in [lo, hi], both ends included, without modulo
    /// bias. REQUIRES: lo <= hi.
    std::uint64_t uniform(std::uint64_t lo, std::uint64_t hi) noexcept
    {
        const std::uint64_t span = hi - lo;
        if (span == std::numeric_limits<std::uint64_t>::max())
            return next();
        const std::uint64_t bound = span + 1;
        // Values below `threshold` would make some residues more likely: reject them.
        const std::uint64_t threshold = (0 - bound) % bound;
        for (;;) {
            const std::uint64_t r = next();
            if (r >= threshold)
                return lo + r % bound;
        }
    }

    /// A number uniformly distributed in [0, 1), with 53 random bits.
    double unit() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

    /// True with probability `p`; never for p <= 0, always for p >= 1.
    bool chance(double p) noexcept
    {
        if (p <= 0.0)
            return false;
        if (p >= 1.0)
            return true;
        return unit() < p;
    }

    /// A seed for an independent generator (for example a node's own), drawn from this one.
    std::uint64_t fork_seed() noexcept { return splitmix64_once(next()); }

    // UniformRandomBitGenerator, so the generator works with std::shuffle and friends
    // (whose results are not portable; the simulator itself never uses them).
    static constexpr std::uint64_t min() noexcept { return 0; }
    static constexpr std::uint64_t max() noexcept { return std::numeric_limits<std::uint64_t>::max(); }
    std::uint64_t operator()() noexcept { return next(); }

private:
    static std::uint64_t splitmix64_once(std::uint64_t x) noexcept { return raftkv::detail::splitmix64(x); }

    raftkv::detail::random engine_;
};

} // namespace raftkv::sim

#endif
