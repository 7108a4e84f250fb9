#define BOOST_TEST_MODULE node
#include <boost/test/unit_test.hpp>

#include <raftkv/memory_log_store.hpp>
#include <raftkv/node.hpp>

#include "support/list_machine.hpp"
#include "support/manual_cluster.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

// Unit tests of basic_node's rules, with every message delivered by hand so each test
// decides exactly what happens. Randomized and fault-heavy tests live in test/sim/.

BOOST_TEST_DONT_PRINT_LOG_VALUE(raftkv::role)

namespace {

using raftkv::index_t;
using raftkv::message;
using raftkv::node_id;
using raftkv::role;
using raftkv::step_down;
using raftkv::step_down_reason;
using raftkv::term_t;
using raftkv::test::cluster;
using raftkv::test::list_machine;
using raftkv::test::member;
using raftkv::test::node_t;
using raftkv::test::plain_raft;
using raftkv::test::recording_transport;

// `tag` followed by `n`, as the commands of some tests. Not tag + std::to_string(n): GCC 12
// at -O3 reports a false -Wrestrict on operator+(const char*, std::string&&).
std::string tagged(std::string tag, std::uint64_t n)
{
    tag += std::to_string(n);
    return tag;
}

} // namespace

BOOST_AUTO_TEST_CASE(single_node_elects_itself_and_applies_proposals)
{
    cluster c(1);
    c.tick_all(30);
    BOOST_TEST(c.node(1).role() == role::leader);
    auto r = c.propose(1, "a");
    BOOST_TEST(!r.ec);
    BOOST_TEST(r.index == 2u); // after the leader's noop
    BOOST_TEST(c.node(1).applied_index() == 2u);
    BOOST_TEST(c.at(1).machine.commands == std::vector<std::string>{"a"});
}

BOOST_AUTO_TEST_CASE(apply_result_is_never_reported_inside_propose)
{
    cluster c(1);
    c.tick_all(30);
    const auto before = c.at(1).applied.size();
    auto r = c.node(1).propose("x");
    BOOST_TEST(c.at(1).applied.size() == before);
    c.node(1).on_log_durable();
    BOOST_REQUIRE(c.at(1).applied.size() == before + 1);
    BOOST_TEST(c.at(1).applied.back().first == r.index);
}

BOOST_AUTO_TEST_CASE(three_nodes_elect_one_leader_and_replicate)
{
    cluster c(3);
    c.tick_all(40);
    int leaders = 0;
    node_id leader = 0;
    for (node_id id = 1; id <= 3; ++id) {
        if (c.node(id).role() == role::leader) {
            ++leaders;
            leader = id;
        }
    }
    BOOST_REQUIRE_EQUAL(leaders, 1);
    c.propose(leader, "x");
    c.tick_all(2);
    for (node_id id = 1; id <= 3; ++id) {
        BOOST_TEST(c.node(id).leader() == leader);
        BOOST_TEST(c.at(id).machine.commands == std::vector<std::string>{"x"});
    }
}

BOOST_AUTO_TEST_CASE(proposal_on_follower_fails_with_leader_hint)
{
    cluster c(3);
    c.elect(2);
    auto r = c.node(1).propose("x");
    BOOST_TEST(r.ec == raftkv::errc::not_leader);
    BOOST_TEST(r.leader == 2u);
}

BOOST_AUTO_TEST_CASE(vote_is_persisted_before_it_is_sent)
{
    cluster c(3);
    c.node(1).campaign();
    auto requests = std::move(c.at(1).transport.sent);
    c.at(1).transport.sent.clear();
    c.node(2).step(requests.at(0));
    BOOST_REQUIRE_EQUAL(c.at(2).transport.sent.size(), 1u);
    const auto& resp = std::get<raftkv::vote_response>(c.at(2).transport.sent[0].body);
    BOOST_TEST(resp.granted);
    BOOST_TEST(c.at(2).store.saved_hard_state().vote == 1u);
    BOOST_TEST(c.at(2).store.saved_hard_state().term == c.node(1).term());
}

BOOST_AUTO_TEST_CASE(one_vote_per_term)
{
    cluster c(3, true, plain_raft());
    c.node(1).campaign();
    c.node(3).campaign(); // same term as node 1
    auto from1 = std::move(c.at(1).transport.sent);
    auto from3 = std::move(c.at(3).transport.sent);
    c.at(1).transport.sent.clear();
    c.at(3).transport.sent.clear();
    for (auto& m : from1)
        if (m.to == 2)
            c.node(2).step(m);
    for (auto& m : from3)
        if (m.to == 2)
            c.node(2).step(m);
    BOOST_REQUIRE_EQUAL(c.at(2).transport.sent.size(), 2u);
    BOOST_TEST(std::get<raftkv::vote_response>(c.at(2).transport.sent[0].body).granted);
    BOOST_TEST(!std::get<raftkv::vote_response>(c.at(2).transport.sent[1].body).granted);
}

BOOST_AUTO_TEST_CASE(vote_denied_to_candidate_with_older_log)
{
    cluster c(3);
    c.elect(1);
    c.isolate(3);
    c.propose(1, "x");
    c.heal();
    c.node(3).campaign();
    c.deliver_all();
    BOOST_TEST(c.node(3).role() != role::leader);
}

BOOST_AUTO_TEST_CASE(follower_acknowledges_only_durable_entries)
{
    cluster c(3, /*sync_on_append=*/false);
    c.node(1).campaign();
    c.deliver_all();
    c.at(1).store.sync();
    c.node(1).on_log_durable();
    c.deliver_all();
    // Followers hold the noop but have not synced it: the leader cannot commit.
    BOOST_TEST(c.node(1).role() == role::leader);
    BOOST_TEST(c.node(1).commit_index() == 0u);
    c.at(2).store.sync();
    c.node(2).on_log_durable();
    c.deliver_all();
    BOOST_TEST(c.node(1).commit_index() == 1u);
}

BOOST_AUTO_TEST_CASE(leader_counts_itself_only_once_durable)
{
    cluster c(3, /*sync_on_append=*/false);
    c.node(1).campaign();
    c.deliver_all();
    for (node_id id : {2, 3}) {
        c.at(id).store.sync();
        c.node(id).on_log_durable();
    }
    c.deliver_all();
    BOOST_TEST(c.node(1).commit_index() == 1u); // two durable followers are a quorum
    c.node(1).propose("x");
    c.deliver_all();
    c.at(2).store.sync();
    c.node(2).on_log_durable();
    c.deliver_all();
    BOOST_TEST(c.node(1).commit_index() == 1u); // one follower + a leader that has not synced
    c.at(1).store.sync();
    c.node(1).on_log_durable();
    BOOST_TEST(c.node(1).commit_index() == 2u);
}

