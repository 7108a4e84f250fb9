#include <raftkv/asio/driver.hpp>

#include <raftkv/memory_log_store.hpp>

#include "support/list_machine.hpp"

#define BOOST_TEST_MODULE asio_driver
#include <boost/test/unit_test.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;

using namespace std::chrono_literals;

namespace {

using raftkv::test::list_machine;

// Delivers to nodes in the same process; a node marked down sends and receives nothing,
// and messages of a type marked lost are dropped.
struct router {
    std::vector<std::function<void(raftkv::message)>> deliver;
    std::vector<bool> down;
    std::optional<std::size_t> lost_type; // a message_body index
    std::optional<std::size_t> held_type; // held in `held` until released
    std::vector<raftkv::message> held;

    void release()
    {
        held_type.reset();
        for (raftkv::message& m : std::exchange(held, {}))
            deliver[m.to](std::move(m));
    }
};

struct loopback_transport {
    router* r;
    void send(raftkv::message m)
    {
        if (r->down[m.to] || r->down[m.from] || r->lost_type == m.body.index())
            return;
        if (r->held_type == m.body.index())
            r->held.push_back(std::move(m));
        else
            r->deliver[m.to](std::move(m));
    }
};

using driver_t = raftkv::asio::driver<loopback_transport, raftkv::memory_log_store, list_machine>;

struct member {
    raftkv::memory_log_store store;
    list_machine machine;
    std::unique_ptr<loopback_transport> transport;
    std::unique_ptr<driver_t> driver;
};

struct cluster {
    explicit cluster(std::size_t n, bool forward_proposals = true, std::uint32_t election_ticks = 10)
    {
        net.deliver.resize(n + 1);
        net.down.assign(n + 1, false);
        members.resize(n);
        for (raftkv::node_id id = 1; id <= n; ++id) {
            raftkv::options o;
            o.id = id;
            for (raftkv::node_id v = 1; v <= n; ++v)
                o.members.voters.push_back(v);
            o.random_seed = id;
            o.election_ticks = election_ticks;
            member& m = members[id - 1];
            m.transport = std::make_unique<loopback_transport>(loopback_transport{&net});
            raftkv::asio::driver_options d;
            d.tick_interval = 2ms;
            d.proposal_timeout = 300ms;
            d.read_timeout = 300ms;
            d.forward_proposals = forward_proposals;
            m.driver =
                std::make_unique<driver_t>(asio::make_strand(io), o, *m.transport, m.store, m.machine, d);
            net.deliver[id] = [d = m.driver.get()](raftkv::message msg) { d->deliver(std::move(msg)); };
        }
        for (auto& m : members)
            m.driver->start();
    }

    ~cluster()
    {
        for (auto& m : members)
            m.driver->stop();
        io.run_for(100ms);
    }

    std::optional<raftkv::node_id> wait_for_leader()
    {
        for (int i = 0; i < 500; ++i) {
            io.run_for(5ms);
            for (auto& m : members) {
                auto s = m.driver->status();
                if (s.role == raftkv::role::leader && !net.down[s.id])
                    return s.id;
            }
        }
        return std::nullopt;
    }

    driver_t& at(raftkv::node_id id) { return *members[id - 1].driver; }

    asio::io_context io;
    router net;
    std::vector<member> members;
};

} // namespace

BOOST_AUTO_TEST_CASE(single_node_proposal_completes_through_a_callback)
{
    cluster c(1);
    BOOST_REQUIRE(c.wait_for_leader());
    std::optional<std::pair<std::error_code, std::size_t>> got;
    c.at(1).async_propose("a", [&](boost::system::error_code ec, std::size_t n) { got.emplace(ec, n); });
    BOOST_TEST(!got); // never completed inside the initiating call
    for (int i = 0; i < 100 && !got; ++i)
        c.io.run_for(2ms);
    BOOST_REQUIRE(got);
    BOOST_TEST(!got->first);
    BOOST_TEST(got->second == 1u);
}

