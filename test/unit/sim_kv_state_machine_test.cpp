#include <raftkv/sim/kv_state_machine.hpp>

#define BOOST_TEST_MODULE sim_kv_state_machine
#include <boost/test/unit_test.hpp>

#include <raftkv/concepts.hpp>
#include <raftkv/kv_command.hpp>

#include "support/kv_session_checks.hpp"

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

BOOST_AUTO_TEST_CASE(versions_and_preconditions_match_the_leveldb_machine)
{
    using raftkv::encode_del;
    using raftkv::encode_put;
    using raftkv::kv_precondition;
    using raftkv::kv_status;
    const kv_precondition absent{std::nullopt, true};
    const auto at = [](raftkv::index_t v) { return kv_precondition{v, false}; };
    kv_state_machine m;
    const auto r = apply(m, {
                                encode_put("a", "1"),         // 1
                                encode_put("a", "x", absent), // 2: exists, at 1
                                encode_put("a", "2", at(1)),  // 3: swapped
                                encode_put("a", "y", at(1)),  // 4: at 3 now
                                encode_del("b", at(0)),       // 5: absent
                                encode_put("b", "1", absent), // 6: created
                                encode_del("b", at(6)),       // 7: deleted, was at 6
                                encode_del("a"),              // 8: was at 3
                            });
    const std::vector<kv_result> expected{
        {true, kv_status::ok, 1},
        {true, kv_status::precondition_failed, 1},
        {true, kv_status::ok, 3},
        {true, kv_status::precondition_failed, 3},
        {false, kv_status::precondition_failed, 0},
        {true, kv_status::ok, 6},
        {true, kv_status::ok, 6},
        {true, kv_status::ok, 3},
    };
    BOOST_TEST((r == expected));
    BOOST_TEST(!m.version("a").has_value());
    apply(m, {encode_put("c", "v")});
    BOOST_TEST(m.version("c").value_or(0) == 9u);
}

BOOST_AUTO_TEST_CASE(versions_survive_a_snapshot_and_restore)
{
    kv_state_machine a;
    apply(a, {raftkv::encode_put("a", "1"), raftkv::encode_put("b", "2"), raftkv::encode_put("a", "3")});
    auto reader = a.snapshot();
    std::string chunk;
    std::vector<std::string> chunks;
    for (bool last = false; !last;) {
        last = reader.read(chunk, 5);
        chunks.push_back(chunk);
    }
    kv_state_machine b;
    b.begin_restore(raftkv::snapshot_meta{reader.index(), 1, {}});
    for (const auto& c : chunks)
        b.restore_chunk(c);
    b.finish_restore();
    BOOST_TEST(b.get("a").value_or("-") == "3");
    BOOST_TEST(b.version("a").value_or(0) == 3u);
    BOOST_TEST(b.version("b").value_or(0) == 2u);
}

// Client sessions: the same checks as the LevelDB machine's.

BOOST_AUTO_TEST_CASE(a_session_command_applies_once_and_replays_its_result)
{
    kv_state_machine m;
    raftkv::test::check_session_applies_once(m);
}

BOOST_AUTO_TEST_CASE(a_session_replays_the_outcome_of_a_precondition)
{
    kv_state_machine m;
    raftkv::test::check_session_replays_preconditions(m);
}

BOOST_AUTO_TEST_CASE(a_sequence_reused_for_another_request_is_refused)
{
    kv_state_machine m;
    raftkv::test::check_session_refuses_a_reused_sequence(m);
}

BOOST_AUTO_TEST_CASE(a_sequence_below_the_session_window_is_stale_and_not_applied)
{
    kv_state_machine m;
    raftkv::test::check_session_window(m);
}

BOOST_AUTO_TEST_CASE(a_session_expires_after_its_expiry_in_log_entries)
{
    kv_state_machine m;
    raftkv::test::check_session_expiry(m);
}

BOOST_AUTO_TEST_CASE(the_session_table_evicts_the_least_recently_used_past_its_bound)
{
    kv_state_machine m;
    raftkv::test::check_session_bound(m);
}

BOOST_AUTO_TEST_CASE(sessions_are_part_of_the_snapshot_and_survive_on_the_disk)
{
    auto disk = std::make_shared<kv_state_machine::disk>();
    kv_state_machine a{disk};
    raftkv::test::apply_sample_sessions(a);
    BOOST_TEST_REQUIRE(a.sessions().size() == 4u);

    // Streamed in small chunks and restored elsewhere.
    auto reader = a.snapshot();
    kv_state_machine b;
    b.begin_restore(raftkv::snapshot_meta{reader.index(), 1, {}});
    for (bool last = false; !last;) {
        std::string chunk;
        last = reader.read(chunk, 7);
        b.restore_chunk(chunk);
    }
    b.finish_restore();
    BOOST_TEST((b.sessions().sessions() == a.sessions().sessions()));
    BOOST_TEST((b.data() == a.data()));
    // The restored table answers a retry as the original would.
    const std::string retry = raftkv::encode_del("a", {}, raftkv::test::stamp(12, 1));
    const kv_result from_a = raftkv::test::session_driver(a).apply(retry);
    const kv_result from_b = raftkv::test::session_driver(b).apply(retry);
    BOOST_TEST(from_a.replayed);
    BOOST_TEST((from_a == from_b));

    // A machine rebuilt from its disk's snapshot has the table too.
    a.take_snapshot();
    kv_state_machine c{disk};
    BOOST_TEST((c.sessions().sessions() == a.sessions().sessions()));
}

BOOST_AUTO_TEST_CASE(a_malformed_session_record_fails_the_restore)
{
    kv_state_machine m;
    m.begin_restore(raftkv::snapshot_meta{1, 1, {}});
    std::string record("s\0\0\0\x08\0\0\0\x01", 9);
    record.append(std::string(7, '\0') + "\x05");
    record.push_back('\xff'); // a varint that never ends
    BOOST_CHECK_THROW(m.restore_chunk(record), std::invalid_argument);
}