BOOST_AUTO_TEST_CASE(crash_loses_only_what_was_not_durable)
{
    cluster c(1, false);
    c.node(1).campaign();
    c.at(1).store.sync();
    c.node(1).on_log_durable();
    c.node(1).propose("lost");
    c.at(1).store.crash();
    c.start(1);
    BOOST_TEST(c.node(1).last_index() == 1u);
    BOOST_TEST(c.node(1).term() == 1u);
}

BOOST_AUTO_TEST_CASE(restarted_node_keeps_term_vote_and_log_and_reapplies)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "a");
    c.propose(1, "b");
    const auto term = c.node(2).term();
    c.start(2);
    BOOST_TEST(c.node(2).term() == term);
    BOOST_TEST(c.node(2).last_index() == 3u);
    BOOST_TEST(c.node(2).applied_index() == 0u);
    c.tick_all(2); // heartbeats carry the commit index
    BOOST_TEST(c.at(2).machine.commands == (std::vector<std::string>{"a", "b"}));
}

BOOST_AUTO_TEST_CASE(only_entries_of_the_current_term_commit_by_counting)
{
    // Figure 8: an entry of an older term on a majority is not committed until an entry of
    // the leader's own term is. One entry per message lets us watch each step.
    cluster c(3, true, plain_raft(1));
    c.elect(1);
    c.isolate(1);
    c.node(1).propose("old"); // index 2, term 1: only on node 1
    c.deliver_all();
    c.start(1); // restarts as a follower, keeping its log
    c.heal();
    c.isolate(3);
    c.node(1).campaign(); // term 2; its noop goes to index 3
    std::vector<index_t> commits;
    for (int hop = 0; hop < 20; ++hop) {
        c.deliver_one_hop();
        commits.push_back(c.node(1).commit_index());
    }
    BOOST_TEST(c.node(2).last_index() == 3u);
    BOOST_TEST(c.node(1).commit_index() == 3u);
    for (index_t commit : commits)
        BOOST_TEST(commit != 2u); // index 2 (term 1) never committed on its own
}

BOOST_AUTO_TEST_CASE(stale_leader_steps_down_on_hearing_newer_term)
{
    cluster c(3, true, plain_raft());
    c.elect(1);
    c.isolate(1);
    c.elect(2);
    const term_t led = c.node(1).term();
    c.heal();
    c.tick_all(1);
    BOOST_TEST(c.node(1).role() == role::follower);
    BOOST_TEST(c.node(1).leader() == 2u);
    // It says why: node 2's message carried a newer term.
    const step_down d = c.node(1).status().last_step_down;
    BOOST_TEST((d.reason == step_down_reason::newer_term));
    BOOST_TEST(d.term == led);
    BOOST_TEST(d.from == 2u);
    BOOST_TEST(d.newer_term == c.node(2).term());
    BOOST_TEST(c.node(1).metrics().step_downs[static_cast<std::size_t>(step_down_reason::newer_term)] == 1u);
    BOOST_TEST((c.node(2).status().last_step_down.reason == step_down_reason::none));
}

BOOST_AUTO_TEST_CASE(voters_ignore_elections_while_they_hear_from_a_leader)
{
    cluster c(3);
    c.elect(1);
    c.node(2).campaign(); // node 3 heard from node 1 within an election timeout
    c.deliver_all();
    BOOST_TEST(c.node(2).role() != role::leader);
    BOOST_TEST(c.node(1).role() == role::leader);
}

BOOST_AUTO_TEST_CASE(pre_vote_keeps_an_isolated_node_from_raising_its_term)
{
    cluster c(3);
    c.elect(1);
    const auto term = c.node(1).term();
    c.isolate(3);
    c.tick_all(100);
    BOOST_TEST(c.node(3).term() == term);
    c.heal();
    c.tick_all(3);
    BOOST_TEST(c.node(1).role() == role::leader);
    BOOST_TEST(c.node(1).term() == term);
}

BOOST_AUTO_TEST_CASE(leader_steps_down_when_quorum_lost)
{
    cluster c(3);
    c.elect(1);
    c.isolate(1);
    c.tick_all(25);
    BOOST_TEST(c.node(1).role() != role::leader);
    BOOST_TEST((c.node(1).status().last_step_down.reason == step_down_reason::check_quorum));
    BOOST_TEST(c.node(1).metrics().step_downs[static_cast<std::size_t>(step_down_reason::check_quorum)] ==
               1u);
}

BOOST_AUTO_TEST_CASE(leader_backs_up_a_whole_term_per_round_trip)
{
    cluster c(3, true, plain_raft());
    c.elect(1);
    c.isolate(1);
    for (int i = 0; i < 60; ++i)
        c.node(1).propose("stale" + std::to_string(i)); // 60 entries only node 1 has
    c.heal();
    c.isolate(1);
    c.elect(2);
    for (int i = 0; i < 5; ++i)
        c.propose(2, "new" + std::to_string(i));
    c.heal();
    // Count rejections on the way: one per divergent term, not one per entry.
    int rejections = 0;
    for (int round = 0; round < 10; ++round) {
        c.node(2).tick();
        for (bool any = true; any;) {
            any = false;
            for (node_id id = 1; id <= 3; ++id) {
                auto out = std::move(c.at(id).transport.sent);
                c.at(id).transport.sent.clear();
                for (auto& m : out) {
                    any = true;
                    if (auto* r = std::get_if<raftkv::append_response>(&m.body); r && !r->success)
                        ++rejections;
                    c.node(m.to).step(std::move(m));
                }
            }
        }
    }
    BOOST_TEST(rejections <= 2);
    BOOST_TEST(c.node(1).last_index() == c.node(2).last_index());
    BOOST_TEST(c.at(1).machine.commands == c.at(2).machine.commands);
}

BOOST_AUTO_TEST_CASE(read_index_fails_at_once_on_a_node_that_knows_no_leader)
{
    cluster c(3);
    BOOST_TEST(c.node(2).read_index(7) == raftkv::errc::not_leader);
    c.node(1).campaign();
    c.deliver_one_hop(); // vote requests: node 2 is a follower of no known leader
    BOOST_TEST(c.node(2).read_index(8) == raftkv::errc::not_leader);
    BOOST_TEST(c.node(1).read_index(9) == raftkv::errc::not_leader); // a candidate
    BOOST_TEST(c.at(2).reads.empty());
}

BOOST_AUTO_TEST_CASE(read_index_completes_after_a_quorum_answers)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "x");
    c.isolate(3);
    BOOST_TEST(!c.node(1).read_index(7));
    BOOST_TEST(c.at(1).reads.empty()); // needs a heartbeat round first
    c.deliver_all();
    BOOST_REQUIRE_EQUAL(c.at(1).reads.size(), 1u);
    BOOST_TEST(c.at(1).reads[0].first == 7u);
    BOOST_TEST(!c.at(1).reads[0].second);
}

