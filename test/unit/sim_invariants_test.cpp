#include <raftkv/sim/invariants.hpp>

#define BOOST_TEST_MODULE sim_invariants
#include <boost/test/unit_test.hpp>

#include <raftkv/memory_log_store.hpp>

#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

using raftkv::index_t;
using raftkv::log_entry;
using raftkv::memory_log_store;
using raftkv::role;
using raftkv::term_t;
using raftkv::sim::invariant_checker;
using raftkv::sim::invariant_violation;
using raftkv::sim::node_view;

namespace {
constexpr index_t unchanged = std::numeric_limits<index_t>::max();

// Writes entries of the given terms and payloads at `from`, dropping what follows.
// Returns `from`, the lowest index changed.
index_t write(memory_log_store& s, index_t from, const std::vector<std::pair<term_t, std::string>>& es)
{
    std::vector<log_entry> v;
    for (const auto& [t, d] : es)
        v.push_back(log_entry{t, from + v.size(), raftkv::entry_type::normal, d});
    s.append(v);
    return from;
}

node_view view(raftkv::node_id id, role r, term_t term, index_t commit = 0, index_t applied = 0)
{
    return node_view{id, r, term, commit, applied};
}

// Whether `f` throws an invariant_violation that names `property`.
bool violates(const std::function<void()>& f, const std::string& property)
{
    try {
        f();
    } catch (const invariant_violation& e) {
        BOOST_TEST_MESSAGE(e.what());
        return std::string(e.what()).find(property) != std::string::npos;
    }
    return false;
}

struct two_nodes {
    invariant_checker c;
    memory_log_store a, b;
    two_nodes()
    {
        c.on_start(1, 0);
        c.on_start(2, 0);
    }
};
} // namespace

BOOST_FIXTURE_TEST_CASE(consistent_logs_leaders_and_commits_pass, two_nodes)
{
    c.check(view(1, role::leader, 1), a, write(a, 1, {{1, "x"}, {1, "y"}}));
    c.check(view(2, role::follower, 1), b, write(b, 1, {{1, "x"}}));
    c.check(view(1, role::leader, 1, 2), a, unchanged);
    c.check(view(2, role::follower, 1, 1), b, unchanged);
    BOOST_TEST(c.committed_index() == 2u);
    BOOST_TEST(c.committed_term(2).value_or(0) == term_t{1});
    BOOST_TEST(c.leaders().at(1) == 1u);
}

BOOST_FIXTURE_TEST_CASE(two_leaders_in_one_term_violate_election_safety, two_nodes)
{
    c.check(view(1, role::leader, 3), a, unchanged);
    c.check(view(1, role::follower, 4), a, unchanged);
    BOOST_TEST(violates([&] { c.check(view(2, role::leader, 3), b, unchanged); }, "election safety"));
}

BOOST_FIXTURE_TEST_CASE(leaders_of_different_terms_are_fine, two_nodes)
{
    c.check(view(1, role::leader, 3), a, unchanged);
    c.check(view(2, role::leader, 4), b, unchanged);
    c.check(view(1, role::leader, 3), a, unchanged); // a stale leader, still alone in its term
}

BOOST_FIXTURE_TEST_CASE(same_index_and_term_with_other_data_violates_log_matching, two_nodes)
{
    c.check(view(1, role::follower, 1), a, write(a, 1, {{1, "x"}}));
    BOOST_TEST(violates(
        [&] {
            c.check(view(2, role::follower, 1), b, write(b, 1, {{1, "z"}}));
        },
        "log matching"));
}

BOOST_FIXTURE_TEST_CASE(same_entry_after_different_prefixes_violates_log_matching, two_nodes)
{
    c.check(view(1, role::follower, 2), a, write(a, 1, {{1, "x"}, {2, "y"}}));
    BOOST_TEST(violates(
        [&] {
            c.check(view(2, role::follower, 2), b, write(b, 1, {{2, "w"}, {2, "y"}}));
        },
        "log matching"));
}

BOOST_FIXTURE_TEST_CASE(a_truncated_and_rewritten_suffix_is_rehashed, two_nodes)
{
    c.check(view(1, role::follower, 1), a, write(a, 1, {{1, "x"}, {1, "y"}, {1, "z"}}));
    c.check(view(1, role::follower, 2), a, write(a, 2, {{2, "q"}}));
    // Node 2 agrees with node 1's rewritten log: no violation.
    c.check(view(2, role::follower, 2), b, write(b, 1, {{1, "x"}, {2, "q"}}));
    // An entry (3, 1) that differs from the one node 1 held before is still caught.
    BOOST_TEST(violates(
        [&] {
            c.check(view(2, role::follower, 2), b, write(b, 3, {{1, "other"}}));
        },
        "log matching"));
}

