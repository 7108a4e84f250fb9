#include <raftkv/leveldb/kv_state_machine.hpp>

#include <raftkv/concepts.hpp>
#include <raftkv/kv_command.hpp>

#include "temp_dir.hpp"

#define BOOST_TEST_MODULE leveldb_kv_state_machine
#include <boost/test/unit_test.hpp>

#include "support.hpp"

#include <leveldb/db.h>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using raftkv::entry_type;
using raftkv::index_t;
using raftkv::kv_result;
using raftkv::log_entry;
using raftkv::leveldb::kv_state_machine;
using raftkv::test::check_open_fails;
using raftkv::test::open_raw;
using raftkv::test::temp_dir;

static_assert(raftkv::state_machine<kv_state_machine>);
static_assert(std::is_same_v<kv_state_machine::result_type, kv_result>);

/// Builds contiguous batches of entries, numbering them from where the last one ended.
class batch_builder {
public:
    explicit batch_builder(index_t next = 1) : next_(next) {}

    batch_builder& put(std::string_view key, std::string_view value)
    {
        return add(raftkv::encode_put(key, value));
    }
    batch_builder& del(std::string_view key) { return add(raftkv::encode_del(key)); }
    batch_builder& meta(std::string_view name, std::string_view value)
    {
        return add(raftkv::encode_meta(name, value));
    }
    batch_builder& add(std::string data, entry_type type = entry_type::normal)
    {
        batch_.push_back(log_entry{1, next_++, type, std::move(data)});
        return *this;
    }

    /// Applies the batch built so far to `m`, returns the results and starts a new batch.
    std::vector<kv_result> apply_to(kv_state_machine& m)
    {
        std::vector<kv_result> results(batch_.size());
        m.apply(batch_, results);
        batch_.clear();
        return results;
    }

private:
    index_t next_;
    std::vector<log_entry> batch_;
};