BOOST_AUTO_TEST_CASE(reads_start_up_to_max_read_rounds_and_the_rest_share_the_next)
{
    for (const std::uint32_t max_rounds : {1u, 4u}) {
        raftkv::options o;
        o.max_read_rounds = max_rounds;
        cluster c(3, true, o);
        c.elect(1);
        c.at(1).transport.sent.clear();
        const auto heartbeats = [&] {
            std::size_t n = 0;
            for (auto& m : c.at(1).transport.sent)
                n += std::holds_alternative<raftkv::heartbeat>(m.body) ? 1 : 0;
            return n;
        };
        // Each read (each call: a driver calls once per batch) starts a round while fewer
        // than max_read_rounds are out, one heartbeat per follower; the rest wait.
        for (std::uint64_t id = 1; id <= 50; ++id)
            c.node(1).read_index(id);
        BOOST_TEST(heartbeats() == 2u * max_rounds);
        // The answers confirm every round out, and one more starts for every read waiting.
        c.deliver_one_hop(); // heartbeats (delivered messages leave `sent`)
        c.deliver_one_hop(); // their answers
        BOOST_TEST(c.at(1).reads.size() == std::size_t{max_rounds});
        BOOST_TEST(heartbeats() == 2u);
        c.deliver_all();
        BOOST_TEST(c.at(1).reads.size() == 50u);
        for (const auto& [id, ec] : c.at(1).reads)
            BOOST_TEST(!ec);
    }
}

BOOST_AUTO_TEST_CASE(deposed_leader_never_serves_a_read)
{
    cluster c(3);
    c.elect(1);
    c.isolate(1);
    BOOST_TEST(!c.node(1).read_index(9)); // still believes it leads
    c.tick_all(40);                       // nodes 2 and 3 elect a leader; CheckQuorum deposes node 1
    BOOST_TEST(c.node(1).role() != role::leader);
    BOOST_REQUIRE_EQUAL(c.at(1).reads.size(), 1u);
    BOOST_TEST(c.at(1).reads[0].second == raftkv::errc::leadership_lost);
}

BOOST_AUTO_TEST_CASE(reads_wait_for_the_leaders_first_commit)
{
    cluster c(3);
    c.node(1).campaign();
    // Deliver only the votes so node 1 leads but has not committed its noop.
    for (int hop = 0; hop < 2; ++hop) {
        for (node_id id = 1; id <= 3; ++id) {
            auto out = std::move(c.at(id).transport.sent);
            c.at(id).transport.sent.clear();
            for (auto& m : out)
                if (!std::holds_alternative<raftkv::append_request>(m.body))
                    c.node(m.to).step(std::move(m));
        }
    }
    BOOST_REQUIRE(c.node(1).role() == role::leader);
    BOOST_REQUIRE(c.node(1).commit_index() == 0u);
    c.node(1).read_index(1);
    BOOST_TEST(c.at(1).reads.empty());
    c.tick_all(2);
    BOOST_REQUIRE_EQUAL(c.at(1).reads.size(), 1u);
    BOOST_TEST(!c.at(1).reads[0].second);
}

// ---- ReadIndex at a follower -------------------------------------------------------

namespace {
// Delivers, hop after hop until none is left, every message but those `drop` says to.
template <class Drop>
void deliver_all_but(cluster& c, Drop drop)
{
    for (bool any = true; any;) {
        any = false;
        for (node_id id = 1; id <= c.size(); ++id) {
            auto out = std::move(c.at(id).transport.sent);
            c.at(id).transport.sent.clear();
            for (auto& m : out) {
                any = true;
                if (!drop(m))
                    c.node(m.to).step(std::move(m));
            }
        }
    }
}

std::size_t count_sent(const member& m, std::size_t body_index)
{
    return static_cast<std::size_t>(
        std::count_if(m.transport.sent.begin(), m.transport.sent.end(),
                      [&](const message& x) { return x.body.index() == body_index; }));
}

constexpr std::size_t read_index_request_type = 9;
constexpr std::size_t read_index_response_type = 10;
static_assert(std::is_same_v<std::variant_alternative_t<read_index_request_type, raftkv::message_body>,
                             raftkv::read_index_request>);
static_assert(std::is_same_v<std::variant_alternative_t<read_index_response_type, raftkv::message_body>,
                             raftkv::read_index_response>);
} // namespace

BOOST_AUTO_TEST_CASE(a_follower_read_waits_for_the_leaders_commit_index_and_its_own_apply)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "a");
    c.cut_.insert({1, 2}); // node 2 misses "b"
    c.propose(1, "b");
    c.heal();
    BOOST_REQUIRE(c.node(2).applied_index() < c.node(1).commit_index());
    const index_t index = c.node(1).commit_index();
    std::vector<std::pair<std::uint64_t, index_t>> served; // read id, node 2's applied index then
    c.node(2).on_read([&](std::uint64_t id, std::error_code ec) {
        BOOST_TEST(!ec);
        served.emplace_back(id, c.node(2).applied_index());
    });
    BOOST_TEST(!c.node(2).read_index(5));
    BOOST_TEST(served.empty());
    BOOST_TEST(count_sent(c.at(2), read_index_request_type) == 1u);
    c.deliver_all();            // the leader confirms a heartbeat round and answers
    BOOST_TEST(served.empty()); // node 2 has not applied "b" yet
    c.tick_all(10);             // the leader notices node 2 misses "b" and resends it
    BOOST_REQUIRE_EQUAL(served.size(), 1u);
    BOOST_TEST(served[0].first == 5u);
    BOOST_TEST(served[0].second >= index);
    BOOST_TEST(c.at(2).machine.commands == (std::vector<std::string>{"a", "b"}));
}

BOOST_AUTO_TEST_CASE(follower_reads_send_up_to_max_read_rounds_requests_and_the_rest_share_the_next)
{
    raftkv::options o;
    o.max_read_rounds = 2;
    cluster c(3, true, o);
    c.elect(1);
    c.propose(1, "a");
    for (std::uint64_t id = 1; id <= 50; ++id)
        BOOST_TEST(!c.node(2).read_index(id));
    BOOST_TEST(count_sent(c.at(2), read_index_request_type) == 2u); // reads 1 and 2
    c.deliver_one_hop(); // the leader gets them and answers: with node 2 it is a quorum
    c.deliver_one_hop(); // node 2 gets the answers (delivered messages leave `sent`)
    BOOST_TEST(c.at(2).reads.size() == 2u);
    BOOST_TEST(count_sent(c.at(2), read_index_request_type) == 1u); // one for the other 48
    c.deliver_all();
    BOOST_REQUIRE_EQUAL(c.at(2).reads.size(), 50u);
    for (const auto& [id, ec] : c.at(2).reads)
        BOOST_TEST(!ec);
}

