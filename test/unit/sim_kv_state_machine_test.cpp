#include <raftkv/sim/kv_state_machine.hpp>

#define BOOST_TEST_MODULE sim_kv_state_machine
#include <boost/test/unit_test.hpp>

#include <raftkv/concepts.hpp>
#include <raftkv/kv_command.hpp>

#include <span>
#include <string>
#include <vector>

using raftkv::entry_type;
using raftkv::kv_result;
using raftkv::log_entry;
using raftkv::sim::kv_state_machine;

namespace {
// Applies `commands` as entries following the machine's applied index.
std::vector<kv_result> apply(kv_state_machine& m, const std::vector<std::string>& commands,
                             entry_type type = entry_type::normal)
{
    std::vector<log_entry> batch;
    for (const auto& c : commands)
        batch.push_back(log_entry{1, m.applied_index() + batch.size() + 1, type, c});
    std::vector<kv_result> results(batch.size());
    m.apply(batch, results);
    return results;
}
} // namespace

static_assert(raftkv::state_machine<kv_state_machine>);

BOOST_AUTO_TEST_CASE(new_machine_is_empty_at_index_zero)
{
    kv_state_machine m;
    BOOST_TEST(m.applied_index() == 0u);
    BOOST_TEST(!m.get("k").has_value());
}

BOOST_AUTO_TEST_CASE(put_then_get_returns_the_value_and_the_latest_put_wins)
{
    kv_state_machine m;
    const auto r = apply(m, {raftkv::encode_put("k", "v1"), raftkv::encode_put("k", "v2")});
    BOOST_TEST(r[0].found);
    BOOST_TEST(m.get("k").value_or("-") == "v2");
    BOOST_TEST(m.applied_index() == 2u);
}

BOOST_AUTO_TEST_CASE(delete_reports_whether_the_key_existed)
{
    kv_state_machine m;
    const auto r = apply(m, {raftkv::encode_del("k"), raftkv::encode_put("k", "v"), raftkv::encode_del("k")});
    BOOST_TEST(!r[0].found);
    BOOST_TEST(r[2].found);
    BOOST_TEST(!m.get("k").has_value());
}

BOOST_AUTO_TEST_CASE(meta_records_live_apart_from_the_keys)
{
    kv_state_machine m;
    const auto r = apply(m, {raftkv::encode_meta("k", "meta"), raftkv::encode_put("k", "user")});
    BOOST_TEST(r[0].found);
    BOOST_TEST(m.meta("k").value_or("-") == "meta");
    BOOST_TEST(m.get("k").value_or("-") == "user");
    BOOST_TEST(m.data().size() == 1u);
}

BOOST_AUTO_TEST_CASE(empty_keys_and_values_and_binary_bytes_round_trip)
{
    kv_state_machine m;
    const std::string binary("a\0b\xff", 4);
    apply(m, {raftkv::encode_put("", ""), raftkv::encode_put(binary, binary)});
    BOOST_TEST(m.get("").value_or("-") == "");
    BOOST_TEST(m.get(binary).value_or("-") == binary);
}

BOOST_AUTO_TEST_CASE(malformed_commands_are_applied_as_no_ops)
{
    kv_state_machine m;
    const auto r = apply(m, {"", "X", std::string("P\0\0\0\x09k", 6), "garbage that is long enough"});
    for (const auto& x : r)
        BOOST_TEST(!x.found);
    BOOST_TEST(m.data().empty());
    BOOST_TEST(m.applied_index() == 4u);
}

BOOST_AUTO_TEST_CASE(noop_entries_advance_the_applied_index_only)
{
    kv_state_machine m;
    apply(m, {raftkv::encode_put("k", "v")}, entry_type::noop);
    BOOST_TEST(m.applied_index() == 1u);
    BOOST_TEST(m.data().empty());
}
