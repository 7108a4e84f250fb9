// The health checks' logic without a node: read_coalescer shares ReadIndex rounds among
// concurrent checks, the ?timeout= of GET /health, and when a node is ready (/readyz).
#include "health.hpp"

#define BOOST_TEST_MODULE server_health
#include <boost/test/unit_test.hpp>

#include "kv_service.hpp"

#include <raftkv/error.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using raftkv::server::health_check_counts;
using raftkv::server::read_coalescer;

/// A round starter whose rounds end when the test says so.
struct manual_rounds {
    std::vector<std::function<void(std::error_code)>> pending;

    read_coalescer::round_starter starter()
    {
        return [this](std::function<void(std::error_code)> done) { pending.push_back(std::move(done)); };
    }
};

/// Runs `n` checks concurrently on `io`, each on its own strand, recording their outcomes.
struct checks {
    std::vector<std::optional<std::error_code>> outcomes;

    void start(asio::io_context& io, read_coalescer& c, std::size_t n, std::chrono::milliseconds timeout)
    {
        const std::size_t first = outcomes.size();
        outcomes.resize(first + n);
        for (std::size_t i = first; i < first + n; ++i)
            asio::co_spawn(
                asio::make_strand(io),
                [this, &c, i, timeout]() -> asio::awaitable<void> {
                    const std::error_code ec = co_await c.check(timeout);
                    outcomes[i] = ec;
                },
                asio::detached);
    }

    std::size_t answered() const
    {
        std::size_t k = 0;
        for (const auto& o : outcomes)
            k += o.has_value();
        return k;
    }
};

// Runs the handlers ready now (and those they make ready), without waiting for timers.
void settle(asio::io_context& io)
{
    io.restart();
    io.poll();
}

} // namespace

BOOST_AUTO_TEST_CASE(concurrent_checks_share_one_round)
{
    asio::io_context io;
    manual_rounds rounds;
    read_coalescer c(rounds.starter(), 0ms);
    checks k;
    k.start(io, c, 50, 10s);
    settle(io);
    BOOST_TEST_REQUIRE(rounds.pending.size() == 1u, "50 checks in flight started more than one round");
    BOOST_TEST(k.answered() == 0u, "a check was answered before its round ended");
    rounds.pending[0]({});
    settle(io);
    BOOST_TEST(k.answered() == 50u);
    for (const auto& o : k.outcomes)
        BOOST_TEST((o && !*o));
    const health_check_counts n = c.counts();
    BOOST_TEST(n.checks == 50u);
    BOOST_TEST(n.rounds == 1u);
    BOOST_TEST(n.joined == 49u);
    BOOST_TEST(n.reused == 0u);

    // Without reuse, the next check starts a round of its own.
    k.start(io, c, 1, 10s);
    settle(io);
    BOOST_TEST(rounds.pending.size() == 2u);
    rounds.pending[1](make_error_code(raftkv::errc::leadership_lost));
    settle(io);
    BOOST_TEST_REQUIRE(k.outcomes[50].has_value());
    BOOST_TEST((*k.outcomes[50] == raftkv::errc::leadership_lost), "a round's error reaches its checks");
}

BOOST_AUTO_TEST_CASE(a_recent_result_answers_later_checks_without_a_round)
{
    asio::io_context io;
    manual_rounds rounds;
    read_coalescer c(rounds.starter(), std::chrono::hours(1));
    checks k;
    k.start(io, c, 1, 10s);
    settle(io);
    BOOST_TEST_REQUIRE(rounds.pending.size() == 1u);
    rounds.pending[0](make_error_code(raftkv::errc::not_leader));
    settle(io);
    k.start(io, c, 20, 10s);
    settle(io);
    BOOST_TEST(rounds.pending.size() == 1u, "a check within the reuse period started a round");
    BOOST_TEST(k.answered() == 21u);
    for (const auto& o : k.outcomes)
        BOOST_TEST((o && *o == raftkv::errc::not_leader), "failures are reused too");
    BOOST_TEST(c.counts().reused == 20u);
    BOOST_TEST(c.counts().rounds == 1u);
}

BOOST_AUTO_TEST_CASE(a_check_gives_up_at_its_timeout_and_a_later_one_starts_a_new_round)
{
    asio::io_context io;
    manual_rounds rounds;
    read_coalescer c(rounds.starter(), 0ms);
    checks k;
    k.start(io, c, 3, 20ms);
    io.run_for(5s); // returns once the three checks timed out: nothing else is pending
    BOOST_TEST_REQUIRE(k.answered() == 3u, "a check outlived its timeout");
    for (const auto& o : k.outcomes)
        BOOST_TEST((*o == raftkv::errc::timeout));
    BOOST_TEST_REQUIRE(rounds.pending.size() == 1u);

    // The stuck round started longer ago than the next check's timeout: it starts another.
    k.start(io, c, 1, 20ms);
    settle(io);
    BOOST_TEST(rounds.pending.size() == 2u, "a check joined a round older than its timeout");
    rounds.pending[1]({});
    settle(io);
    BOOST_TEST_REQUIRE(k.outcomes[3].has_value());
    BOOST_TEST(!*k.outcomes[3]);

    // The first round ending late is harmless, and does not replace the newer result.
    rounds.pending[0](make_error_code(raftkv::errc::timeout));
    settle(io);
    BOOST_TEST(k.answered() == 4u);
}