BOOST_AUTO_TEST_CASE(an_answer_to_a_follower_read_request_serves_the_requests_sent_before_it)
{
    raftkv::options o;
    o.max_read_rounds = 3;
    cluster c(3, true, o);
    c.elect(1);
    c.propose(1, "a");
    for (std::uint64_t id = 1; id <= 3; ++id)
        BOOST_TEST(!c.node(2).read_index(id));
    BOOST_REQUIRE_EQUAL(count_sent(c.at(2), read_index_request_type), 3u);
    // The leader answers all three; only the answer to the last one reaches node 2.
    c.deliver_one_hop();
    std::vector<message> answers;
    for (const message& m : c.at(1).transport.sent)
        if (m.to == 2 && std::holds_alternative<raftkv::read_index_response>(m.body))
            answers.push_back(m);
    BOOST_REQUIRE_EQUAL(answers.size(), 3u);
    c.at(1).transport.sent.clear();
    c.node(2).step(answers.back());
    BOOST_REQUIRE_EQUAL(c.at(2).reads.size(), 3u);
    for (const auto& [id, ec] : c.at(2).reads)
        BOOST_TEST(!ec);
    // The older answers, late, serve nothing more.
    c.node(2).step(answers[0]);
    c.node(2).step(answers[1]);
    BOOST_TEST(c.at(2).reads.size() == 3u);
}

BOOST_AUTO_TEST_CASE(a_leader_holds_a_followers_read_until_it_committed_in_its_term)
{
    cluster c(3);
    c.node(1).campaign();
    c.deliver_one_hop(); // vote requests
    c.deliver_one_hop(); // votes: node 1 leads and sends its noop
    BOOST_REQUIRE(c.node(1).role() == role::leader);
    const auto appends = [](const message& m) {
        return std::holds_alternative<raftkv::append_request>(m.body);
    };
    c.node(1).tick(); // a heartbeat tells node 2 who leads; the noop never arrives
    deliver_all_but(c, appends);
    BOOST_REQUIRE(c.node(2).leader() == 1u);
    BOOST_TEST(!c.node(2).read_index(3));
    for (int t = 0; t < 3; ++t) {
        c.node(1).tick();
        deliver_all_but(c, appends);
    }
    BOOST_TEST(c.node(1).commit_index() == 0u);
    BOOST_TEST(c.at(2).reads.empty()); // held: the leader's commit index may be stale
    c.node(1).tick();
    c.deliver_all();
    BOOST_REQUIRE_EQUAL(c.at(2).reads.size(), 1u);
    BOOST_TEST(!c.at(2).reads[0].second);
    BOOST_TEST(c.node(2).applied_index() >= 1u);
}

BOOST_AUTO_TEST_CASE(a_follower_read_fails_when_its_request_goes_unanswered_for_an_election_timeout)
{
    cluster c(3);
    c.elect(1);
    c.cut_.insert({2, 1}); // node 2 hears its leader, which does not hear it
    BOOST_TEST(!c.node(2).read_index(4));
    const auto timeout = static_cast<int>(c.node(2).config().election_ticks);
    c.tick_all(timeout - 1);
    BOOST_TEST(c.at(2).reads.empty());
    c.tick_all(1);
    BOOST_REQUIRE_EQUAL(c.at(2).reads.size(), 1u);
    BOOST_TEST(c.at(2).reads[0].second == raftkv::errc::leadership_lost);
    BOOST_TEST(c.node(2).leader() == 1u); // still following: the caller may retry
}

BOOST_AUTO_TEST_CASE(a_three_voter_leader_answers_a_followers_read_request_without_a_round)
{
    // The request, sent in the leader's term after the read arrived, confirms the leader
    // together with the leader itself: a quorum of three.
    cluster c(3);
    c.elect(1);
    c.propose(1, "a");
    const auto rounds = c.node(1).metrics().read_index_rounds;
    BOOST_TEST(!c.node(2).read_index(4));
    c.deliver_one_hop(); // the leader has the request
    BOOST_TEST(count_sent(c.at(1), read_index_response_type) == 1u);
    BOOST_TEST(c.node(1).metrics().read_index_rounds == rounds);
    c.deliver_one_hop();
    BOOST_REQUIRE_EQUAL(c.at(2).reads.size(), 1u);
    BOOST_TEST(!c.at(2).reads[0].second);

    // With five voters the two are not a quorum: the leader needs a heartbeat round.
    cluster five(5);
    five.elect(1);
    five.propose(1, "a");
    const auto rounds5 = five.node(1).metrics().read_index_rounds;
    BOOST_TEST(!five.node(2).read_index(4));
    five.deliver_one_hop();
    BOOST_TEST(count_sent(five.at(1), read_index_response_type) == 0u);
    BOOST_TEST(five.node(1).metrics().read_index_rounds == rounds5 + 1);
    five.deliver_all();
    BOOST_REQUIRE_EQUAL(five.at(2).reads.size(), 1u);
    BOOST_TEST(!five.at(2).reads[0].second);
}

BOOST_AUTO_TEST_CASE(a_follower_read_fails_when_its_leader_steps_down_before_answering)
{
    cluster c(5); // in three, the leader answers a follower's request at once
    c.elect(1);
    BOOST_TEST(!c.node(2).read_index(4));
    c.deliver_one_hop(); // the leader has the request and starts a heartbeat round
    // A newer term reaches the leader first: it steps down and says it no longer leads.
    c.node(1).step(message{.from = 3, .to = 1, .term = 9, .body = raftkv::append_response{}});
    BOOST_TEST(count_sent(c.at(1), read_index_response_type) == 1u);
    c.deliver_all();
    BOOST_REQUIRE_EQUAL(c.at(2).reads.size(), 1u);
    BOOST_TEST(c.at(2).reads[0].second == raftkv::errc::leadership_lost);
}

BOOST_AUTO_TEST_CASE(a_late_or_duplicated_read_index_answer_serves_no_other_read)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "a");
    BOOST_TEST(!c.node(2).read_index(1));
    std::optional<message> answer;
    for (int hop = 0; hop < 4; ++hop) {
        for (const message& m : c.at(1).transport.sent) {
            if (m.to == 2 && std::holds_alternative<raftkv::read_index_response>(m.body))
                answer = m;
        }
        c.deliver_one_hop();
    }
    BOOST_REQUIRE(answer.has_value());
    BOOST_REQUIRE_EQUAL(c.at(2).reads.size(), 1u);
    c.cut_.insert({2, 1}); // the next request is lost
    BOOST_TEST(!c.node(2).read_index(2));
    c.deliver_all();
    c.node(2).step(*answer); // the first answer again, duplicated or late
    BOOST_TEST(c.at(2).reads.size() == 1u);
}