BOOST_AUTO_TEST_CASE(proposals_complete_through_use_future)
{
    cluster c(1);
    BOOST_REQUIRE(c.wait_for_leader());
    std::thread runner([&] { c.io.run_for(1s); });
    auto f1 = c.at(1).async_propose("a", asio::use_future);
    auto f2 = c.at(1).async_propose("b", asio::use_future);
    BOOST_TEST(f1.get() == 1u);
    BOOST_TEST(f2.get() == 2u);
    runner.join();
}

BOOST_AUTO_TEST_CASE(proposals_and_reads_complete_through_use_awaitable)
{
    cluster c(1);
    BOOST_REQUIRE(c.wait_for_leader());
    std::size_t n = 0;
    bool read_ok = false;
    asio::co_spawn(
        c.io,
        [&]() -> asio::awaitable<void> {
            n = co_await c.at(1).async_propose("a", asio::use_awaitable);
            co_await c.at(1).async_read(asio::use_awaitable);
            read_ok = c.members[0].machine.commands.size() == 1;
        },
        asio::detached);
    for (int i = 0; i < 200 && !read_ok; ++i)
        c.io.run_for(2ms);
    BOOST_TEST(n == 1u);
    BOOST_TEST(read_ok);
}

BOOST_AUTO_TEST_CASE(many_concurrent_proposals_all_complete_in_order)
{
    cluster c(3);
    auto leader = c.wait_for_leader();
    BOOST_REQUIRE(leader);
    std::vector<std::size_t> results;
    for (int i = 0; i < 200; ++i)
        c.at(*leader).async_propose(std::string("x").append(std::to_string(i)), // not +: GCC 12 -Wrestrict
                                    [&](boost::system::error_code ec, std::size_t n) {
                                        BOOST_TEST(!ec, ec.message());
                                        results.push_back(n);
                                    });
    for (int i = 0; i < 500 && results.size() < 200; ++i)
        c.io.run_for(2ms);
    BOOST_REQUIRE_EQUAL(results.size(), 200u);
    for (std::size_t i = 0; i < results.size(); ++i)
        BOOST_TEST(results[i] == i + 1);
}

BOOST_AUTO_TEST_CASE(follower_forwards_proposals_to_the_leader_and_completes_them_once_applied)
{
    cluster c(3);
    auto leader = c.wait_for_leader();
    BOOST_REQUIRE(leader);
    c.io.run_for(20ms); // let followers hear from the leader
    const raftkv::node_id follower = *leader == 1 ? 2 : 1;
    std::vector<std::pair<boost::system::error_code, std::size_t>> got;
    for (int k = 0; k < 20; ++k)
        c.at(follower).async_propose(
            "f" + std::to_string(k),
            [&](boost::system::error_code ec, std::size_t r) { got.emplace_back(ec, r); });
    for (int i = 0; i < 500 && got.size() < 20; ++i)
        c.io.run_for(2ms);
    BOOST_REQUIRE_EQUAL(got.size(), 20u);
    for (std::size_t k = 0; k < got.size(); ++k) {
        BOOST_TEST(!got[k].first, got[k].first.message());
        // The result is the follower's own machine's, when it applied the entry.
        BOOST_TEST(got[k].second == c.members[follower - 1].machine.commands.size() - 19 + k);
    }
    BOOST_TEST(c.members[follower - 1].machine.commands.back() == "f19");
}