BOOST_AUTO_TEST_CASE(a_round_that_ends_at_once_answers_its_check)
{
    asio::io_context io;
    int started = 0;
    read_coalescer c(
        [&started](std::function<void(std::error_code)> done) {
            ++started;
            done({});
        },
        0ms);
    checks k;
    k.start(io, c, 1, 10s);
    settle(io);
    BOOST_TEST(started == 1);
    BOOST_TEST_REQUIRE(k.answered() == 1u);
    BOOST_TEST(!*k.outcomes[0]);
}

BOOST_AUTO_TEST_CASE(a_round_ending_on_another_thread_answers_on_the_checks_executor)
{
    asio::io_context io;
    asio::io_context other;
    read_coalescer c(
        [&other](std::function<void(std::error_code)> done) {
            asio::post(other, [done = std::move(done)] { done({}); });
        },
        0ms);
    checks k;
    k.start(io, c, 5, 10s);
    settle(io);
    BOOST_TEST(k.answered() == 0u);
    other.run();
    settle(io);
    BOOST_TEST(k.answered() == 5u);
    BOOST_TEST(c.counts().rounds == 1u);
}

// ---- ?timeout= ------------------------------------------------------------------------

namespace {

std::optional<std::chrono::milliseconds> timeout_of(std::string_view target, std::string* error = nullptr)
{
    std::string e;
    auto t = raftkv::server::health_timeout(target, 1000ms, e);
    if (error)
        *error = e;
    BOOST_TEST(t.has_value() == e.empty(), target);
    return t;
}

} // namespace

BOOST_AUTO_TEST_CASE(the_timeout_comes_from_the_query_within_bounds)
{
    BOOST_TEST(timeout_of("/health")->count() == 1000);
    BOOST_TEST(timeout_of("/health?")->count() == 1000);
    BOOST_TEST(timeout_of("/health?verbose=1")->count() == 1000);
    BOOST_TEST(timeout_of("/health?timeout=250")->count() == 250);
    BOOST_TEST(timeout_of("/health?timeout=250ms")->count() == 250);
    BOOST_TEST(timeout_of("/health?x=1&timeout=2s")->count() == 2000);
    BOOST_TEST(timeout_of("/health?timeout=30s")->count() == 30000);
    BOOST_TEST(timeout_of("/health?timeout=30000")->count() == 30000);
    BOOST_TEST(timeout_of("/health?timeout=2%73")->count() == 2000); // percent-decoded
    for (const char* bad :
         {"/health?timeout=", "/health?timeout", "/health?timeout=0", "/health?timeout=-1",
          "/health?timeout=31s", "/health?timeout=30001", "/health?timeout=1m", "/health?timeout=1.5s",
          "/health?timeout=99999999999999999999999", "/health?timeout=18446744073709551s",
          "/health?timeout=1&timeout=2", "/health?timeout=%"}) {
        std::string error;
        BOOST_TEST(!timeout_of(bad, &error).has_value(), bad);
        BOOST_TEST(!error.empty(), bad);
        BOOST_TEST(error.find('\n') == std::string::npos);
    }
    std::string error;
    timeout_of("/health?timeout=" + std::string(1000, '9'), &error);
    BOOST_TEST(error.size() < 200u, "the message quotes a long value only in part");
}

// ---- /readyz --------------------------------------------------------------------------

namespace {

raftkv::server::service_status ready_node()
{
    raftkv::server::service_status s;
    s.node.id = 2;
    s.node.leader = 1;
    s.node.commit_index = 5000;
    s.node.applied_index = 5000;
    s.node.members.voters = {1, 2, 3};
    return s;
}

std::string reason(const raftkv::server::service_status& s, const raftkv::server::storage_status& st = {})
{
    const auto problem = raftkv::server::readiness_problem(s, st);
    return problem ? problem->reason : "ready";
}

} // namespace