BOOST_AUTO_TEST_CASE(leadership_transfer_hands_over_to_the_target)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "x");
    BOOST_TEST(!c.node(1).transfer_leadership(3));
    c.deliver_all();
    BOOST_TEST(c.node(3).role() == role::leader);
    BOOST_TEST(c.node(1).role() == role::follower);
    BOOST_TEST((c.node(1).status().last_step_down.reason == step_down_reason::transferred));
    BOOST_TEST(c.node(1).status().last_step_down.from == 3u);
    BOOST_TEST(c.propose(3, "y").ec == std::error_code{});
}

// The leader gives a transfer up after an election timeout and leads on, but its word to
// the target may arrive later (a paused process): the target then takes over as told, and
// the old leader says it was the transfer, not an election.
BOOST_AUTO_TEST_CASE(a_transfer_told_late_still_hands_over_and_is_reported_as_one)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "x");
    BOOST_TEST(!c.node(1).transfer_leadership(3));
    auto& sent = c.at(1).transport.sent;
    const auto told = std::find_if(sent.begin(), sent.end(), [](const message& m) {
        return m.to == 3 && std::holds_alternative<raftkv::timeout_now>(m.body);
    });
    BOOST_TEST_REQUIRE((told != sent.end()));
    message late = *told;
    sent.erase(told);
    c.tick_all(static_cast<int>(c.node(1).config().election_ticks) + 1);
    BOOST_TEST(c.node(1).role() == role::leader);
    BOOST_TEST(c.propose(1, "y").ec == std::error_code{}); // the transfer is over

    c.node(3).step(std::move(late));
    c.deliver_all();
    BOOST_TEST(c.node(3).role() == role::leader);
    const step_down d = c.node(1).status().last_step_down;
    BOOST_TEST((d.reason == step_down_reason::transferred));
    BOOST_TEST(d.from == 3u);
}

BOOST_AUTO_TEST_CASE(proposals_are_refused_during_a_transfer)
{
    cluster c(3);
    c.elect(1);
    c.isolate(3);
    c.propose(1, "x");
    BOOST_TEST(!c.node(1).transfer_leadership(3));
    BOOST_TEST(c.node(1).propose("y").ec == raftkv::errc::transfer_in_progress);
    c.tick_all(25); // the transfer times out; node 1 leads on
    BOOST_TEST(c.node(1).role() == role::leader);
    BOOST_TEST(!c.node(1).propose("z").ec);
}

BOOST_AUTO_TEST_CASE(a_transfer_to_a_node_silent_for_an_election_timeout_is_refused_at_once)
{
    cluster c(3);
    c.elect(1);
    c.isolate(3);
    const auto timeout = static_cast<int>(c.node(1).config().election_ticks);
    c.tick_all(2 * timeout); // two CheckQuorum periods without a word from node 3
    BOOST_REQUIRE(c.node(1).role() == role::leader);
    BOOST_TEST((c.node(1).transfer_leadership(3) == raftkv::errc::peer_unreachable));
    BOOST_TEST(!c.propose(1, "x").ec, "refused as if a transfer were under way");

    c.heal();
    c.tick_all(static_cast<int>(c.node(1).config().heartbeat_ticks) + 1); // node 3 answers a heartbeat
    BOOST_TEST(!c.node(1).transfer_leadership(3));
    c.tick_all(timeout);
    BOOST_TEST(c.node(3).role() == role::leader);
}

// The leader's view of who answers, as metrics show it: steady for a peer that answers
// every heartbeat, even just after a CheckQuorum period starts, and 0 for one silent for
// one to two election timeouts.
BOOST_AUTO_TEST_CASE(a_peer_is_shown_active_while_it_answers_and_inactive_once_silent)
{
    cluster c(3);
    c.elect(1);
    const auto active = [&c](raftkv::node_id peer) {
        const raftkv::node_metrics m = c.node(1).metrics();
        const auto it = std::ranges::find(m.peers, peer, &raftkv::peer_metrics::id);
        BOOST_REQUIRE(it != m.peers.end());
        return it->active;
    };
    const auto timeout = static_cast<int>(c.node(1).config().election_ticks);
    // Every tick across three period boundaries, looking before the heartbeats sent on
    // that tick are answered (as a scrape can).
    for (int t = 0; t < 3 * timeout; ++t) {
        for (raftkv::node_id id = 1; id <= 3; ++id)
            c.node(id).tick();
        BOOST_TEST_REQUIRE(active(2), "tick " << t);
        BOOST_TEST_REQUIRE(active(3), "tick " << t);
        c.deliver_all();
    }
    c.isolate(3);
    c.tick_all(2 * timeout);
    BOOST_REQUIRE(c.node(1).role() == role::leader);
    BOOST_TEST(active(2));
    BOOST_TEST(!active(3));
    c.heal();
    c.tick_all(static_cast<int>(c.node(1).config().heartbeat_ticks) + 1);
    BOOST_TEST(active(3));
}

// A leader elected under a newer configuration may be unknown to a follower that lags: a
// message from outside the configuration obeys the term rules like any other. Only the
// "no node" id and messages for another node are ignored.
BOOST_AUTO_TEST_CASE(messages_from_outside_the_configuration_obey_the_term_rules)
{
    cluster c(3);
    c.elect(1);
    c.node(1).step(message{.from = raftkv::no_node, .to = 1, .term = 100, .body = raftkv::heartbeat{}});
    c.node(1).step(message{.from = 2, .to = 3, .term = 100, .body = raftkv::heartbeat{}});
    BOOST_TEST(c.node(1).role() == role::leader);
    BOOST_TEST(c.node(1).term() == 1u);
    c.node(1).step(message{.from = 9, .to = 1, .term = 100, .body = raftkv::heartbeat{}});
    BOOST_TEST(c.node(1).role() == role::follower);
    BOOST_TEST(c.node(1).term() == 100u);
    BOOST_TEST(c.node(1).leader() == 9u);
}

BOOST_AUTO_TEST_CASE(a_batch_of_proposals_is_one_append_and_applies_in_order)
{
    cluster c(3);
    c.elect(1);
    std::vector<std::string> batch{"a", "b", "c"};
    auto r = c.node(1).propose(std::span<std::string>(batch));
    BOOST_TEST(!r.ec);
    BOOST_TEST(r.index == 2u);
    BOOST_TEST(c.node(1).last_index() == 4u);
    c.node(1).on_log_durable();
    c.deliver_all();
    BOOST_TEST(c.at(2).machine.commands == (std::vector<std::string>{"a", "b", "c"}));
    BOOST_TEST(c.at(1).applied.back().first == 4u);
}

BOOST_AUTO_TEST_CASE(a_lost_last_append_is_repaired_within_an_election_timeout)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "a"); // followers now in replicate mode
    c.node(1).propose("b");
    c.at(1).transport.sent.clear(); // the append carrying "b" is lost
    c.node(1).on_log_durable();
    c.tick_all(c.node(1).config().election_ticks);
    BOOST_TEST(c.node(2).last_index() == 3u);
    BOOST_TEST(c.node(1).commit_index() == 3u);
}