// The leader's answer to a forward can reach the follower after the entry did (through a
// newer leader, say): the proposal still completes with its result, not "unknown".
BOOST_AUTO_TEST_CASE(a_forward_answered_after_its_entry_was_applied_completes_with_its_result)
{
    cluster c(3);
    auto leader = c.wait_for_leader();
    BOOST_REQUIRE(leader);
    c.io.run_for(20ms);
    const raftkv::node_id follower = *leader == 1 ? 2 : 1;
    c.net.held_type = raftkv::message_body(raftkv::forward_response{}).index();
    std::vector<std::pair<boost::system::error_code, std::size_t>> got;
    for (int k = 0; k < 3; ++k)
        c.at(follower).async_propose(
            "late" + std::to_string(k),
            [&](boost::system::error_code ec, std::size_t r) { got.emplace_back(ec, r); });
    const auto& commands = c.members[follower - 1].machine.commands;
    for (int i = 0; i < 200 && (commands.empty() || commands.back() != "late2"); ++i)
        c.io.run_for(2ms);
    BOOST_REQUIRE(commands.back() == "late2"); // applied, its answer still held
    BOOST_TEST(got.empty());
    BOOST_REQUIRE(!c.net.held.empty());
    c.net.release();
    for (int i = 0; i < 100 && got.size() < 3; ++i)
        c.io.run_for(2ms);
    BOOST_REQUIRE_EQUAL(got.size(), 3u);
    for (std::size_t k = 0; k < got.size(); ++k) {
        BOOST_TEST(!got[k].first, got[k].first.message());
        BOOST_TEST(got[k].second == commands.size() - 2 + k); // the follower's machine's result
    }
}

BOOST_AUTO_TEST_CASE(follower_refuses_proposals_with_not_leader_and_names_the_leader_when_not_forwarding)
{
    cluster c(3, false);
    auto leader = c.wait_for_leader();
    BOOST_REQUIRE(leader);
    c.io.run_for(20ms); // let followers hear from the leader
    const raftkv::node_id follower = *leader == 1 ? 2 : 1;
    std::optional<std::error_code> got;
    c.at(follower).async_propose("x", [&](boost::system::error_code ec, std::size_t) { got = ec; });
    c.io.run_for(10ms);
    BOOST_TEST((got == std::error_code(raftkv::errc::not_leader)));
    BOOST_TEST(c.at(follower).status().leader == *leader);
}

