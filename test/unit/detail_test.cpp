#include <raftkv/detail/progress.hpp>

#include <raftkv/detail/applied_bytes.hpp>
#include <raftkv/detail/quorum.hpp>
#include <raftkv/detail/random.hpp>
#include <raftkv/detail/read_queue.hpp>
#include <raftkv/detail/snapshot_sender.hpp>

#define BOOST_TEST_MODULE detail
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <string>
#include <utility>
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
    q.blocked = {{.id = 1}};
    q.unconfirmed.push_back({.id = 2, .index = 5, .seq = 1, .from = 7});
    q.confirmed.push_back({.id = 3, .index = 4, .seq = 1});
    std::vector<std::uint64_t> drained;
    std::vector<raftkv::node_id> from;
    q.drain([&](const raftkv::detail::pending_read& r) {
        drained.push_back(r.id);
        from.push_back(r.from);
    });
    BOOST_TEST(drained == (std::vector<std::uint64_t>{1, 2, 3}));
    BOOST_TEST(from == (std::vector<raftkv::node_id>{0, 7, 0}));
    BOOST_TEST(q.empty());
}

BOOST_AUTO_TEST_CASE(applied_bytes_finds_how_far_back_a_budget_reaches)
{
    raftkv::detail::applied_bytes b;
    b.reset(10); // entries up to 10 were applied before: their sizes are not known
    b.applied(12, 100);
    b.applied(15, 300);
    b.applied(16, 50);
    BOOST_TEST(b.total() == 450u);
    // Everything counted fits: nothing is dropped, not even what came before the origin.
    BOOST_TEST(b.keep_within(16, 450, 450) == 0u);
    BOOST_TEST(b.keep_within(16, 450, 1000) == 0u);
    // Dropping through 12 keeps 350 bytes; through 15, 50.
    BOOST_TEST(b.keep_within(16, 450, 449) == 12u);
    BOOST_TEST(b.keep_within(16, 450, 350) == 12u);
    BOOST_TEST(b.keep_within(16, 450, 349) == 15u);
    BOOST_TEST(b.keep_within(16, 450, 0) == 16u);
    // Up to an earlier point (a snapshot at 15, with 400 bytes counted then).
    BOOST_TEST(b.keep_within(15, 400, 300) == 12u);
    BOOST_TEST(b.keep_within(15, 400, 0) == 15u);
    // Never past the point asked about.
    BOOST_TEST(b.keep_within(12, 450, 0) == 0u);

    // The log's new start keeps its mark; the ones before it go.
    BOOST_TEST(b.marks() == 4u);
    b.dropped_through(14);
    BOOST_TEST(b.marks() == 3u);
    BOOST_TEST(b.keep_within(16, 450, 1000) == 0u);
    BOOST_TEST(b.keep_within(16, 450, 349) == 15u);
    // A count from before the log's new start asks for nothing.
    BOOST_TEST(b.keep_within(16, 50, 10) == 0u);
    b.dropped_through(16);
    BOOST_TEST(b.marks() == 1u);
    BOOST_TEST(b.keep_within(16, 450, 0) == 0u);

    // A restored snapshot starts over from its index; the running total goes on.
    b.reset(40);
    b.applied(41, 10);
    BOOST_TEST(b.total() == 460u);
    BOOST_TEST(b.keep_within(41, 460, 10) == 0u);
    BOOST_TEST(b.keep_within(41, 460, 9) == 41u);
}

BOOST_AUTO_TEST_CASE(follower_read_queue_drains_every_stage_and_forgets_its_requests)
{
    raftkv::detail::follower_read_queue q;
    q.waiting = {5};
    q.requested.push_back({.number = 41, .sent_tick = 2, .reads = {1, 2}});
    q.requested.push_back({.number = 42, .sent_tick = 3, .reads = {3, 4}});
    q.ready.push_back({.id = 0, .index = 9});
    std::vector<std::uint64_t> drained;
    q.drain([&](std::uint64_t id) { drained.push_back(id); });
    BOOST_TEST(drained == (std::vector<std::uint64_t>{5, 1, 2, 3, 4, 0}));
    BOOST_TEST(q.empty());
    BOOST_TEST(q.requested.empty());
}

namespace {
// Reads `text` in chunks of at most max_bytes.
struct string_reader {
    std::string text;
    std::size_t at = 0;
    raftkv::index_t index() const { return 9; }
    bool read(std::string& out, std::size_t max_bytes)
    {
        out = text.substr(at, max_bytes);
        at += out.size();
        return at == text.size();
    }
};
} // namespace

BOOST_AUTO_TEST_CASE(snapshot_sender_keeps_a_bounded_window_and_resends_what_was_not_acknowledged)
{
    raftkv::detail::snapshot_sender<string_reader> s;
    std::vector<raftkv::install_snapshot_request> sent;
    const auto send = [&](raftkv::install_snapshot_request r) { sent.push_back(std::move(r)); };
    s.start(string_reader{"abcdefghij", 0}, raftkv::snapshot_meta{.index = 9, .term = 2, .members = {}}, 7);
    s.fill(3, 6, send); // two chunks fill the window of 6 bytes
    BOOST_TEST_REQUIRE(sent.size() == 2u);
    BOOST_TEST(sent[1].offset == 3u);
    using ack = raftkv::detail::snapshot_sender<string_reader>::ack;
    BOOST_TEST((s.on_response({.transfer = 6, .index = 9, .offset = 3, .done = false}) == ack::ignored));
    BOOST_TEST((s.on_response({.transfer = 7, .index = 9, .offset = 3, .done = false}) == ack::progress));
    s.fill(3, 6, send);
    BOOST_TEST_REQUIRE(sent.size() == 3u);
    BOOST_TEST(sent[2].data == "ghi");
    // A duplicate acknowledgement: the chunk at 3 was lost; fast retransmit, only once.
    BOOST_TEST((s.on_response({.transfer = 7, .index = 9, .offset = 3, .done = false}) == ack::ignored));
    s.resend_first(send);
    s.resend_first(send);
    BOOST_TEST_REQUIRE(sent.size() == 4u);
    BOOST_TEST(sent[3].offset == 3u);
    s.resend(send); // after a stall: everything unacknowledged, oldest first
    BOOST_TEST(sent.size() == 6u);
    BOOST_TEST(s.resends() == 1u);
    BOOST_TEST((s.on_response({.transfer = 7, .index = 9, .offset = 9, .done = false}) == ack::progress));
    s.fill(3, 6, send);
    BOOST_TEST_REQUIRE(sent.size() == 7u);
    BOOST_TEST((sent.back().done && sent.back().data == "j"));
    BOOST_TEST((s.on_response({.transfer = 7, .index = 9, .offset = 0, .done = true}) == ack::done));
}

BOOST_AUTO_TEST_CASE(snapshot_sender_is_not_stuck_by_a_reader_returning_empty_chunks)
{
    struct empty_reader {
        int calls = 0;
        raftkv::index_t index() const { return 1; }
        bool read(std::string& out, std::size_t)
        {
            out.clear();
            return ++calls == 100;
        }
    };
    raftkv::detail::snapshot_sender<empty_reader> s;
    std::size_t sent = 0;
    s.start(empty_reader{}, raftkv::snapshot_meta{.index = 1, .term = 1, .members = {}}, 1);
    s.fill(16, 4, [&](raftkv::install_snapshot_request) { ++sent; });
    BOOST_TEST(sent == 4u);
}