BOOST_FIXTURE_TEST_CASE(new_leader_without_a_committed_entry_violates_leader_completeness, two_nodes)
{
    c.check(view(1, role::leader, 1, 2), a, write(a, 1, {{1, "x"}, {1, "y"}}));
    BOOST_TEST(violates(
        [&] {
            c.check(view(2, role::leader, 2), b, write(b, 1, {{1, "x"}}));
        },
        "leader completeness"));
}

// A vote for term 1 that arrives late can still make a node leader of term 1 after a
// term-2 leader committed more: Raft allows it, so the checker must too.
BOOST_FIXTURE_TEST_CASE(leader_of_an_older_term_need_not_hold_entries_committed_later, two_nodes)
{
    c.check(view(1, role::leader, 2, 2), a, write(a, 1, {{1, "x"}, {2, "y"}}));
    c.check(view(2, role::leader, 1), b, write(b, 1, {{1, "x"}}));
}

BOOST_FIXTURE_TEST_CASE(committing_another_entry_at_a_committed_index_violates_safety, two_nodes)
{
    c.check(view(1, role::follower, 1, 1), a, write(a, 1, {{1, "x"}}));
    c.check(view(2, role::follower, 2), b, write(b, 1, {{2, "y"}}));
    BOOST_TEST(
        violates([&] { c.check(view(2, role::follower, 2, 1), b, unchanged); }, "state machine safety"));
}

BOOST_FIXTURE_TEST_CASE(applying_different_entries_at_one_index_violates_state_machine_safety, two_nodes)
{
    const log_entry x{1, 1, raftkv::entry_type::normal, "x"};
    const log_entry y{1, 1, raftkv::entry_type::normal, "y"};
    c.on_applied(1, 1, 1, &x);
    c.on_applied(2, 1, 1, &y);
    BOOST_TEST(violates([&] { c.check(view(1, role::follower, 1), a, unchanged); }, "state machine safety"));
}

BOOST_FIXTURE_TEST_CASE(applying_out_of_order_or_unlike_the_log_is_caught, two_nodes)
{
    const log_entry e2{1, 2, raftkv::entry_type::normal, "x"};
    c.on_applied(1, 2, 1, &e2);
    BOOST_TEST(violates([&] { c.check(view(1, role::follower, 1), a, unchanged); }, "apply order"));
    invariant_checker d;
    d.on_start(1, 0);
    const log_entry e1{1, 1, raftkv::entry_type::normal, "x"};
    d.on_applied(1, 1, 2, &e1);
    BOOST_TEST(violates([&] { d.check(view(1, role::follower, 2), a, unchanged); }, "apply"));
}

BOOST_FIXTURE_TEST_CASE(commit_index_moving_back_within_an_incarnation_is_caught, two_nodes)
{
    c.check(view(1, role::follower, 1, 2), a, write(a, 1, {{1, "x"}, {1, "y"}}));
    BOOST_TEST(
        violates([&] { c.check(view(1, role::follower, 1, 1), a, unchanged); }, "commit monotonicity"));
}

BOOST_FIXTURE_TEST_CASE(a_restart_resets_the_commit_index_legitimately, two_nodes)
{
    c.check(view(1, role::follower, 1, 2), a, write(a, 1, {{1, "x"}, {1, "y"}}));
    c.on_start(1, 0);
    c.check(view(1, role::follower, 1, 0), a, unchanged);
}

BOOST_FIXTURE_TEST_CASE(commit_beyond_the_log_or_applied_beyond_commit_is_caught, two_nodes)
{
    BOOST_TEST(violates(
        [&] {
            c.check(view(1, role::follower, 1, 2), a, write(a, 1, {{1, "x"}}));
        },
        "commit within log"));
    BOOST_TEST(
        violates([&] { c.check(view(2, role::follower, 1, 0, 1), b, unchanged); }, "applied within commit"));
}

BOOST_FIXTURE_TEST_CASE(a_term_going_back_is_caught_even_across_restarts, two_nodes)
{
    c.check(view(1, role::follower, 5), a, unchanged);
    c.on_start(1, 0);
    BOOST_TEST(violates([&] { c.check(view(1, role::follower, 4), a, unchanged); }, "term monotonicity"));
}
