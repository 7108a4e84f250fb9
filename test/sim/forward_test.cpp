#include <raftkv/sim/cluster.hpp>

#define BOOST_TEST_MODULE sim_forward
#include <boost/test/unit_test.hpp>

#include "sim/support.hpp"

#include <raftkv/kv_command.hpp>
#include <raftkv/sim/kv_workload.hpp>
#include <raftkv/sim/linearizability.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <tuple>
#include <vector>

// Proposals made at followers (basic_node::forward): the leader proposes them once, says
// where, and the follower's caller learns the outcome from its own applies.

using namespace raftkv;
using namespace raftkv::sim;
using namespace raftkv::sim::testing;

namespace {

struct forward_answer {
    std::error_code ec;
    index_t index = 0;
    term_t term = 0;
};

// Records every answer, by (node, forward id), and how many each forward got.
struct forward_log {
    std::map<std::pair<node_id, std::uint64_t>, forward_answer> answers;
    std::map<std::pair<node_id, std::uint64_t>, int> count;
    explicit forward_log(kv_cluster& c)
    {
        c.on_forward([this](node_id n, std::uint64_t id, std::error_code ec, index_t i, term_t t) {
            answers[{n, id}] = forward_answer{ec, i, t};
            ++count[{n, id}];
        });
    }
    /// The forwards answered more than once.
    std::size_t repeated() const
    {
        return static_cast<std::size_t>(
            std::count_if(count.begin(), count.end(), [](const auto& e) { return e.second > 1; }));
    }
};

node_id a_follower(kv_cluster& c, node_id leader)
{
    for (node_id id : c.ids())
        if (id != leader && c.is_up(id))
            return id;
    return no_node;
}

/// Waits for a leader of a three-node cluster, and for its followers to hear of it:
/// (leader, a follower, the other follower).
std::tuple<node_id, node_id, node_id> three_roles(kv_cluster& c)
{
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5s));
    const node_id l = *c.leader();
    c.run_for(100ms);
    const node_id f = a_follower(c, l);
    node_id other = no_node;
    for (node_id id : c.ids())
        if (id != l && id != f)
            other = id;
    return {l, f, other};
}

std::size_t count_command(kv_cluster& c, node_id at, const std::string& command)
{
    std::size_t n = 0;
    const auto& s = c.store(at);
    for (index_t i = s.first_index(); i <= s.last_index(); ++i)
        n += s.entries(i, i + 1, SIZE_MAX).front().data == command ? 1 : 0;
    return n;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_follower_forwards_a_write_and_applies_it_where_the_leader_said)
{
    kv_cluster c{{.nodes = 3, .seed = 7}};
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5s));
    const node_id l = *c.leader();
    c.run_for(100ms); // followers hear of the leader
    const node_id f = a_follower(c, l);
    forward_log log{c};
    std::map<std::pair<index_t, term_t>, bool> applied_at_f;
    c.on_apply([&](node_id n, index_t i, term_t t, kv_result&) {
        if (n == f)
            applied_at_f[{i, t}] = true;
    });
    BOOST_TEST_REQUIRE(!c.forward(f, 1, encode_put("k", "v1")));
    BOOST_TEST_REQUIRE(c.run_until([&] { return log.answers.count({f, 1}) == 1; }, 1s));
    const forward_answer a = log.answers.at({f, 1});
    BOOST_TEST(!a.ec);
    BOOST_TEST(a.term == c.node(l).term());
    BOOST_TEST(c.store(l).term_at(a.index) == a.term);
    BOOST_TEST_REQUIRE(c.run_until([&] { return applied_at_f.count({a.index, a.term}) == 1; }, 1s));
    BOOST_TEST(c.machine(f).get("k").value_or("-") == "v1");
}

BOOST_AUTO_TEST_CASE(a_leader_does_not_forward_to_itself_and_nothing_is_forwarded_empty)
{
    kv_cluster c{{.nodes = 3, .seed = 11}};
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5s));
    const node_id l = *c.leader();
    BOOST_TEST((c.node(l).forward(1, std::span<std::string>()) == errc::invalid_argument));
    std::string cmd = encode_put("k", "v");
    BOOST_TEST((c.node(l).forward(1, std::span<std::string>(&cmd, 1)) == errc::invalid_argument));
}

