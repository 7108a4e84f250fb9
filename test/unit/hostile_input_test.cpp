#define BOOST_TEST_MODULE hostile_input
#include <boost/test/unit_test.hpp>

#include <raftkv/error.hpp>
#include <raftkv/membership.hpp>
#include <raftkv/memory_log_store.hpp>
#include <raftkv/node.hpp>

#include "support/list_machine.hpp"
#include "support/manual_cluster.hpp"

#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

// Messages a correct peer never sends, delivered by hand: a node drops them, persists
// nothing of them and keeps running, whatever a transport let through.

BOOST_TEST_DONT_PRINT_LOG_VALUE(raftkv::role)

namespace {

using raftkv::max_term;
using raftkv::message;
using raftkv::node_id;
using raftkv::role;
using raftkv::test::cluster;
using raftkv::test::plain_raft;

/// An append from `leader` to `to` in the leader's term, carrying one entry of `type` and
/// `data` right after `to`'s last entry.
message append_one(cluster& c, node_id leader, node_id to, raftkv::entry_type type, std::string data)
{
    const auto last = c.node(to).status().last_index;
    const auto term = c.node(leader).term();
    return {leader, to, term,
            raftkv::append_request{.prev_index = last,
                                   .prev_term = c.at(to).store.term_at(last),
                                   .commit = 0,
                                   .entries = {raftkv::log_entry{term, last + 1, type, std::move(data)}}}};
}

/// A state machine that refuses (throws on) a chunk "garbage", and a finished restore whose
/// last chunk was "truncated", as a real one does with bytes it cannot decode; and whose
/// storage fails (raftkv::storage_error) on a chunk "disk full", or when finishing a restore
/// whose last chunk was "sync fails".
struct picky_machine : raftkv::test::list_machine {
    bool truncated = false;
    bool sync_fails = false;
    void restore_chunk(std::string_view data)
    {
        if (data == "garbage")
            throw std::runtime_error("picky_machine: a chunk that does not decode");
        if (data == "disk full")
            throw raftkv::storage_error("picky_machine: No space left on device");
        truncated = data == "truncated";
        sync_fails = data == "sync fails";
        list_machine::restore_chunk(data);
    }
    void finish_restore()
    {
        if (truncated)
            throw std::runtime_error("picky_machine: the stream is incomplete");
        if (sync_fails)
            throw raftkv::storage_error("picky_machine: Input/output error");
        list_machine::finish_restore();
    }
};
static_assert(raftkv::state_machine<picky_machine>);

using picky_node =
    raftkv::basic_node<raftkv::test::recording_transport, raftkv::memory_log_store, picky_machine>;

message chunk(std::uint64_t transfer, std::string data, bool done = true)
{
    return {1, 2, 1,
            raftkv::install_snapshot_request{.meta = {.index = 10, .term = 1, .members = {{1, 2, 3}}},
                                             .transfer = transfer,
                                             .offset = 0,
                                             .data = std::move(data),
                                             .done = done}};
}

/// Node 2 of {1, 2, 3} over `machine`, answering through `transport`.
picky_node make_node(raftkv::test::recording_transport& transport, raftkv::memory_log_store& store,
                     picky_machine& machine)
{
    raftkv::options o;
    o.id = 2;
    o.members.voters = {1, 2, 3};
    return picky_node(o, transport, store, machine);
}

} // namespace

BOOST_AUTO_TEST_CASE(a_message_carrying_the_largest_term_is_dropped)
{
    cluster c(3);
    c.elect(1);
    const auto term = c.node(2).term();
    c.node(2).step(message{1, 2, max_term, raftkv::heartbeat{}});
    c.node(3).step(
        message{1, 3, max_term, raftkv::vote_request{.last_log_index = 100, .last_log_term = 100}});
    BOOST_TEST(c.node(2).term() == term);
    BOOST_TEST(c.node(3).term() == term);
    BOOST_TEST(c.at(2).transport.sent.empty());
    BOOST_TEST(c.at(3).transport.sent.empty());
    BOOST_TEST(c.node(2).status().malformed_dropped == 1u);
    c.deliver_all();
    BOOST_TEST(c.propose(1, "still led").ec == std::error_code());
}

