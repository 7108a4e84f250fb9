#include <raftkv/detail/progress.hpp>

#include <raftkv/detail/quorum.hpp>
#include <raftkv/detail/random.hpp>
#include <raftkv/detail/read_queue.hpp>

#define BOOST_TEST_MODULE detail
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <vector>

using raftkv::detail::inflight_window;

BOOST_AUTO_TEST_CASE(quorum_value_is_the_largest_value_a_majority_reaches)
{
    std::vector<std::uint64_t> v{5, 1, 9};
    BOOST_TEST(raftkv::detail::quorum_value(v, 2) == 5u);
    v = {7, 7, 3, 2, 8};
    BOOST_TEST(raftkv::detail::quorum_value(v, 3) == 7u);
    v = {4};
    BOOST_TEST(raftkv::detail::quorum_value(v, 1) == 4u);
    v = {0, 0, 6, 6};
    BOOST_TEST(raftkv::detail::quorum_value(v, 3) == 0u);
}

BOOST_AUTO_TEST_CASE(inflight_window_fills_frees_in_order_and_wraps)
{
    inflight_window w;
    w.reset(3, 1000);
    BOOST_TEST(w.empty());
    w.add(10, 1);
    w.add(20, 1);
    w.add(30, 1);
    BOOST_TEST(w.full());
    w.free_to(20); // acknowledges the first two messages
    BOOST_TEST(!w.full());
    w.add(40, 1);
    w.add(50, 1); // wraps around the ring
    BOOST_TEST(w.full());
    w.free_to(45);
    w.free_to(49);
    BOOST_TEST(!w.empty());
    w.free_to(50);
    BOOST_TEST(w.empty());
}

BOOST_AUTO_TEST_CASE(inflight_window_is_full_once_its_bytes_reach_the_limit)
{
    inflight_window w;
    w.reset(16, 100);
    w.add(1, 60);
    BOOST_TEST(!w.full());
    w.add(2, 60); // one message may overshoot; the next must wait
    BOOST_TEST(w.full());
    BOOST_TEST(w.bytes() == 120u);
    w.free_to(1);
    BOOST_TEST(!w.full());
    BOOST_TEST(w.bytes() == 60u);
    w.reset(16, 100);
    w.add(1, 500); // a single message larger than the limit still goes
    BOOST_TEST(w.full());
}

BOOST_AUTO_TEST_CASE(random_is_deterministic_and_stays_in_range)
{
    raftkv::detail::random a(42), b(42), c(43);
    bool differs = false;
    for (int i = 0; i < 1000; ++i) {
        const auto x = a.below(10);
        BOOST_TEST(x == b.below(10));
        BOOST_TEST(x < 10u);
        differs = differs || x != c.below(10);
    }
    BOOST_TEST(differs);
}

BOOST_AUTO_TEST_CASE(read_queue_drains_every_stage_in_order)
{
    raftkv::detail::read_queue q;
    q.blocked = {1};
    q.unconfirmed.push_back({2, 5, 1});
    q.confirmed.push_back({3, 4, 1});
    std::vector<std::uint64_t> drained;
    q.drain([&](std::uint64_t id) { drained.push_back(id); });
    BOOST_TEST(drained == (std::vector<std::uint64_t>{1, 2, 3}));
    BOOST_TEST(q.empty());
}