namespace {

/// Proposes "w" on `leader` and runs the cluster until it completes (at most a second).
std::optional<std::error_code> write_one(cluster& c, raftkv::node_id leader)
{
    std::optional<std::error_code> wrote;
    c.at(leader).async_propose("w", [&](boost::system::error_code ec, std::size_t) { wrote = ec; });
    for (int i = 0; i < 500 && !wrote; ++i)
        c.io.run_for(2ms);
    return wrote;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_follower_serves_a_read_through_its_leader_once_it_applied_a_write_before_it)
{
    cluster c(3);
    auto leader = c.wait_for_leader();
    BOOST_REQUIRE(leader);
    c.io.run_for(20ms); // let followers hear from the leader
    const raftkv::node_id follower = *leader == 1 ? 2 : 1;
    const std::optional<std::error_code> wrote = write_one(c, *leader);
    BOOST_REQUIRE(wrote.has_value());
    BOOST_REQUIRE(!*wrote);
    const raftkv::index_t applied_at_leader = c.at(*leader).status().applied_index;
    std::optional<std::error_code> read;
    c.at(follower).async_read([&](boost::system::error_code ec) { read = ec; });
    for (int i = 0; i < 500 && !read; ++i)
        c.io.run_for(2ms);
    BOOST_REQUIRE(read.has_value());
    BOOST_TEST(!*read);
    BOOST_TEST(c.at(follower).status().applied_index >= applied_at_leader);
}

// What status() publishes is the node's own status, every field of it (the HTTP server's
// readiness reads it, and once missed that a snapshot was being installed).
BOOST_AUTO_TEST_CASE(the_published_status_is_the_nodes_whole)
{
    cluster c(3);
    auto leader = c.wait_for_leader();
    BOOST_REQUIRE(leader);
    const std::optional<std::error_code> wrote = write_one(c, *leader);
    BOOST_REQUIRE(wrote.has_value());
    c.io.run_for(20ms);
    for (raftkv::node_id id = 1; id <= 3; ++id) {
        std::optional<raftkv::node_status> own;
        c.at(id).post([&](auto& node) { own = node.status(); });
        for (int i = 0; i < 100 && !own; ++i)
            c.io.run_for(1ms);
        BOOST_REQUIRE(own.has_value());
        const raftkv::node_status published = c.at(id).status();
        BOOST_TEST(published.id == own->id);
        BOOST_TEST((published.role == own->role));
        BOOST_TEST(published.term == own->term);
        BOOST_TEST(published.leader == own->leader);
        BOOST_TEST(published.commit_index == own->commit_index);
        BOOST_TEST(published.applied_index == own->applied_index);
        BOOST_TEST(published.first_index == own->first_index);
        BOOST_TEST(published.last_index == own->last_index);
        BOOST_TEST(published.snapshot_index == own->snapshot_index);
        BOOST_TEST(published.snapshot_term == own->snapshot_term);
        BOOST_TEST(published.members.voters == own->members.voters);
        BOOST_TEST(published.members_index == own->members_index);
        BOOST_TEST(published.malformed_dropped == own->malformed_dropped);
        BOOST_TEST(published.restoring_snapshot == own->restoring_snapshot);
    }
}

BOOST_AUTO_TEST_CASE(a_read_at_a_node_that_knows_no_leader_fails_with_not_leader)
{
    cluster c(3);
    for (raftkv::node_id id = 1; id <= 3; ++id)
        c.net.down[id] = true; // nobody hears anybody: no leader is ever known
    std::optional<std::error_code> read;
    c.at(1).async_read([&](boost::system::error_code ec) { read = ec; });
    c.io.run_for(10ms);
    BOOST_TEST((read == std::error_code(raftkv::errc::not_leader)));
}

BOOST_AUTO_TEST_CASE(leader_without_a_quorum_times_out_its_proposals)
{
    cluster c(3);
    auto leader = c.wait_for_leader();
    BOOST_REQUIRE(leader);
    for (raftkv::node_id id = 1; id <= 3; ++id)
        c.net.down[id] = id != *leader;
    std::optional<std::error_code> got;
    c.at(*leader).async_propose("x", [&](boost::system::error_code ec, std::size_t) { got = ec; });
    for (int i = 0; i < 200 && !got; ++i)
        c.io.run_for(5ms);
    BOOST_REQUIRE(got);
    BOOST_TEST((*got == std::error_code(raftkv::errc::timeout)));
}

// A caller that proposes again after a failure passes the deadline of its whole request,
// so the last try does not run a proposal timeout of its own past it.
BOOST_AUTO_TEST_CASE(a_proposal_times_out_at_its_callers_deadline_when_that_comes_first)
{
    // Ticks of 2 ms, proposal_timeout 300 ms; an election timeout of 100 ms, so the
    // follower gives its forwards up after 200 ms, and its leader steps down after 100.
    cluster c(3, true, 50);
    auto leader = c.wait_for_leader();
    BOOST_REQUIRE(leader);
    c.io.run_for(20ms); // let followers hear from the leader
    const raftkv::node_id follower = *leader == 1 ? 2 : 1;
    // The leader hears the follower's forwards no more, and still leads it.
    c.net.lost_type = raftkv::message_body(raftkv::forward_request{}).index();
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    std::optional<std::error_code> forwarded, later, unbounded;
    std::optional<clock::duration> forwarded_after;
    c.at(follower).async_propose("f", start + 30ms, [&](boost::system::error_code ec, std::size_t) {
        forwarded = ec;
        forwarded_after = clock::now() - start;
    });
    // In the same batch, one with a later deadline and one with none: each keeps its own.
    c.at(follower).async_propose("g", start + 120ms,
                                 [&](boost::system::error_code ec, std::size_t) { later = ec; });
    c.at(follower).async_propose("h", [&](boost::system::error_code ec, std::size_t) { unbounded = ec; });
    for (int i = 0; i < 100 && !forwarded; ++i)
        c.io.run_for(2ms);
    BOOST_REQUIRE(forwarded);
    BOOST_TEST((*forwarded == std::error_code(raftkv::errc::timeout)));
    BOOST_TEST((*forwarded_after >= 30ms && *forwarded_after < 100ms));
    BOOST_TEST(!later);
    BOOST_TEST(!unbounded);
    for (int i = 0; i < 100 && !later; ++i)
        c.io.run_for(2ms);
    BOOST_REQUIRE(later);
    BOOST_TEST((*later == std::error_code(raftkv::errc::timeout)));
    BOOST_TEST(!unbounded);

    // At the leader, cut off from both followers: its proposal waits for a quorum.
    c.net.lost_type.reset();
    for (raftkv::node_id id = 1; id <= 3; ++id)
        c.net.down[id] = id != *leader;
    const auto local_start = clock::now();
    std::optional<std::error_code> local;
    std::optional<clock::duration> local_after;
    c.at(*leader).async_propose("x", local_start + 40ms, [&](boost::system::error_code ec, std::size_t) {
        local = ec;
        local_after = clock::now() - local_start;
    });
    for (int i = 0; i < 100 && !local; ++i)
        c.io.run_for(2ms);
    BOOST_REQUIRE(local);
    BOOST_TEST((*local == std::error_code(raftkv::errc::timeout)));
    BOOST_TEST((*local_after >= 40ms && *local_after < 120ms));
}

BOOST_AUTO_TEST_CASE(stop_fails_pending_operations_with_shutting_down)
{
    cluster c(3);
    auto leader = c.wait_for_leader();
    BOOST_REQUIRE(leader);
    for (raftkv::node_id id = 1; id <= 3; ++id)
        c.net.down[id] = id != *leader;
    std::optional<std::error_code> got;
    c.at(*leader).async_propose("x", [&](boost::system::error_code ec, std::size_t) { got = ec; });
    c.io.run_for(5ms);
    c.at(*leader).stop();
    c.io.run_for(5ms);
    BOOST_REQUIRE(got);
    BOOST_TEST((*got == std::error_code(raftkv::errc::shutting_down)));
    std::optional<std::error_code> after;
    c.at(*leader).async_read([&](boost::system::error_code ec) { after = ec; });
    c.io.run_for(5ms);
    BOOST_TEST((after == std::error_code(raftkv::errc::shutting_down)));
}

namespace {

// A log store whose appends fail once told to, as a full disk makes them.
struct failing_store : raftkv::memory_log_store {
    bool fail = false;
    void append(std::span<const raftkv::log_entry> es)
    {
        if (fail)
            throw std::runtime_error("cannot write the log: No space left on device");
        memory_log_store::append(es);
    }
};

using failing_driver = raftkv::asio::driver<loopback_transport, failing_store, list_machine>;

// One voter over a failing_store, already leading.
struct failing_node {
    failing_node()
    {
        net.deliver.resize(2);
        net.down.assign(2, false);
        raftkv::options o;
        o.id = 1;
        o.members.voters = {1};
        raftkv::asio::driver_options d;
        d.tick_interval = 2ms;
        driver = std::make_unique<failing_driver>(asio::make_strand(io), o, transport, store, machine, d);
    }

