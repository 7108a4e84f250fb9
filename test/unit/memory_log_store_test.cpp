#include <raftkv/memory_log_store.hpp>

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