// A removed node still running, or a sender that only claims an id, hands the leader
// nothing: only members forward.
BOOST_AUTO_TEST_CASE(a_forward_from_outside_the_configuration_is_refused)
{
    kv_cluster c{{.nodes = 3, .seed = 19}};
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5s));
    const node_id l = *c.leader();
    const index_t before = c.store(l).last_index();
    const std::string cmd = encode_put("k", "from-outside");
    c.node(l).step(message{.from = 9,
                           .to = l,
                           .term = c.node(l).term(),
                           .body = forward_request{.id = 1, .nonce = 5, .seq = 1, .commands = {cmd}}});
    c.run_for(200ms);
    BOOST_TEST(count_command(c, l, cmd) == 0u);
    BOOST_TEST(c.store(l).last_index() == before);
    // A member's is proposed.
    c.node(l).step(message{.from = a_follower(c, l),
                           .to = l,
                           .term = c.node(l).term(),
                           .body = forward_request{.id = 2, .nonce = 6, .seq = 1, .commands = {cmd}}});
    c.run_for(200ms);
    BOOST_TEST(count_command(c, l, cmd) == 1u);
}

// A follower removed while it runs keeps handing its callers' writes to the leader until it
// learns of its removal: the leader answers that it is no member, so they fail at once,
// known not to have taken effect.
BOOST_AUTO_TEST_CASE(a_removed_follower_learns_from_the_leader_that_its_forwards_are_refused)
{
    kv_cluster c{{.nodes = 3, .seed = 29}};
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5s));
    const node_id l = *c.leader();
    const node_id f = a_follower(c, l);
    c.run_for(100ms);
    using kind = config_change::kind;
    BOOST_TEST_REQUIRE(!c.change_membership(l, {{kind::remove, f, {}}}).ec);
    BOOST_TEST_REQUIRE(c.run_until([&] { return !c.node(l).members().contains(f); }, 2s));
    forward_log log{c};
    const std::string cmd = encode_put("k", "from-a-removed-node");
    BOOST_TEST_REQUIRE(c.node(f).leader() == l); // it has not learned it was removed
    BOOST_TEST_REQUIRE(!c.forward(f, 1, cmd));
    BOOST_TEST_REQUIRE(c.run_until([&] { return log.answers.count({f, 1}) == 1; }, 1s));
    BOOST_TEST((log.answers.at({f, 1}).ec == errc::not_a_member));
    c.run_for(200ms);
    BOOST_TEST(count_command(c, l, cmd) == 0u);
}

BOOST_AUTO_TEST_CASE(a_duplicated_forward_is_proposed_once)
{
    kv_cluster c{{.nodes = 3, .seed = 23, .link = {.min_delay = 1ms, .max_delay = 5ms, .duplicate = 1.0}}};
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5s));
    const node_id l = *c.leader();
    c.run_for(100ms);
    const node_id f = a_follower(c, l);
    forward_log log{c};
    const std::string cmd = encode_put("k", "once");
    BOOST_TEST_REQUIRE(!c.forward(f, 1, cmd));
    BOOST_TEST_REQUIRE(c.run_until([&] { return log.answers.count({f, 1}) == 1; }, 1s));
    c.run_for(500ms); // every duplicate delivered
    BOOST_TEST(count_command(c, l, cmd) == 1u);
}

BOOST_AUTO_TEST_CASE(a_forward_to_a_leader_that_crashed_times_out_and_never_takes_effect)
{
    // Both followers forward to the leader just after it crashed. They give it up and one
    // of them wins the election meanwhile, but that proves nothing about the forwards: only
    // the leader's answer, or the forward's timeout (two election timeouts, 100 ms each
    // here), settles them, whatever role the follower has by then.
    kv_cluster c{{.nodes = 3, .seed = 29}};
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5s));
    const node_id l = *c.leader();
    c.run_for(100ms);
    std::vector<node_id> followers;
    for (node_id id : c.ids())
        if (id != l)
            followers.push_back(id);
    forward_log log{c};
    c.crash(l);
    for (node_id f : followers)
        BOOST_TEST_REQUIRE(!c.forward(f, 1, encode_put("k" + std::to_string(f), "lost")));
    BOOST_TEST_REQUIRE(c.run_until([&] { return log.answers.size() == 2; }, 220ms));
    BOOST_TEST_REQUIRE(c.leader().has_value(), "a follower took over meanwhile");
    for (node_id f : followers) {
        const forward_answer a = log.answers.at({f, 1});
        BOOST_TEST((a.ec == errc::timeout), a.ec.message());
        BOOST_TEST(a.index == 0u);
    }
    c.restart(l);
    c.run_for(1s);
    for (node_id f : followers) {
        BOOST_TEST(log.count.at({f, 1}) == 1);
        BOOST_TEST(c.machine(f).get("k" + std::to_string(f)).value_or("absent") == "absent");
    }
}