    bool wait_for_leader()
    {
        for (int i = 0; i < 500 && driver->status().role != raftkv::role::leader; ++i)
            io.run_for(5ms);
        return driver->status().role == raftkv::role::leader;
    }

    asio::io_context io;
    router net;
    loopback_transport transport{&net};
    failing_store store;
    list_machine machine;
    std::unique_ptr<failing_driver> driver;
};

std::string what(std::exception_ptr e)
{
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    }
}

} // namespace

BOOST_AUTO_TEST_CASE(a_storage_failure_stops_the_node_and_reaches_the_failure_handler)
{
    failing_node n;
    std::vector<std::string> failures;
    n.driver->on_failure([&](std::exception_ptr e) { failures.push_back(what(e)); });
    n.driver->start();
    BOOST_REQUIRE(n.wait_for_leader());
    std::optional<std::error_code> first;
    n.driver->async_propose("a", [&](boost::system::error_code ec, std::size_t) { first = ec; });
    n.io.run_for(20ms);
    BOOST_TEST((first == std::error_code()));

    n.store.fail = true;
    std::optional<std::error_code> in_flight;
    n.driver->async_propose("b", [&](boost::system::error_code ec, std::size_t) { in_flight = ec; });
    n.io.run_for(20ms); // does not throw: the handler took the exception
    BOOST_TEST_REQUIRE(failures.size() == 1u);
    BOOST_TEST(failures[0] == "cannot write the log: No space left on device");
    BOOST_TEST((in_flight == std::error_code(raftkv::errc::node_failed)));

    // Stopped: nothing more reaches the node, and every later operation fails the same way.
    const raftkv::node_status before = n.driver->status();
    n.store.fail = false;
    std::optional<std::error_code> later_write, later_read;
    n.driver->async_propose("c", [&](boost::system::error_code ec, std::size_t) { later_write = ec; });
    n.driver->async_read([&](boost::system::error_code ec) { later_read = ec; });
    n.io.restart(); // it ran out of work: the stopped driver ticks no more
    n.io.run_for(50ms);
    BOOST_TEST((later_write == std::error_code(raftkv::errc::node_failed)));
    BOOST_TEST((later_read == std::error_code(raftkv::errc::node_failed)));
    BOOST_TEST(n.driver->status().last_index == before.last_index);
    BOOST_TEST(n.machine.applied_index() == 1u + 1u); // the leader's noop and "a"
    BOOST_TEST(failures.size() == 1u);
}

