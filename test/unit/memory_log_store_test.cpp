#include <raftkv/memory_log_store.hpp>

#include <raftkv/sim/log_store.hpp>
#include <raftkv/sim/log_store_conformance.hpp>

#define BOOST_TEST_MODULE memory_log_store
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

using raftkv::log_entry;
using raftkv::memory_log_store;

namespace {
std::vector<log_entry> run(raftkv::index_t from, raftkv::term_t term, int count, std::string payload = "x")
{
    std::vector<log_entry> es;
    for (int k = 0; k < count; ++k)
        es.push_back({term, from + k, raftkv::entry_type::normal, payload});
    return es;
}
} // namespace

BOOST_AUTO_TEST_CASE(empty_store_has_term_zero_before_the_first_index)
{
    memory_log_store s;
    BOOST_TEST(s.first_index() == 1u);
    BOOST_TEST(s.last_index() == 0u);
    BOOST_TEST(s.term_at(0) == 0u);
    BOOST_TEST((s.saved_hard_state() == raftkv::hard_state{}));
}

BOOST_AUTO_TEST_CASE(append_discards_the_conflicting_suffix)
{
    memory_log_store s;
    s.append(run(1, 1, 5));
    s.append(run(3, 2, 1));
    BOOST_TEST(s.last_index() == 3u);
    BOOST_TEST(s.term_at(2) == 1u);
    BOOST_TEST(s.term_at(3) == 2u);
}

BOOST_AUTO_TEST_CASE(entries_respects_the_byte_cap_but_returns_at_least_one)
{
    memory_log_store s;
    s.append(run(1, 1, 10, std::string(100, 'v')));
    BOOST_TEST(s.entries(1, 11, 250).size() == 2u);
    BOOST_TEST(s.entries(1, 11, 10).size() == 1u);
    BOOST_TEST(s.entries(4, 6, 1'000'000).size() == 2u);
    BOOST_TEST(s.entries(4, 6, 1'000'000).front().index == 4u);
}

BOOST_AUTO_TEST_CASE(without_sync_on_append_a_crash_drops_what_was_not_synced)
{
    memory_log_store s(false);
    s.append(run(1, 1, 3));
    BOOST_TEST(s.durable_index() == 0u);
    BOOST_TEST(s.sync());
    BOOST_TEST(!s.sync());
    s.append(run(4, 1, 2));
    s.save_hard_state({3, 2});
    s.crash();
    BOOST_TEST(s.last_index() == 3u);
    BOOST_TEST((s.saved_hard_state() == raftkv::hard_state{3, 2}));
}

BOOST_AUTO_TEST_CASE(truncation_lowers_the_durable_index)
{
    memory_log_store s(false);
    s.append(run(1, 1, 5));
    s.sync();
    s.append(run(3, 2, 1));
    BOOST_TEST(s.durable_index() == 2u);
    s.crash();
    BOOST_TEST(s.last_index() == 2u);
}

BOOST_AUTO_TEST_CASE(memory_log_store_passes_the_log_store_conformance_test)
{
    for (bool sync_on_append : {true, false}) {
        raftkv::memory_log_store store(sync_on_append);
        raftkv::sim::check_log_store_conformance<raftkv::memory_log_store>(
            {.open = [&]() -> raftkv::memory_log_store& { return store; },
             .sync = [](raftkv::memory_log_store& s) { s.sync(); }});
    }
}

BOOST_AUTO_TEST_CASE(sim_log_store_passes_the_log_store_conformance_test)
{
    raftkv::sim::sim_log_store store(false);
    raftkv::sim::check_log_store_conformance<raftkv::sim::sim_log_store>(
        {.open = [&]() -> raftkv::sim::sim_log_store& { return store; },
         .sync = [](raftkv::sim::sim_log_store& s) { s.sync(); }});
}

BOOST_AUTO_TEST_CASE(a_sync_that_started_before_a_truncation_does_not_cover_the_new_entries)
{
    raftkv::memory_log_store s(false);
    const std::vector<raftkv::log_entry> old{{1, 1, raftkv::entry_type::normal, "a"},
                                             {1, 2, raftkv::entry_type::normal, "b"}};
    s.append(old);
    const raftkv::term_t covered = s.term_at(2); // a sync starts, covering (2, term 1)
    const std::vector<raftkv::log_entry> replacement{{2, 2, raftkv::entry_type::normal, "c"}};
    s.append(replacement); // a new leader replaces entry 2 before the sync completes
    BOOST_TEST(!s.sync_to(2, covered));
    BOOST_TEST(s.durable_index() == 0u);
    BOOST_TEST(s.sync_to(2, 2)); // a sync that covered the new entry does count
    BOOST_TEST(s.durable_index() == 2u);
    BOOST_TEST(!s.sync_to(1, 1)); // late and out of order: changes nothing
    BOOST_TEST(s.durable_index() == 2u);
}

BOOST_AUTO_TEST_CASE(base_members_follow_compaction_and_snapshot_installs_and_survive_a_crash)
{
    raftkv::membership m;
    m.voters = {1, 2, 3};
    m.learners = {4};
    m.info = {{4, "d"}};
    raftkv::sim::sim_log_store s(false);
    BOOST_TEST((s.base_members() == raftkv::membership{}));
    s.install_snapshot({0, 0, m}); // how a node records the configuration it starts with
    BOOST_TEST(s.first_index() == 1u);
    BOOST_TEST(s.last_index() == 0u);
    BOOST_TEST((s.base_members() == m));
    s.append(run(1, 1, 4));
    s.sync();
    s.append(run(5, 1, 2));
    raftkv::membership joint = m;
    joint.outgoing = {1, 2, 5};
    s.compact(3, joint);
    BOOST_TEST((s.base_members() == joint));
    s.crash(); // drops the entries not synced, never the compaction
    BOOST_TEST(s.first_index() == 4u);
    BOOST_TEST(s.last_index() == 4u);
    BOOST_TEST((s.base_members() == joint));
    s.stall();
    s.install_snapshot({10, 2, m}); // durable on return, stalled disk or not
    s.crash();
    BOOST_TEST(s.first_index() == 11u);
    BOOST_TEST((s.base_members() == m));
}