// ---- the contract: validation, outcomes, handlers, flow control -----------------------

namespace {

bool has_code(const std::system_error& e, raftkv::errc code)
{
    return e.code() == raftkv::make_error_code(code);
}

std::size_t entry_bytes_sent_to(const recording_transport& t, node_id to)
{
    std::size_t bytes = 0;
    for (const message& m : t.sent) {
        if (const auto* a = std::get_if<raftkv::append_request>(&m.body); a && m.to == to)
            for (const auto& e : a->entries)
                bytes += e.data.size();
    }
    return bytes;
}

} // namespace

BOOST_AUTO_TEST_CASE(invalid_options_are_an_error_not_an_assert)
{
    recording_transport t;
    raftkv::memory_log_store s;
    list_machine m;
    const auto refused = [&](raftkv::options o) {
        try {
            node_t n(o, t, s, m);
        } catch (const std::system_error& e) {
            return has_code(e, raftkv::errc::invalid_argument);
        }
        return false;
    };
    raftkv::options o{.id = 1, .members = {{1, 2, 3}}};
    BOOST_TEST(!refused(o));
    BOOST_TEST(refused(raftkv::options{.id = 4, .members = {{1, 2, 3}}}));
    BOOST_TEST(refused(raftkv::options{.id = 0, .members = {{1, 2, 3}}}));
    BOOST_TEST(refused(raftkv::options{.id = 1, .members = {{1, 2, 2}}}));
    auto bad = o;
    bad.election_ticks = bad.heartbeat_ticks;
    BOOST_TEST(refused(bad));
    bad = o;
    bad.max_inflight_appends = 0;
    BOOST_TEST(refused(bad));
    bad = o;
    bad.max_snapshot_inflight_bytes = bad.snapshot_chunk_bytes - 1;
    BOOST_TEST(refused(bad));
    bad = o;
    bad.max_read_rounds = 0;
    BOOST_TEST(refused(bad));
}

BOOST_AUTO_TEST_CASE(a_state_machine_ahead_of_its_log_refuses_to_start)
{
    recording_transport t;
    raftkv::memory_log_store s;
    const std::vector<raftkv::log_entry> es{{1, 1, raftkv::entry_type::noop, {}}};
    s.append(es);
    list_machine m = list_machine::from({.applied = 5, .commands = {}}); // the log lost 2..5
    try {
        node_t n(raftkv::options{.id = 1, .members = {{1}}}, t, s, m);
        BOOST_FAIL("the node started");
    } catch (const std::system_error& e) {
        BOOST_TEST(has_code(e, raftkv::errc::storage_inconsistent));
        BOOST_TEST(std::string(e.what()).find("truncated") != std::string::npos);
    }
}

// The log store's newest copy of the hard state damaged, an older one read: the term is
// behind the log's, and the vote cast in the later term is forgotten.
BOOST_AUTO_TEST_CASE(a_hard_state_behind_the_log_refuses_to_start)
{
    recording_transport t;
    raftkv::memory_log_store s;
    s.save_hard_state({.term = 9, .vote = 1});
    const std::vector<raftkv::log_entry> es{{9, 1, raftkv::entry_type::noop, {}},
                                            {10, 2, raftkv::entry_type::noop, {}}};
    s.append(es);
    list_machine m;
    try {
        node_t n(raftkv::options{.id = 1, .members = {{1, 2, 3}}}, t, s, m);
        BOOST_FAIL("the node started");
    } catch (const std::system_error& e) {
        BOOST_TEST(has_code(e, raftkv::errc::storage_inconsistent));
        BOOST_TEST(std::string(e.what()).find(
                       "hard state is at term 9 but the log holds entries of term 10") != std::string::npos,
                   e.what());
    }
    s.save_hard_state({.term = 10, .vote = 2}); // the term the log has reached: it starts
    node_t n(raftkv::options{.id = 1, .members = {{1, 2, 3}}}, t, s, m);
    BOOST_TEST(n.status().term == 10u);
}

BOOST_AUTO_TEST_CASE(a_follower_told_to_commit_past_its_log_stops_with_an_error)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "a");
    c.propose(1, "b");
    c.at(3).store = raftkv::memory_log_store(); // node 3 lost its data directory
    c.at(3).machine = list_machine{};
    c.start(3);
    BOOST_CHECK_EXCEPTION(c.tick_all(2), std::system_error, [](const std::system_error& e) {
        return has_code(e, raftkv::errc::storage_inconsistent) &&
               std::string(e.what()).find("lost") != std::string::npos;
    });
}

BOOST_AUTO_TEST_CASE(read_handlers_of_a_deposed_leader_see_it_deposed_and_may_call_back)
{
    cluster c(3);
    c.elect(1);
    BOOST_TEST(!c.node(1).read_index(7));
    std::vector<std::error_code> retried;
    c.node(1).on_read([&](std::uint64_t, std::error_code ec) {
        BOOST_TEST(ec == std::error_code(raftkv::errc::leadership_lost));
        BOOST_TEST(c.node(1).role() != role::leader); // settled before the handler runs
        retried.push_back(c.node(1).read_index(8));   // a retry is refused, not lost
    });
    // A newer term that names no leader: the retry has nowhere to go.
    c.node(1).step(message{.from = 2, .to = 1, .term = 9, .body = raftkv::append_response{}});
    BOOST_TEST(retried.size() == 1u);
    BOOST_TEST(retried[0] == std::error_code(raftkv::errc::not_leader));
}

BOOST_AUTO_TEST_CASE(an_apply_handler_that_proposes_and_reports_durability_loses_no_apply)
{
    cluster c(1);
    c.tick_all(30);
    std::vector<index_t> reported;
    int more = 5;
    c.node(1).on_apply([&](index_t i, raftkv::term_t, std::size_t&) {
        reported.push_back(i);
        if (more-- > 0) {
            c.node(1).propose("again");
            c.node(1).on_log_durable(); // re-enters: its applies are delivered after this one
        }
    });
    c.propose(1, "first");
    std::vector<index_t> expected;
    for (index_t i = 2; i <= 7; ++i)
        expected.push_back(i);
    BOOST_TEST(reported == expected);
    BOOST_TEST(c.node(1).applied_index() == 7u);
}