BOOST_AUTO_TEST_CASE(a_node_at_the_term_before_the_largest_never_campaigns_so_no_term_wraps)
{
    for (const bool pre_vote : {false, true}) {
        raftkv::options o = plain_raft();
        o.pre_vote = pre_vote;
        cluster c(3, true, o);
        c.node(1).step(message{2, 1, max_term - 1, raftkv::heartbeat{}});
        BOOST_REQUIRE(c.node(1).term() == max_term - 1);
        c.at(1).transport.sent.clear();
        c.node(1).campaign();
        for (int t = 0; t < 100; ++t)
            c.node(1).tick();
        BOOST_TEST(c.node(1).term() == max_term - 1, "pre_vote " << pre_vote);
        BOOST_TEST(c.at(1).store.saved_hard_state().term == max_term - 1);
        BOOST_TEST(c.node(1).role() == role::follower);
        for (const auto& m : c.at(1).transport.sent)
            BOOST_TEST(!std::holds_alternative<raftkv::vote_request>(m.body));
    }
}

BOOST_AUTO_TEST_CASE(an_append_whose_config_entry_does_not_decode_is_dropped_and_not_persisted)
{
    cluster c(3);
    c.elect(1);
    const auto last = c.node(2).status().last_index;
    const auto members = c.node(2).status().members;
    for (const std::string& bad :
         {std::string("not a configuration"), raftkv::encode_membership({}), std::string()}) {
        BOOST_REQUIRE_NO_THROW(c.node(2).step(append_one(c, 1, 2, raftkv::entry_type::config, bad)));
        BOOST_TEST(c.node(2).status().last_index == last);
        BOOST_TEST(c.at(2).store.last_index() == last);
        BOOST_TEST(c.node(2).status().members.voters == members.voters);
    }
    BOOST_TEST(c.node(2).status().malformed_dropped == 3u);
    // A node restarted on that store starts, and a valid config entry is still taken.
    BOOST_REQUIRE_NO_THROW(c.start(2));
    raftkv::membership next = members;
    next.learners.push_back(4);
    c.at(2).transport.sent.clear();
    c.node(2).step(append_one(c, 1, 2, raftkv::entry_type::config, raftkv::encode_membership(next)));
    BOOST_TEST(c.node(2).status().last_index == last + 1);
    BOOST_TEST(c.node(2).status().members.learners == std::vector<node_id>{4});
}

// Terms never fall along a log, and no entry has term 0: an entry below the term of the one
// before it (the append's prev_term, or the entry before it in the message) is dropped, not
// appended, so no store is left holding a log it refuses to open again.
BOOST_AUTO_TEST_CASE(an_append_whose_terms_fall_or_are_zero_is_dropped_and_not_persisted)
{
    cluster c(3, true, plain_raft());
    c.elect(1);
    c.at(1).transport.sent.clear();
    BOOST_REQUIRE(c.propose(1, "a").ec == std::error_code());
    c.deliver_all();
    c.elect(3); // a later term, so that an entry can claim an earlier one than the last's
    c.deliver_all();
    const auto last = c.node(2).status().last_index;
    const auto last_term = c.at(2).store.term_at(last);
    BOOST_REQUIRE(last_term > 1u);
    const auto term = c.node(3).term();
    const auto append = [&](raftkv::index_t prev, raftkv::term_t prev_term,
                            std::vector<raftkv::term_t> terms) {
        raftkv::append_request r{.prev_index = prev, .prev_term = prev_term, .commit = 0, .entries = {}};
        for (std::size_t k = 0; k < terms.size(); ++k)
            r.entries.push_back(raftkv::log_entry{terms[k], prev + 1 + k, raftkv::entry_type::normal, "x"});
        return message{3, 2, term, std::move(r)};
    };
    c.at(2).transport.sent.clear();
    c.node(2).step(append(last, last_term, {last_term - 1})); // below prev_term
    c.node(2).step(append(last, last_term, {last_term, 1}));  // below the entry before it
    c.node(2).step(append(last, last_term, {0}));             // term 0
    c.node(2).step(append(0, 0, {0}));                        // term 0 at the start of the log
    BOOST_TEST(c.node(2).status().malformed_dropped == 4u);
    BOOST_TEST(c.at(2).store.last_index() == last);
    BOOST_TEST(c.at(2).transport.sent.empty(), "nothing acknowledged");
    // The same entries in a correct order are taken.
    c.node(2).step(append(last, last_term, {last_term, term}));
    BOOST_TEST(c.at(2).store.last_index() == last + 2);
    BOOST_REQUIRE_NO_THROW(c.start(2));
}