BOOST_AUTO_TEST_CASE(fail_stops_the_node_for_a_failure_the_owner_learned_of)
{
    failing_node n;
    std::vector<std::string> failures;
    n.driver->on_failure([&](std::exception_ptr e) { failures.push_back(what(e)); });
    n.driver->start();
    BOOST_REQUIRE(n.wait_for_leader());
    n.driver->fail(std::make_exception_ptr(std::runtime_error("the log's sync failed")));
    n.driver->fail(std::make_exception_ptr(std::runtime_error("again")));
    std::optional<std::error_code> read;
    n.driver->async_read([&](boost::system::error_code ec) { read = ec; });
    n.io.run_for(20ms);
    BOOST_TEST_REQUIRE(failures.size() == 1u);
    BOOST_TEST(failures[0] == "the log's sync failed");
    BOOST_TEST((read == std::error_code(raftkv::errc::node_failed)));
}

BOOST_AUTO_TEST_CASE(without_a_failure_handler_a_storage_failure_escapes_run)
{
    failing_node n;
    n.driver->start();
    BOOST_REQUIRE(n.wait_for_leader());
    n.store.fail = true;
    n.driver->async_propose("b", [](boost::system::error_code, std::size_t) {});
    BOOST_CHECK_THROW(n.io.run_for(20ms), std::runtime_error);
}