std::vector<kv_result> found(std::initializer_list<bool> fs)
{
    std::vector<kv_result> out;
    for (bool f : fs)
        out.push_back(kv_result{f});
    return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(new_machine_is_empty)
{
    temp_dir dir;
    kv_state_machine m{dir / "sm"};
    BOOST_TEST(m.applied_index() == 0u);
    BOOST_TEST(!m.get("a").has_value());
}

BOOST_AUTO_TEST_CASE(put_stores_value_and_reports_found)
{
    temp_dir dir;
    kv_state_machine m{dir / "sm"};
    batch_builder b;
    BOOST_TEST((b.put("a", "1").put("b", std::string("\0\xff", 2)).put("a", "2").apply_to(m) ==
                found({true, true, true})));
    BOOST_TEST(m.applied_index() == 3u);
    BOOST_TEST(m.get("a").value() == "2");
    BOOST_TEST(m.get("b").value() == std::string("\0\xff", 2));
}

BOOST_AUTO_TEST_CASE(empty_key_and_empty_value_are_ordinary)
{
    temp_dir dir;
    kv_state_machine m{dir / "sm"};
    batch_builder b;
    BOOST_TEST((b.put("", "").apply_to(m) == found({true})));
    BOOST_TEST(m.get("").value() == "");
    BOOST_TEST((b.del("").apply_to(m) == found({true})));
    BOOST_TEST(!m.get("").has_value());
}

BOOST_AUTO_TEST_CASE(delete_of_existing_key_reports_found_and_removes_it)
{
    temp_dir dir;
    kv_state_machine m{dir / "sm"};
    batch_builder b;
    b.put("a", "1").apply_to(m);
    BOOST_TEST((b.del("a").apply_to(m) == found({true})));
    BOOST_TEST(!m.get("a").has_value());
    BOOST_TEST(m.applied_index() == 2u);
}

BOOST_AUTO_TEST_CASE(delete_of_absent_key_reports_not_found)
{
    temp_dir dir;
    kv_state_machine m{dir / "sm"};
    batch_builder b;
    b.put("a", "1").apply_to(m);
    BOOST_TEST((b.del("b").del("a").del("a").apply_to(m) == found({false, true, false})));
    BOOST_TEST(m.applied_index() == 4u);
}

BOOST_AUTO_TEST_CASE(delete_sees_writes_earlier_in_the_same_batch)
{
    temp_dir dir;
    kv_state_machine m{dir / "sm"};
    batch_builder b;
    b.put("stored", "x").apply_to(m);
    const auto results = b.put("new", "1")
                             .del("new")    // put earlier in this batch: found
                             .del("new")    // deleted earlier in this batch: not found
                             .del("stored") // stored before the batch: found
                             .put("stored", "y")
                             .del("stored") // deleted, then put again: found
                             .put("kept", "z")
                             .apply_to(m);
    BOOST_TEST((results == found({true, true, false, true, true, true, true})));
    BOOST_TEST(!m.get("new").has_value());
    BOOST_TEST(!m.get("stored").has_value());
    BOOST_TEST(m.get("kept").value() == "z");
}

BOOST_AUTO_TEST_CASE(noop_and_config_entries_advance_applied_index_with_default_result)
{
    temp_dir dir;
    kv_state_machine m{dir / "sm"};
    batch_builder b;
    const auto results =
        b.add("", entry_type::noop).add(raftkv::encode_put("a", "1"), entry_type::config).apply_to(m);
    BOOST_TEST((results == found({false, false})));
    BOOST_TEST(m.applied_index() == 2u);
    BOOST_TEST(!m.get("a").has_value());
}

BOOST_AUTO_TEST_CASE(undecodable_commands_are_skipped_without_throwing)
{
    temp_dir dir;
    kv_state_machine m{dir / "sm"};
    batch_builder b;
    std::vector<kv_result> results;
    BOOST_CHECK_NO_THROW(results = b.add("")
                                       .add("P\0\0")
                                       .add(std::string("X\0\0\0\0", 5))
                                       .add(std::string("P\0\0\0\x09key", 8)) // key longer than data
                                       .add(std::string("D\0\0\0\x01kv", 7))  // delete with a value
                                       .put("good", "1")
                                       .apply_to(m));
    BOOST_TEST((results == found({false, false, false, false, false, true})));
    BOOST_TEST(m.applied_index() == 6u);
    BOOST_TEST(m.get("good").value() == "1");
    BOOST_TEST(!m.get("k").has_value());
}

BOOST_AUTO_TEST_CASE(empty_batch_changes_nothing)
{
    temp_dir dir;
    kv_state_machine m{dir / "sm"};
    m.apply({}, {});
    BOOST_TEST(m.applied_index() == 0u);
}

BOOST_AUTO_TEST_CASE(state_and_applied_index_survive_reopen)
{
    temp_dir dir;
    {
        kv_state_machine m{dir / "sm"};
        batch_builder b;
        b.put("a", "1").put("b", "2").apply_to(m);
        b.del("a").add("", entry_type::noop).apply_to(m);
    }
    kv_state_machine m{dir / "sm"};
    BOOST_TEST(m.applied_index() == 4u);
    BOOST_TEST(!m.get("a").has_value());
    BOOST_TEST(m.get("b").value() == "2");
    batch_builder b{m.applied_index() + 1};
    BOOST_TEST((b.del("b").apply_to(m) == found({true})));
}

BOOST_AUTO_TEST_CASE(unsynced_state_survives_process_crash_without_close)
{
    // With sync off, every completed apply is still in the OS page cache when the process
    // dies, so the data and the applied index come back together.
    temp_dir dir;
    // No database is open at the fork, so LevelDB's background thread is idle and the
    // child, which has no such thread, needs none (its writes never fill a memtable).
    const pid_t child = fork();
    BOOST_TEST_REQUIRE(child >= 0);
    if (child == 0) {
        try {
            kv_state_machine m{dir / "sm", {.sync = false}};
            batch_builder b;
            for (int k = 0; k < 100; ++k)
                b.put("key" + std::to_string(k), std::string(1000, 'v'));
            b.apply_to(m);
            b.del("key0").apply_to(m);
        } catch (...) {
            _exit(1);
        }
        _exit(0);
    }
    int status = 0;
    BOOST_TEST_REQUIRE(waitpid(child, &status, 0) == child);
    BOOST_TEST_REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    kv_state_machine m{dir / "sm"};
    BOOST_TEST(m.applied_index() == 101u);
    BOOST_TEST(!m.get("key0").has_value());
    BOOST_TEST(m.get("key99").value() == std::string(1000, 'v'));
}

BOOST_AUTO_TEST_CASE(applied_index_is_written_in_the_same_batch_as_the_data)
{
    // One apply is one LevelDB write: reading the database back shows the applied index
    // and the data together, under their own key spaces.
    temp_dir dir;
    {
        kv_state_machine m{dir / "sm"};
        batch_builder b;
        b.put("a", "1").put("mapplied_index", "user data").apply_to(m);
    }
    auto db = open_raw(dir / "sm");
    std::string value;
    BOOST_TEST_REQUIRE(db->Get({}, "mapplied_index", &value).ok());
    BOOST_TEST(value == std::string("\0\0\0\0\0\0\0\x02", 8));
    BOOST_TEST_REQUIRE(db->Get({}, "ka", &value).ok());
    BOOST_TEST(value == "1");
    BOOST_TEST_REQUIRE(db->Get({}, "kmapplied_index", &value).ok());
    BOOST_TEST(value == "user data");
}

BOOST_AUTO_TEST_CASE(user_keys_cannot_overwrite_metadata)
{
    temp_dir dir;
    {
        kv_state_machine m{dir / "sm"};
        batch_builder b;
        b.put("mapplied_index", "x").put("mformat", "x").put("applied_index", "x").apply_to(m);
    }
    kv_state_machine m{dir / "sm"};
    BOOST_TEST(m.applied_index() == 3u);
    BOOST_TEST(m.get("mformat").value() == "x");
}

BOOST_AUTO_TEST_CASE(meta_records_are_stored_and_reported_found)
{
    temp_dir dir;
    kv_state_machine m{dir / "sm"};
    BOOST_TEST(!m.get_meta("node.1.http").has_value());
    batch_builder b;
    BOOST_TEST(
        (b.meta("node.1.http", "a:1").meta("node.2.http", "b:2").meta("node.1.http", "c:3").apply_to(m) ==
         found({true, true, true})));
    BOOST_TEST(m.applied_index() == 3u);
    BOOST_TEST(m.get_meta("node.1.http").value() == "c:3");
    BOOST_TEST(m.get_meta("node.2.http").value() == "b:2");
}

BOOST_AUTO_TEST_CASE(meta_records_and_user_keys_are_separate_namespaces)
{
    temp_dir dir;
    kv_state_machine m{dir / "sm"};
    batch_builder b;
    b.put("name", "user value").meta("name", "meta value").apply_to(m);
    BOOST_TEST(m.get("name").value() == "user value");
    BOOST_TEST(m.get_meta("name").value() == "meta value");

    // A delete of the user key leaves the meta record alone.
    BOOST_TEST((b.del("name").apply_to(m) == found({true})));
    BOOST_TEST(!m.get("name").has_value());
    BOOST_TEST(m.get_meta("name").value() == "meta value");

    // A meta record never shows up as a user key, and the machine's own records never as meta.
    BOOST_TEST((b.meta("other", "x").del("other").apply_to(m) == found({true, false})));
    BOOST_TEST(m.get_meta("other").value() == "x");
    BOOST_TEST(!m.get_meta("format").has_value());
    BOOST_TEST(!m.get_meta("applied_index").has_value());
}

BOOST_AUTO_TEST_CASE(meta_records_survive_reopen)
{
    temp_dir dir;
    {
        kv_state_machine m{dir / "sm"};
        batch_builder b;
        b.meta("node.3.http", "10.0.0.3:8080").apply_to(m);
    }
    kv_state_machine m{dir / "sm"};
    BOOST_TEST(m.applied_index() == 1u);
    BOOST_TEST(m.get_meta("node.3.http").value() == "10.0.0.3:8080");
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_on_corrupt_applied_index)
{
    temp_dir dir;
    {
        kv_state_machine m{dir / "sm"};
        batch_builder b;
        b.put("a", "1").apply_to(m);
    }
    open_raw(dir / "sm")->Put({}, "mapplied_index", "bad");
    check_open_fails<kv_state_machine>(dir / "sm", "applied index");
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_on_another_kind_of_database)
{
    temp_dir dir;
    open_raw(dir / "other")->Put({}, "h", "x");
    check_open_fails<kv_state_machine>(dir / "other", "format record");
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_when_the_machine_is_already_open)
{
    temp_dir dir;
    kv_state_machine first{dir / "sm"};
    check_open_fails<kv_state_machine>(dir / "sm", "lock");
}
