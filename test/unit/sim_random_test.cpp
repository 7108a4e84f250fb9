#include <raftkv/sim/random.hpp>

#define BOOST_TEST_MODULE sim_random
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <limits>
#include <set>
#include <vector>

using raftkv::sim::random_generator;

namespace {
std::vector<std::uint64_t> first(random_generator g, int n)
{
    std::vector<std::uint64_t> out;
    for (int k = 0; k < n; ++k)
        out.push_back(g.next());
    return out;
}
} // namespace

BOOST_AUTO_TEST_CASE(same_seed_gives_the_same_sequence)
{
    BOOST_TEST(first(random_generator{42}, 100) == first(random_generator{42}, 100));
}

BOOST_AUTO_TEST_CASE(different_seeds_give_different_sequences)
{
    BOOST_TEST(first(random_generator{1}, 4) != first(random_generator{2}, 4));
    BOOST_TEST(first(random_generator{0}, 4) != first(random_generator{1}, 4));
}

// Pinned outputs (the first two are the published xoshiro256** values for splitmix64(0)
// seeding): a change here breaks the replay of every recorded seed.
BOOST_AUTO_TEST_CASE(sequence_is_pinned_so_recorded_seeds_replay)
{
    random_generator g{0};
    const std::uint64_t a = g.next();
    const std::uint64_t b = g.next();
    BOOST_TEST(a == 0x99EC5F36CB75F2B4ULL);
    BOOST_TEST(b == 0xBF6E1F784956452AULL);
    random_generator u{7};
    BOOST_TEST(u.uniform(1, 6) == 1u);
    BOOST_TEST(u.uniform(0, 999) == 674u);
}

BOOST_AUTO_TEST_CASE(reseed_restarts_the_sequence)
{
    random_generator g{9};
    const auto a = first(g, 3);
    g.next();
    g.reseed(9);
    BOOST_TEST(first(g, 3) == a);
}

BOOST_AUTO_TEST_CASE(uniform_stays_within_its_inclusive_bounds_and_reaches_both)
{
    random_generator g{3};
    std::set<std::uint64_t> seen;
    for (int k = 0; k < 2000; ++k) {
        const auto v = g.uniform(10, 15);
        BOOST_TEST_REQUIRE((v >= 10 && v <= 15));
        seen.insert(v);
    }
    BOOST_TEST(seen.size() == 6u);
}

BOOST_AUTO_TEST_CASE(uniform_handles_a_single_value_and_the_full_range)
{
    random_generator g{5};
    BOOST_TEST(g.uniform(7, 7) == 7u);
    const auto max = std::numeric_limits<std::uint64_t>::max();
    g.uniform(0, max); // must not loop or divide by zero
    BOOST_TEST(g.uniform(max, max) == max);
}

BOOST_AUTO_TEST_CASE(uniform_is_close_to_flat)
{
    random_generator g{11};
    int counts[3] = {0, 0, 0};
    for (int k = 0; k < 30000; ++k)
        ++counts[g.uniform(0, 2)];
    for (int c : counts)
        BOOST_TEST((c > 9500 && c < 10500));
}

BOOST_AUTO_TEST_CASE(chance_is_never_at_zero_always_at_one_and_fair_in_between)
{
    random_generator g{13};
    int hits = 0;
    for (int k = 0; k < 10000; ++k) {
        BOOST_TEST_REQUIRE(!g.chance(0.0));
        BOOST_TEST_REQUIRE(g.chance(1.0));
        hits += g.chance(0.25) ? 1 : 0;
    }
    BOOST_TEST((hits > 2300 && hits < 2700));
}

BOOST_AUTO_TEST_CASE(unit_is_in_the_half_open_interval)
{
    random_generator g{17};
    for (int k = 0; k < 10000; ++k) {
        const double u = g.unit();
        BOOST_TEST_REQUIRE((u >= 0.0 && u < 1.0));
    }
}

BOOST_AUTO_TEST_CASE(fork_seed_gives_independent_deterministic_seeds)
{
    random_generator a{21}, b{21};
    const auto s1 = a.fork_seed();
    const auto s2 = a.fork_seed();
    BOOST_TEST(s1 != s2);
    BOOST_TEST(b.fork_seed() == s1);
}