BOOST_AUTO_TEST_CASE(every_proposal_gets_one_outcome_when_another_leader_overwrites_its_index)
{
    // Node 1 leads term 1 and appends 2..6 alone; node 2 leads term 2 and overwrites 2..3
    // (node 1 reports 2..6 as of unknown outcome as they leave its log); node 1 then wins
    // term 3 and proposes again at 5 and 6, which apply.
    cluster c(3, true, plain_raft());
    c.elect(1);
    std::map<std::pair<index_t, raftkv::term_t>, std::string> outcome;
    c.node(1).on_apply([&](index_t i, raftkv::term_t t, std::size_t&) { outcome[{i, t}] += "applied "; });
    c.node(1).on_drop([&](index_t i, raftkv::term_t t, std::error_code ec) {
        outcome[{i, t}] += ec.message() + " ";
    });
    c.isolate(1);
    for (const char* cmd : {"s2", "s3", "s4", "s5", "s6"})
        BOOST_TEST(!c.node(1).propose(cmd).ec);
    c.node(1).on_log_durable();
    c.deliver_all();
    c.elect(2);
    c.propose(2, "x");
    c.heal();
    c.tick_all(3); // node 1 follows node 2 and has 2..6 overwritten
    BOOST_TEST(c.node(1).last_index() == 3u);
    c.elect(1);
    const auto r5 = c.node(1).propose("n5");
    const auto r6 = c.node(1).propose("n6");
    BOOST_TEST(r5.index == 5u);
    BOOST_TEST(r6.index == 6u);
    c.node(1).on_log_durable();
    c.deliver_all();
    c.tick_all(2);
    for (index_t i = 2; i <= 6; ++i) {
        BOOST_TEST_CONTEXT("index " << i)
        {
            BOOST_TEST(outcome[(std::pair<index_t, raftkv::term_t>{i, 1})] == "leadership lost ");
        }
    }
    BOOST_TEST(outcome[(std::pair<index_t, raftkv::term_t>{5, r5.term})] == "applied ");
    BOOST_TEST(outcome[(std::pair<index_t, raftkv::term_t>{6, r6.term})] == "applied ");
}

BOOST_AUTO_TEST_CASE(leader_changes_are_reported_once_the_state_is_settled)
{
    cluster c(3, true, plain_raft());
    std::vector<std::tuple<role, raftkv::term_t, node_id>> seen;
    c.node(1).on_leader_change([&](role r, raftkv::term_t t, node_id l) {
        BOOST_TEST((c.node(1).role() == r && c.node(1).term() == t && c.node(1).leader() == l));
        seen.emplace_back(r, t, l);
    });
    c.elect(1);
    c.elect(2);
    BOOST_TEST_REQUIRE(seen.size() >= 2u);
    BOOST_TEST((seen.front() == std::tuple{role::candidate, raftkv::term_t{1}, node_id{0}}));
    BOOST_TEST((std::get<2>(seen.back()) == node_id{2}));
    BOOST_TEST((std::find(seen.begin(), seen.end(),
                          std::tuple{role::leader, raftkv::term_t{1}, node_id{1}}) != seen.end()));
}

BOOST_AUTO_TEST_CASE(a_stalled_follower_is_probed_not_flooded)
{
    raftkv::options o;
    o.max_inflight_appends = 4;
    o.max_entries_per_append = 1;
    cluster c(3, true, o);
    c.at(3).store = raftkv::memory_log_store(false); // node 3's disk never syncs: it never acks
    c.start(3);
    c.elect(1);
    c.tick_all(3);
    for (int k = 0; k < 20; ++k)
        c.propose(1, std::string(100, 'x'));
    c.at(1).transport.sent.clear();
    std::size_t bytes = 0;
    for (int t = 0; t < 50; ++t) {
        c.node(1).tick();
        bytes += entry_bytes_sent_to(c.at(1).transport, 3);
        c.deliver_all();
    }
    BOOST_TEST(bytes == 0u); // heartbeat answers brought empty probes, never entries
    BOOST_TEST(c.node(1).commit_index() == c.node(1).last_index()); // the others kept committing
}

BOOST_AUTO_TEST_CASE(inflight_bytes_bound_what_a_follower_is_sent_before_it_answers)
{
    raftkv::options o;
    o.max_inflight_appends = 100;
    o.max_entries_per_append = 1;
    o.max_inflight_bytes = 1000;
    cluster c(2, true, o);
    c.elect(1);
    c.isolate(2);
    c.at(1).transport.sent.clear();
    for (int k = 0; k < 50; ++k)
        BOOST_TEST(!c.node(1).propose(std::string(300, 'x')).ec);
    BOOST_TEST(entry_bytes_sent_to(c.at(1).transport, 2) <= 1200u); // 4 messages of 300 bytes
}

BOOST_AUTO_TEST_CASE(a_leader_cut_off_right_after_winning_steps_down_within_one_election_timeout)
{
    cluster c(3);
    c.node(1).campaign();
    c.deliver_one_hop(); // vote requests
    c.deliver_one_hop(); // votes: node 1 leads and sends its first appends
    BOOST_TEST_REQUIRE(c.node(1).role() == role::leader);
    c.isolate(1);
    for (std::uint32_t t = 0; t < c.node(1).config().election_ticks; ++t) {
        c.node(1).tick();
        c.deliver_all();
    }
    BOOST_TEST(c.node(1).role() != role::leader);
}

// ---- a disk that hangs ---------------------------------------------------------------

namespace {
// What a background sync of node `id`'s store completing looks like to the node.
void sync(cluster& c, node_id id)
{
    c.at(id).store.sync();
    c.node(id).on_log_durable();
    c.deliver_all();
}

// Three nodes whose stores sync only when told; node 1 leads and "x" is committed by the
// followers alone, while node 1 never syncs it: node 1's disk hangs.
cluster leader_with_a_hung_disk()
{
    cluster c(3, /*sync_on_append=*/false);
    c.node(1).campaign();
    c.deliver_all();
    for (node_id id : {1, 2, 3})
        sync(c, id);
    BOOST_REQUIRE(c.node(1).commit_index() == 1u);
    c.node(1).propose("x");
    c.deliver_all();
    for (node_id id : {2, 3})
        sync(c, id);
    BOOST_REQUIRE(c.node(1).commit_index() == 2u);  // two durable followers are a quorum
    BOOST_REQUIRE(c.node(1).applied_index() == 1u); // but node 1 applies only what it holds durably
    return c;
}
} // namespace

BOOST_AUTO_TEST_CASE(a_leader_whose_own_entries_stay_unsynced_steps_down_after_an_election_timeout)
{
    cluster c = leader_with_a_hung_disk();
    const auto term = c.node(1).term();
    const auto timeout = static_cast<int>(c.node(1).config().election_ticks);
    c.tick_all(timeout); // the followers keep answering: CheckQuorum is satisfied
    BOOST_TEST(c.node(1).role() == role::leader);
    c.tick_all(2);
    BOOST_TEST(c.node(1).role() == role::follower);
    BOOST_TEST(c.node(1).term() == term);
    BOOST_TEST((c.node(1).status().last_step_down.reason == step_down_reason::log_stalled));
    BOOST_TEST(c.node(1).status().last_step_down.term == term);
}