BOOST_AUTO_TEST_CASE(a_leaders_answer_that_arrives_after_a_leadership_transfer_still_counts)
{
    // The old leader appended the forward and answered, but its answer is slower than the
    // new leader's election: the follower is in the new term when it arrives. The answer is
    // a fact about the old term, so the write completes, where a follower that dropped its
    // forwards at the change would only know that its outcome is unknown.
    kv_cluster c{{.nodes = 3, .seed = 37}};
    const auto [l, f, t] = three_roles(c);
    c.net().set_link(l, f, {.min_delay = 40ms, .max_delay = 40ms});
    forward_log log{c};
    std::map<std::pair<index_t, term_t>, bool> applied_at_f;
    c.on_apply([&](node_id n, index_t i, term_t tm, kv_result&) {
        if (n == f)
            applied_at_f[{i, tm}] = true;
    });
    const term_t old_term = c.node(l).term();
    const index_t before = c.node(l).last_index();
    BOOST_TEST_REQUIRE(!c.forward(f, 1, encode_put("k", "moved")));
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.node(l).last_index() > before; }, 100ms));
    BOOST_TEST_REQUIRE(!c.node(l).transfer_leadership(t));
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.node(f).term() > old_term; }, 100ms));
    BOOST_TEST(log.answers.count({f, 1}) == 0u, "answered before the new term reached the follower");
    BOOST_TEST_REQUIRE(c.run_until([&] { return log.answers.count({f, 1}) == 1; }, 100ms));
    const forward_answer a = log.answers.at({f, 1});
    BOOST_TEST_REQUIRE(!a.ec, a.ec.message());
    BOOST_TEST(a.term == old_term);
    BOOST_TEST_REQUIRE(c.run_until([&] { return applied_at_f.count({a.index, a.term}) == 1; }, 1s));
    BOOST_TEST((c.leader() == std::optional<node_id>(t)));
    BOOST_TEST(c.machine(f).get("k").value_or("-") == "moved");
}

BOOST_AUTO_TEST_CASE(a_forward_that_reaches_its_leader_after_it_stepped_down_is_refused_not_dropped)
{
    // The forward is slower than a leadership transfer: it reaches the old leader in the
    // new term. The old leader knows it never appended it (it is new to the table of the
    // term it led), so it says so, and the caller may send it again.
    kv_cluster c{{.nodes = 3, .seed = 41}};
    const auto [l, f, t] = three_roles(c);
    c.net().set_link(f, l, {.min_delay = 40ms, .max_delay = 40ms});
    forward_log log{c};
    const std::string cmd = encode_put("k", "late");
    BOOST_TEST_REQUIRE(!c.forward(f, 1, cmd));
    BOOST_TEST_REQUIRE(!c.node(l).transfer_leadership(t));
    BOOST_TEST_REQUIRE(c.run_until([&] { return log.answers.count({f, 1}) == 1; }, 150ms));
    const forward_answer a = log.answers.at({f, 1});
    BOOST_TEST((a.ec == errc::not_leader), a.ec.message());
    c.run_for(500ms);
    BOOST_TEST((c.leader() == std::optional<node_id>(t)));
    BOOST_TEST(count_command(c, t, cmd) == 0u);
    BOOST_TEST(c.machine(f).get("k").value_or("absent") == "absent");
}

BOOST_AUTO_TEST_CASE(a_forward_a_live_leader_never_answers_times_out_after_two_election_timeouts)
{
    kv_cluster c{{.nodes = 3, .seed = 31}};
    BOOST_TEST_REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5s));
    const node_id l = *c.leader();
    c.run_for(100ms);
    const node_id f = a_follower(c, l);
    forward_log log{c};
    c.net().block(f, l); // the forward is lost; the leader's heartbeats still arrive
    BOOST_TEST_REQUIRE(!c.forward(f, 1, encode_put("k", "lost")));
    c.run_for(180ms);
    BOOST_TEST(log.answers.count({f, 1}) == 0u, "answered before two election timeouts");
    BOOST_TEST_REQUIRE(c.run_until([&] { return log.answers.count({f, 1}) == 1; }, 100ms));
    BOOST_TEST((log.answers.at({f, 1}).ec == errc::timeout), log.answers.at({f, 1}).ec.message());
    BOOST_TEST(c.node(f).leader() == l, "the follower still follows its leader");
}