BOOST_AUTO_TEST_CASE(a_snapshot_without_voters_or_from_a_later_term_is_dropped)
{
    cluster c(3);
    c.elect(1);
    const auto term = c.node(1).term();
    for (const auto& meta : {raftkv::snapshot_meta{.index = 100, .term = term, .members = {}},
                             raftkv::snapshot_meta{.index = 100, .term = term + 1, .members = {{1, 2, 3}}}}) {
        c.node(2).step(message{1, 2, term,
                               raftkv::install_snapshot_request{
                                   .meta = meta, .transfer = 1, .offset = 0, .data = "", .done = true}});
        BOOST_TEST(c.at(2).machine.restores == 0u);
        BOOST_TEST(c.node(2).status().snapshot_index == 0u);
        BOOST_TEST(c.node(2).status().members.voters == (std::vector<node_id>{1, 2, 3}));
    }
    BOOST_TEST(c.node(2).status().malformed_dropped == 2u);
}

BOOST_AUTO_TEST_CASE(a_snapshot_the_state_machine_cannot_decode_is_abandoned_and_asked_for_again)
{
    raftkv::test::recording_transport transport;
    raftkv::memory_log_store store;
    picky_machine machine;
    raftkv::options o;
    o.id = 2;
    o.members.voters = {1, 2, 3};
    picky_node node(o, transport, store, machine);

    BOOST_REQUIRE_NO_THROW(node.step(chunk(1, "garbage")));
    BOOST_REQUIRE_NO_THROW(node.step(chunk(2, "truncated")));
    BOOST_TEST(node.status().malformed_dropped == 2u);
    BOOST_TEST(machine.restores == 0u);
    BOOST_TEST(!machine.restoring.has_value());
    BOOST_REQUIRE(transport.sent.size() == 2u);
    for (const auto& m : transport.sent) {
        const auto& answer = std::get<raftkv::install_snapshot_response>(m.body);
        BOOST_TEST(!answer.done);
        BOOST_TEST(answer.offset == 0u); // start again
    }

    node.step(chunk(3, "k=v\n"));
    BOOST_TEST(machine.restores == 1u);
    BOOST_TEST(node.applied_index() == 10u);
    BOOST_TEST(std::get<raftkv::install_snapshot_response>(transport.sent.back().body).done);
}

// A storage failure during a restore is no verdict on the leader's bytes: it leaves step(),
// so that the node's owner stops it as after a failed apply, and is not counted as a
// malformed message.
BOOST_AUTO_TEST_CASE(a_storage_failure_while_restoring_leaves_step_rather_than_abandoning_the_restore)
{
    {
        raftkv::test::recording_transport transport;
        raftkv::memory_log_store store;
        picky_machine machine;
        picky_node node = make_node(transport, store, machine);
        BOOST_CHECK_THROW(node.step(chunk(1, "disk full")), raftkv::storage_error);
        BOOST_TEST(node.status().malformed_dropped == 0u);
        BOOST_TEST(transport.sent.empty(), "the node answered as if the data were bad");
    }
    {
        raftkv::test::recording_transport transport;
        raftkv::memory_log_store store;
        picky_machine machine;
        picky_node node = make_node(transport, store, machine);
        BOOST_CHECK_THROW(node.step(chunk(1, "sync fails")), raftkv::storage_error);
        BOOST_TEST(node.status().malformed_dropped == 0u);
        BOOST_TEST(machine.restores == 0u);
        // The log was reset to the snapshot first: a node rebuilt from this storage finds
        // its state machine behind the log, and asks for the snapshot again.
        BOOST_TEST(store.first_index() == 11u);
    }
}

BOOST_AUTO_TEST_CASE(status_says_while_a_snapshot_is_being_installed)
{
    raftkv::test::recording_transport transport;
    raftkv::memory_log_store store;
    picky_machine machine;
    picky_node node = make_node(transport, store, machine);
    BOOST_TEST(!node.status().restoring_snapshot);
    node.step(chunk(1, "k=v\n", false));
    BOOST_TEST(node.status().restoring_snapshot);
    BOOST_TEST(machine.restoring.has_value());
    message last = chunk(1, "", true);
    std::get<raftkv::install_snapshot_request>(last.body).offset = 4;
    node.step(last);
    BOOST_TEST(!node.status().restoring_snapshot);
    BOOST_TEST(machine.restores == 1u);
    node.step(chunk(2, "garbage", false));
    BOOST_TEST(!node.status().restoring_snapshot, "an abandoned restore still shows");
}
