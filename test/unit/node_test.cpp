#include <raftkv/node.hpp>

#include <raftkv/memory_log_store.hpp>

#define BOOST_TEST_MODULE node
#include <boost/test/unit_test.hpp>

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

// Unit tests of basic_node's rules, with every message delivered by hand so each test
// decides exactly what happens. Randomized and fault-heavy tests live in test/sim/.

BOOST_TEST_DONT_PRINT_LOG_VALUE(raftkv::role)

namespace {

using raftkv::index_t;
using raftkv::message;
using raftkv::node_id;
using raftkv::role;

// Options for tests that need plain Raft, without PreVote and CheckQuorum.
raftkv::options plain_raft(std::size_t max_entries_per_append = 256)
{
    raftkv::options o;
    o.pre_vote = false;
    o.check_quorum = false;
    o.max_entries_per_append = max_entries_per_append;
    return o;
}

struct recording_transport {
    std::vector<message> sent;
    void send(message m) { sent.push_back(std::move(m)); }
};

struct list_machine {
    using result_type = std::size_t;
    index_t applied = 0;
    std::vector<std::string> commands;
    void apply(std::span<const raftkv::log_entry> batch, std::span<std::size_t> results)
    {
        for (std::size_t k = 0; k < batch.size(); ++k) {
            BOOST_REQUIRE_EQUAL(batch[k].index, applied + 1);
            applied = batch[k].index;
            if (batch[k].type == raftkv::entry_type::normal)
                commands.push_back(batch[k].data);
            results[k] = commands.size();
        }
    }
    index_t applied_index() const { return applied; }
};

using node_t = raftkv::basic_node<recording_transport, raftkv::memory_log_store, list_machine>;

struct member {
    recording_transport transport;
    raftkv::memory_log_store store;
    list_machine machine;
    std::unique_ptr<node_t> node;
    std::vector<std::pair<index_t, std::size_t>> applied;
    std::vector<std::pair<std::uint64_t, std::error_code>> reads;
};

// A cluster whose network is a set of outboxes the test empties explicitly.
struct cluster {
    explicit cluster(std::size_t n, bool sync_on_append = true, raftkv::options base = {})
    {
        for (node_id id = 1; id <= n; ++id)
            base.members.voters.push_back(id);
        base_ = base;
        for (node_id id = 1; id <= n; ++id) {
            members_.push_back(std::make_unique<member>());
            members_.back()->store = raftkv::memory_log_store(sync_on_append);
            start(id);
        }
    }

    void start(node_id id)
    {
        raftkv::options o = base_;
        o.id = id;
        o.random_seed = id * 7919 + restarts_++;
        member& m = at(id);
        m.machine = list_machine{};
        m.node = std::make_unique<node_t>(o, m.transport, m.store, m.machine);
        m.node->on_apply([&m](index_t i, raftkv::term_t, std::size_t& r) { m.applied.emplace_back(i, r); });
        m.node->on_read([&m](std::uint64_t id, std::error_code ec) { m.reads.emplace_back(id, ec); });
    }

    member& at(node_id id) { return *members_[id - 1]; }
    node_t& node(node_id id) { return *at(id).node; }

    // Delivers messages until none are left, dropping those on cut links.
    void deliver_all()
    {
        for (bool any = true; any;) {
            any = false;
            for (auto& m : members_) {
                auto out = std::move(m->transport.sent);
                m->transport.sent.clear();
                for (auto& msg : out) {
                    any = true;
                    if (!cut_.contains({msg.from, msg.to}))
                        node(msg.to).step(std::move(msg));
                }
            }
        }
    }

    // Delivers only the messages already sent, not their answers.
    void deliver_one_hop()
    {
        std::vector<message> out;
        for (auto& m : members_) {
            for (auto& msg : m->transport.sent)
                out.push_back(std::move(msg));
            m->transport.sent.clear();
        }
        for (auto& msg : out) {
            if (!cut_.contains({msg.from, msg.to}))
                node(msg.to).step(std::move(msg));
        }
    }

    void tick_all(int ticks)
    {
        for (int t = 0; t < ticks; ++t) {
            for (auto& m : members_)
                m->node->tick();
            deliver_all();
        }
    }

    void isolate(node_id id)
    {
        for (node_id other = 1; other <= members_.size(); ++other) {
            cut_.insert({id, other});
            cut_.insert({other, id});
        }
    }
    void heal() { cut_.clear(); }

    node_id elect(node_id id)
    {
        node(id).campaign();
        deliver_all();
        BOOST_REQUIRE(node(id).role() == role::leader);
        return id;
    }

    raftkv::propose_result propose(node_id id, std::string cmd)
    {
        auto r = node(id).propose(std::move(cmd));
        node(id).on_log_durable();
        deliver_all();
        return r;
    }

    std::size_t size() const { return members_.size(); }

    raftkv::options base_;
    std::vector<std::unique_ptr<member>> members_;
    std::set<std::pair<node_id, node_id>> cut_;
    std::uint64_t restarts_ = 0;
};

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
    c.heal();
    c.tick_all(1);
    BOOST_TEST(c.node(1).role() == role::follower);
    BOOST_TEST(c.node(1).leader() == 2u);
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

BOOST_AUTO_TEST_CASE(read_index_fails_at_once_on_a_follower)
{
    cluster c(3);
    c.elect(1);
    BOOST_TEST(c.node(2).read_index(7) == raftkv::errc::not_leader);
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

BOOST_AUTO_TEST_CASE(many_reads_share_one_heartbeat_round)
{
    cluster c(3);
    c.elect(1);
    for (std::uint64_t id = 1; id <= 50; ++id)
        c.node(1).read_index(id);
    std::size_t heartbeats = 0;
    for (auto& m : c.at(1).transport.sent)
        heartbeats += std::holds_alternative<raftkv::heartbeat>(m.body) ? 1 : 0;
    BOOST_TEST(heartbeats == 2u); // one round: one heartbeat per follower
    c.deliver_all();
    BOOST_TEST(c.at(1).reads.size() == 50u);
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

BOOST_AUTO_TEST_CASE(leadership_transfer_hands_over_to_the_target)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "x");
    BOOST_TEST(!c.node(1).transfer_leadership(3));
    c.deliver_all();
    BOOST_TEST(c.node(3).role() == role::leader);
    BOOST_TEST(c.node(1).role() == role::follower);
    BOOST_TEST(c.propose(3, "y").ec == std::error_code{});
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

BOOST_AUTO_TEST_CASE(messages_from_unknown_nodes_are_ignored)
{
    cluster c(3);
    c.elect(1);
    message m{.from = 9, .to = 1, .term = 100, .body = raftkv::heartbeat{}};
    c.node(1).step(m);
    BOOST_TEST(c.node(1).role() == role::leader);
    BOOST_TEST(c.node(1).term() == 1u);
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

BOOST_AUTO_TEST_CASE(a_lost_last_append_is_repaired_by_the_next_heartbeat)
{
    cluster c(3);
    c.elect(1);
    c.propose(1, "a"); // followers now in replicate mode
    c.node(1).propose("b");
    c.at(1).transport.sent.clear(); // the append carrying "b" is lost
    c.node(1).on_log_durable();
    c.tick_all(3);
    BOOST_TEST(c.node(2).last_index() == 3u);
    BOOST_TEST(c.node(1).commit_index() == 3u);
}