BOOST_AUTO_TEST_CASE(a_follower_forgets_a_leader_that_says_it_no_longer_leads_the_term)
{
    // As a leader that stepped down in its term (CheckQuorum) answers: not leader, in the
    // same term. It cannot lead that term again, so the follower stops forwarding to it.
    kv_cluster c{{.nodes = 3, .seed = 47}};
    const auto [l, f, t] = three_roles(c);
    forward_log log{c};
    c.net().block(f, l); // the forward itself is lost; the answer below stands for it
    BOOST_TEST_REQUIRE(!c.forward(f, 1, encode_put("k", "v")));
    const term_t term = c.node(f).term();
    BOOST_TEST_REQUIRE(c.node(f).leader() == l);
    c.node(f).step(
        message{.from = t,
                .to = f,
                .term = term,
                .body = forward_response{.id = 1, .error = static_cast<std::uint8_t>(errc::not_leader)}});
    BOOST_TEST(log.answers.count({f, 1}) == 0u, "an answer from a node the forward did not go to");
    c.node(f).step(
        message{.from = l,
                .to = f,
                .term = term,
                .body = forward_response{.id = 1, .error = static_cast<std::uint8_t>(errc::not_leader)}});
    BOOST_TEST_REQUIRE(log.answers.count({f, 1}) == 1u);
    BOOST_TEST((log.answers.at({f, 1}).ec == errc::not_leader));
    BOOST_TEST(c.node(f).leader() == no_node);
    BOOST_TEST(c.node(f).term() == term);
}

BOOST_AUTO_TEST_CASE(forwarded_writes_stay_linearizable_when_messages_are_lost_duplicated_and_reordered)
{
    kv_cluster c{{.nodes = 5,
                  .seed = 51,
                  .link = {.min_delay = 1ms,
                           .max_delay = 20ms,
                           .loss = 0.1,
                           .duplicate = 0.2,
                           .slow = 0.1,
                           .max_slow_delay = 300ms}}};
    // A forward or its answer that is lost leaves the write to its timeout: keep it short.
    forward_log log{c};
    kv_workload<> w{c,
                    {.clients = 5,
                     .keys = 2,
                     .get_share = 0.3,
                     .put_share = 0.6,
                     .follower_writes = 1.0,
                     .op_timeout = 300ms}};
    w.start();
    for (int round = 0; round < 10; ++round) {
        c.run_for(500ms);
        if (const auto l = c.leader())
            c.isolate(*l);
        c.run_for(200ms);
        c.heal();
    }
    w.stop();
    c.net().set_default_link({});
    BOOST_TEST_REQUIRE(c.run_until([&] { return w.idle(); }, 10s));
    BOOST_TEST_MESSAGE(w.stats().forwarded << " forwarded writes, " << w.stats().forward_dropped
                                           << " overwritten, " << w.stats().completed << " completed");
    BOOST_TEST(w.stats().forwarded > 40u);
    BOOST_TEST(log.repeated() == 0u, log.repeated() << " forwards answered more than once");
    const check_result r = check_kv_history(w.history(), std::chrono::seconds(10));
    BOOST_TEST((r.outcome == check_outcome::ok), r.explanation);
}

BOOST_AUTO_TEST_CASE(forwarded_writes_have_known_outcomes_across_leadership_transfers)
{
    // Planned transfers on a healthy network: every forward gets its answer from the leader
    // it went to, before or after the change, so no write ends with an unknown outcome, and
    // the history stays linearizable (a refusal that lied would show as a write applied twice).
    kv_cluster c{{.nodes = 3, .seed = 43, .link = {.min_delay = 3ms, .max_delay = 3ms}}};
    kv_workload<> w{c,
                    {.clients = 8,
                     .keys = 3,
                     .get_share = 0.2,
                     .put_share = 0.7,
                     .follower_writes = 1.0,
                     .op_timeout = 1s}};
    w.start();
    int transfers = 0;
    for (int round = 0; round < 30; ++round) {
        c.run_for(150ms);
        const auto l = c.leader();
        if (!l)
            continue;
        for (node_id id : c.ids())
            if (id != *l && !c.node(*l).transfer_leadership(id)) {
                ++transfers;
                break;
            }
    }
    w.stop();
    BOOST_TEST_REQUIRE(c.run_until([&] { return w.idle(); }, 10s));
    BOOST_TEST_MESSAGE(transfers << " transfers, " << w.stats().forwarded << " forwarded writes, "
                                 << w.stats().indeterminate << " of unknown outcome, " << w.stats().retries
                                 << " retries, " << w.stats().completed << " completed");
    BOOST_TEST(transfers >= 25);
    BOOST_TEST(w.stats().forwarded > 200u);
    BOOST_TEST(w.stats().indeterminate == 0u);
    const check_result r = check_kv_history(w.history(), std::chrono::seconds(10));
    BOOST_TEST((r.outcome == check_outcome::ok), r.explanation);
}