namespace {

// Reads once at `id` in `mode`, running the io_context until it completes.
std::optional<std::pair<boost::system::error_code, raftkv::asio::read_info>>
read_once(cluster& c, raftkv::node_id id, raftkv::asio::read_mode mode)
{
    std::optional<std::pair<boost::system::error_code, raftkv::asio::read_info>> got;
    c.at(id).async_read(
        mode, [&](boost::system::error_code ec, raftkv::asio::read_info info) { got.emplace(ec, info); });
    for (int i = 0; i < 500 && !got; ++i)
        c.io.run_for(1ms);
    return got;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_lease_read_on_the_leader_skips_the_heartbeat_round)
{
    cluster c(3);
    auto leader = c.wait_for_leader();
    BOOST_REQUIRE(leader);
    const std::optional<std::error_code> wrote = write_one(c, *leader);
    BOOST_REQUIRE(wrote.has_value());
    c.io.run_for(10ms); // heartbeat rounds answered: the lease holds
    auto got = read_once(c, *leader, raftkv::asio::read_mode::lease);
    BOOST_REQUIRE(got);
    BOOST_TEST(!got->first);
    BOOST_TEST(got->second.lease);
    BOOST_TEST(got->second.applied_index >= 2u); // the noop and "w"
    auto lin = read_once(c, *leader, raftkv::asio::read_mode::linearizable);
    BOOST_REQUIRE(lin);
    BOOST_TEST(!lin->first);
    BOOST_TEST(!lin->second.lease);
    const raftkv::node_id follower = *leader == 1 ? 2 : 1;
    auto at_follower = read_once(c, follower, raftkv::asio::read_mode::lease);
    BOOST_REQUIRE(at_follower);
    BOOST_TEST(!at_follower->first);
    BOOST_TEST(!at_follower->second.lease); // followers go through the leader
}

namespace {

raftkv::node_metrics metrics_of(cluster& c, raftkv::node_id id)
{
    std::optional<raftkv::node_metrics> got;
    c.at(id).async_metrics([&](raftkv::node_metrics m) { got = m; });
    for (int i = 0; i < 500 && !got; ++i)
        c.io.run_for(1ms);
    BOOST_REQUIRE(got);
    return *got;
}

} // namespace

BOOST_AUTO_TEST_CASE(reads_submitted_together_share_one_read_index_request)
{
    cluster c(3);
    auto leader = c.wait_for_leader();
    BOOST_REQUIRE(leader);
    c.io.run_for(20ms); // let followers hear from the leader
    const raftkv::node_id follower = *leader == 1 ? 2 : 1;
    const auto before = metrics_of(c, follower);
    // Submitted before the strand runs: one pass, one request to the leader for all of them.
    constexpr int reads = 50;
    int ok = 0, failed = 0;
    for (int i = 0; i < reads; ++i)
        c.at(follower).async_read([&](boost::system::error_code ec) { ++(ec ? failed : ok); });
    for (int i = 0; i < 500 && ok + failed < reads; ++i)
        c.io.run_for(1ms);
    BOOST_TEST(ok == reads);
    BOOST_TEST(failed == 0);
    const auto after = metrics_of(c, follower);
    BOOST_TEST(after.follower_read_requests - before.follower_read_requests == 1u);
}

BOOST_AUTO_TEST_CASE(lease_and_readindex_reads_submitted_together_are_each_served_as_their_mode_says)
{
    cluster c(3);
    auto leader = c.wait_for_leader();
    BOOST_REQUIRE(leader);
    const std::optional<std::error_code> wrote = write_one(c, *leader);
    BOOST_REQUIRE(wrote.has_value());
    c.io.run_for(10ms); // heartbeat rounds answered: the lease holds
    const auto before = metrics_of(c, *leader);
    int lease_served = 0, index_served = 0, failed = 0;
    for (int i = 0; i < 20; ++i) {
        const auto mode = i % 2 ? raftkv::asio::read_mode::lease : raftkv::asio::read_mode::linearizable;
        c.at(*leader).async_read(mode, [&, mode](boost::system::error_code ec, raftkv::asio::read_info info) {
            if (ec || info.lease != (mode == raftkv::asio::read_mode::lease))
                ++failed;
            else
                ++(info.lease ? lease_served : index_served);
        });
    }
    for (int i = 0; i < 500 && lease_served + index_served + failed < 20; ++i)
        c.io.run_for(1ms);
    BOOST_TEST(failed == 0);
    BOOST_TEST(lease_served == 10);
    BOOST_TEST(index_served == 10);
    const auto after = metrics_of(c, *leader);
    // The ten ReadIndex reads need one round; heartbeats may have started others meanwhile.
    BOOST_TEST(after.read_index_rounds - before.read_index_rounds >= 1u);
    BOOST_TEST(after.read_index_rounds - before.read_index_rounds <= 3u);
}

BOOST_AUTO_TEST_CASE(a_leader_cut_off_stops_serving_lease_reads_within_the_lease)
{
    cluster c(3);
    auto leader = c.wait_for_leader();
    BOOST_REQUIRE(leader);
    c.io.run_for(20ms);
    auto before = read_once(c, *leader, raftkv::asio::read_mode::lease);
    BOOST_REQUIRE(before);
    BOOST_TEST(before->second.lease);
    for (raftkv::node_id id = 1; id <= 3; ++id)
        if (id != *leader)
            c.net.down[id] = true;
    // election_ticks 10 - margin 2 = 8 ticks of 2 ms; wait well past them.
    c.io.run_for(30ms);
    auto after = read_once(c, *leader, raftkv::asio::read_mode::lease);
    BOOST_REQUIRE(after);
    BOOST_TEST(!after->second.lease);
}