BOOST_AUTO_TEST_CASE(a_node_is_ready_when_caught_up_with_a_leader_and_working_storage)
{
    auto s = ready_node();
    BOOST_TEST(reason(s) == "ready");
    s.node.applied_index = 5000 - raftkv::server::ready_max_apply_lag;
    BOOST_TEST(reason(s) == "ready", "a lag of exactly the limit is ready");
    s.node.applied_index -= 1;
    BOOST_TEST(reason(s) == "applying log");
    BOOST_TEST(raftkv::server::readiness_problem(s, {})->message.find("applied index") != std::string::npos);

    s = ready_node();
    s.node.leader = raftkv::no_node;
    BOOST_TEST(reason(s) == "no leader");

    s = ready_node();
    s.node.members.voters = {1, 3};
    BOOST_TEST(reason(s) == "not a member");
    s.node.members.learners = {2};
    BOOST_TEST(reason(s) == "ready", "a learner that is caught up is ready");
    s.node.members.learners = {};
    s.node.members.outgoing = {2};
    BOOST_TEST(reason(s) == "ready", "an outgoing voter still serves");

    s = ready_node();
    s.node.members.voters = {1, 3};
    s.node.members_index = 55;
    s.node.leader = raftkv::no_node;
    BOOST_TEST(reason(s) == "not a member", "removed, it has no leader either: membership is the cause");
    BOOST_TEST(raftkv::server::readiness_problem(s, {})->message.find("removed") != std::string::npos);

    s = ready_node();
    s.node.restoring_snapshot = true;
    BOOST_TEST(reason(s) == "installing snapshot");

    raftkv::server::storage_status failed;
    failed.error = "No space left on device";
    BOOST_TEST(reason(ready_node(), failed) == "storage failed");
    BOOST_TEST(raftkv::server::readiness_problem(ready_node(), failed)->message.find("No space left") !=
               std::string::npos);
}

// A removed node follows nobody; every answer it gives says what it is and what to do.
BOOST_AUTO_TEST_CASE(a_node_outside_the_configuration_with_no_leader_says_it_was_removed)
{
    using raftkv::server::outside_configuration;
    auto s = ready_node();
    BOOST_TEST(!outside_configuration(s.node).has_value());
    s.node.leader = raftkv::no_node;
    BOOST_TEST(!outside_configuration(s.node).has_value(), "a member without a leader waits for one");

    s.node.members.voters = {1, 3};
    s.node.members.learners = {4};
    s.node.members_index = 55;
    const std::optional<std::string> why = outside_configuration(s.node);
    BOOST_TEST_REQUIRE(why.has_value());
    BOOST_TEST(*why ==
               "node 2 is not a member of the cluster's configuration at index 55 (voters 1,3, learners 4): "
               "it was removed and serves nothing; send requests to a member, and stop this node (to bring "
               "it back, add it again with an empty data directory)");

    s.node.leader = 1;
    BOOST_TEST(!outside_configuration(s.node).has_value(),
               "a leader still replicating to it has not finished removing it");

    s.node.leader = raftkv::no_node;
    s.node.members = {};
    s.node.members_index = 0;
    BOOST_TEST(!outside_configuration(s.node).has_value(),
               "a node that joined and has not heard from the leader yet was not removed");
}

// A node removed while it was down may hear of it only from a member's list: its log still
// has it as a member, and what the service heard stands in for the log.
BOOST_AUTO_TEST_CASE(a_member_that_heard_of_its_removal_from_a_list_says_so_while_it_follows_nobody)
{
    using raftkv::server::outside_configuration;
    auto s = ready_node();
    s.removal_heard = "node 2 is not a member of the cluster: member 1's committed configuration ...";
    BOOST_TEST(!outside_configuration(s).has_value(), "a leader replicates to it: it is a member after all");
    s.node.leader = raftkv::no_node;
    BOOST_TEST(outside_configuration(s).value_or("") == *s.removal_heard);
    const auto problem = raftkv::server::readiness_problem(s, {});
    BOOST_TEST_REQUIRE(problem.has_value());
    BOOST_TEST(problem->reason == "not a member");
    BOOST_TEST(problem->message == *s.removal_heard);
    s.removal_heard.reset();
    BOOST_TEST(!outside_configuration(s).has_value(), "a member without a leader waits for one");
}

// A node that joined and replays its log after a restart holds configurations from before
// it was added: outside them, with no leader, it was not removed, it has not caught up.
BOOST_AUTO_TEST_CASE(a_node_that_joined_is_not_removed_by_configurations_from_before_it_was_added)
{
    using raftkv::server::outside_configuration;
    auto s = ready_node();
    s.node.leader = raftkv::no_node;
    s.node.members.voters = {1, 3};
    s.admitted = false;
    BOOST_TEST(!outside_configuration(s).has_value());
    BOOST_TEST(raftkv::server::readiness_problem(s, {})->reason == "not a member", "not ready all the same");
    s.admitted = true;
    BOOST_TEST(outside_configuration(s).has_value());
}