BOOST_AUTO_TEST_CASE(a_node_whose_log_is_not_durable_does_not_campaign_but_votes)
{
    cluster c = leader_with_a_hung_disk();
    const auto timeout = static_cast<int>(c.node(1).config().election_ticks);
    c.tick_all(timeout + 2);
    BOOST_REQUIRE(c.node(1).role() == role::follower);
    c.node(1).campaign(); // refused too: as leader it could not count itself
    BOOST_TEST(c.node(1).role() == role::follower);
    // Node 2 or 3 takes over, with node 1's vote; node 1 never campaigns, however long
    // its disk hangs.
    for (int t = 0; t < 10 * timeout; ++t) {
        for (node_id id : {2, 3})
            sync(c, id);
        c.tick_all(1);
        BOOST_TEST_REQUIRE(c.node(1).role() == role::follower);
    }
    BOOST_TEST_REQUIRE((c.node(2).role() == role::leader || c.node(3).role() == role::leader));
    const node_id leader = c.node(2).role() == role::leader ? 2 : 3;
    c.propose(leader, "y");
    for (node_id id : {2, 3})
        sync(c, id);
    BOOST_TEST(c.node(leader).applied_index() == c.node(leader).last_index());
    // The disk returns: node 1 acknowledges, catches up and may lead again some day.
    for (int t = 0; t < 3; ++t) {
        for (node_id id : {1, 2, 3})
            sync(c, id);
        c.tick_all(1);
    }
    BOOST_TEST(c.node(1).applied_index() == c.node(leader).last_index());
    BOOST_TEST(c.at(1).machine.commands == c.at(leader).machine.commands);
}

BOOST_AUTO_TEST_CASE(a_leader_whose_disk_is_slow_but_advancing_keeps_leading)
{
    cluster c(3, /*sync_on_append=*/false);
    c.node(1).campaign();
    c.deliver_all();
    for (node_id id : {1, 2, 3})
        sync(c, id);
    const auto term = c.node(1).term();
    const auto timeout = static_cast<int>(c.node(1).config().election_ticks);
    // A proposal every tick; each sync completes three ticks after it started, so the
    // leader's log always holds entries not yet durable, but its durable index advances.
    std::vector<std::pair<index_t, raftkv::term_t>> started;
    for (int t = 0; t < 5 * timeout; ++t) {
        c.node(1).propose(tagged("p", t));
        started.emplace_back(c.node(1).last_index(), term);
        if (started.size() > 3) {
            c.at(1).store.sync_to(started.front().first, started.front().second);
            started.erase(started.begin());
            c.node(1).on_log_durable();
        }
        for (node_id id : {2, 3})
            c.at(id).store.sync();
        c.tick_all(1);
        BOOST_TEST_REQUIRE(c.node(1).role() == role::leader);
    }
    BOOST_TEST(c.node(1).term() == term);
}

BOOST_AUTO_TEST_CASE(proposals_past_the_uncommitted_limit_are_refused_not_dropped)
{
    raftkv::options o;
    o.max_uncommitted_bytes = 10;
    cluster c(3, true, o);
    c.elect(1);
    c.isolate(1);
    BOOST_TEST(!c.node(1).propose("aaaaaa").ec);
    const auto r = c.node(1).propose("bbbbbb");
    BOOST_TEST(r.ec == std::error_code(raftkv::errc::overloaded));
    c.heal();
    c.node(1).on_log_durable();
    c.tick_all(3);
    BOOST_TEST(!c.node(1).propose("bbbbbb").ec); // commits made room
}

// ---- snapshots --------------------------------------------------------------------

namespace {
raftkv::options snapshot_often()
{
    raftkv::options o;
    o.snapshot_entries = 5;
    o.snapshot_catchup_entries = 0;
    o.snapshot_chunk_bytes = 8;
    o.max_snapshot_inflight_bytes = 16;
    return o;
}
} // namespace

BOOST_AUTO_TEST_CASE(the_log_is_compacted_behind_durable_snapshots)
{
    cluster c(3, true, snapshot_often());
    c.elect(1);
    for (int k = 0; k < 12; ++k)
        c.propose(1, tagged("c", k));
    c.tick_all(2);
    for (node_id id = 1; id <= 3; ++id) {
        BOOST_TEST(c.node(id).first_index() > 10u);
        BOOST_TEST(c.at(id).machine.snapshot_index() + 1 >= c.node(id).first_index());
        BOOST_TEST(c.node(id).status().snapshot_term == 1u);
    }
}

BOOST_AUTO_TEST_CASE(a_follower_behind_the_leaders_log_catches_up_with_a_snapshot_in_chunks)
{
    cluster c(3, true, snapshot_often());
    c.elect(1);
    c.isolate(3);
    for (int k = 0; k < 20; ++k)
        c.propose(1, tagged("c", k));
    BOOST_TEST_REQUIRE(c.node(1).first_index() > c.node(3).last_index() + 1);
    c.heal();
    c.tick_all(10);
    BOOST_TEST(c.at(3).machine.restores == 1u);
    BOOST_TEST(c.at(3).machine.commands == c.at(1).machine.commands);
    BOOST_TEST(c.node(3).applied_index() == c.node(1).applied_index());
    BOOST_TEST(c.at(3).machine.chunks > 1u);
}

BOOST_AUTO_TEST_CASE(a_node_whose_state_machine_lost_its_state_asks_for_a_snapshot)
{
    cluster c(3, true, snapshot_often());
    c.elect(1);
    for (int k = 0; k < 12; ++k)
        c.propose(1, tagged("c", k));
    c.tick_all(2);
    c.at(3).machine = list_machine{}; // a volatile machine: its state and snapshot are gone
    c.start(3);
    BOOST_TEST(c.node(3).applied_index() + 1 < c.node(3).first_index());
    c.tick_all(10);
    BOOST_TEST(c.at(3).machine.restores == 1u);
    BOOST_TEST(c.at(3).machine.commands == c.at(1).machine.commands);
}

BOOST_AUTO_TEST_CASE(an_interrupted_snapshot_transfer_restarts_under_the_new_leader)
{
    raftkv::options o = snapshot_often();
    o.pre_vote = o.check_quorum = false;
    cluster c(3, true, o);
    c.elect(1);
    c.isolate(3);
    for (int k = 0; k < 20; ++k)
        c.propose(1, tagged("c", k));
    c.heal();
    c.node(1).tick(); // a heartbeat, then the first chunks...
    c.deliver_one_hop();
    c.deliver_one_hop();
    c.deliver_one_hop();
    c.at(1).transport.sent.clear(); // ...and the rest is lost when node 1 is deposed
    c.elect(2);
    c.tick_all(10);
    BOOST_TEST(c.at(3).machine.restores == 1u);
    BOOST_TEST(c.at(3).machine.commands == c.at(2).machine.commands);
    BOOST_TEST(!c.at(3).machine.restoring);
}
