#include <raftkv/leveldb/log_store.hpp>

#include <raftkv/concepts.hpp>
#include <raftkv/memory_log_store.hpp>

#include "temp_dir.hpp"

#define BOOST_TEST_MODULE leveldb_log_store
#include <boost/test/unit_test.hpp>

#include "support.hpp"

#include <leveldb/db.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using raftkv::entry_type;
using raftkv::hard_state;
using raftkv::index_t;
using raftkv::log_entry;
using raftkv::term_t;
using raftkv::leveldb::log_store;
using raftkv::test::check_open_fails;
using raftkv::test::open_raw;
using raftkv::test::temp_dir;

static_assert(raftkv::log_store<log_store>);

log_entry entry(index_t index, term_t term, std::string data = {}, entry_type type = entry_type::normal)
{
    return log_entry{term, index, type, std::move(data)};
}

/// Entries from, from+1, ... with the given terms and data "<index>/<term>".
std::vector<log_entry> run(index_t from, std::vector<term_t> terms)
{
    std::vector<log_entry> es;
    for (term_t t : terms) {
        const index_t i = from + es.size();
        es.push_back(entry(i, t, std::to_string(i) + "/" + std::to_string(t)));
    }
    return es;
}

std::vector<log_entry> all_entries(const log_store& s)
{
    if (s.last_index() < s.first_index())
        return {};
    return s.entries(s.first_index(), s.last_index() + 1, SIZE_MAX);
}

/// The documented key of entry i: 'e' and the index as 8 bytes big-endian.
std::string entry_key(index_t i)
{
    std::string key(1, 'e');
    for (int shift = 56; shift >= 0; shift -= 8)
        key.push_back(static_cast<char>((i >> shift) & 0xff));
    return key;
}

/// A store at `dir` holding entries 1..n of term 1.
void make_store(const std::filesystem::path& dir, index_t n)
{
    log_store s{dir};
    s.append(run(1, std::vector<term_t>(n, 1)));
}

} // namespace

BOOST_AUTO_TEST_CASE(new_store_is_empty)
{
    temp_dir dir;
    log_store s{dir / "log"};
    BOOST_TEST(s.first_index() == 1u);
    BOOST_TEST(s.last_index() == 0u);
    BOOST_TEST(s.durable_index() == 0u);
    BOOST_TEST(s.term_at(0) == 0u);
    BOOST_TEST((s.saved_hard_state() == hard_state{}));
}

BOOST_AUTO_TEST_CASE(append_makes_entries_readable_and_durable_at_once)
{
    temp_dir dir;
    log_store s{dir / "log"};
    const std::vector<log_entry> es{entry(1, 1, "a"), entry(2, 1, "", entry_type::noop),
                                    entry(3, 2, std::string("\0\xff\x01", 3)),
                                    entry(4, 2, "c", entry_type::config)};
    s.append(es);
    BOOST_TEST(s.last_index() == 4u);
    BOOST_TEST(s.durable_index() == 4u);
    BOOST_TEST(s.term_at(0) == 0u);
    BOOST_TEST(s.term_at(2) == 1u);
    BOOST_TEST(s.term_at(3) == 2u);
    BOOST_TEST((all_entries(s) == es));
    BOOST_TEST((s.entries(2, 4, SIZE_MAX) == std::vector<log_entry>(es.begin() + 1, es.begin() + 3)));
}

BOOST_AUTO_TEST_CASE(entries_sort_by_index_beyond_one_byte)
{
    temp_dir dir;
    {
        log_store s{dir / "log"};
        for (index_t i = 1; i <= 600; i += 100)
            s.append(run(i, std::vector<term_t>(100, i)));
        BOOST_TEST((s.entries(250, 262, SIZE_MAX) == run(250, std::vector<term_t>(12, 201))));
    }
    log_store s{dir / "log"};
    BOOST_TEST(s.last_index() == 600u);
    BOOST_TEST(s.term_at(256) == 201u);
    BOOST_TEST(s.entries(255, 258, SIZE_MAX).front().index == 255u);
}

BOOST_AUTO_TEST_CASE(append_discards_conflicting_suffix)
{
    temp_dir dir;
    log_store s{dir / "log"};
    s.append(run(1, {1, 1, 1, 1, 1}));
    s.append(run(3, {2, 2}));
    BOOST_TEST(s.last_index() == 4u);
    BOOST_TEST(s.durable_index() == 4u);
    BOOST_TEST(s.term_at(2) == 1u);
    BOOST_TEST(s.term_at(3) == 2u);
    std::vector<log_entry> expected = run(1, {1, 1});
    for (const log_entry& e : run(3, {2, 2}))
        expected.push_back(e);
    BOOST_TEST((all_entries(s) == expected));
}

BOOST_AUTO_TEST_CASE(appending_at_last_plus_one_keeps_the_log)
{
    temp_dir dir;
    log_store s{dir / "log"};
    s.append(run(1, {1, 1}));
    s.append(run(3, {1}));
    BOOST_TEST((all_entries(s) == run(1, {1, 1, 1})));
}

BOOST_AUTO_TEST_CASE(truncated_keys_are_gone_from_disk_after_reopen)
{
    temp_dir dir;
    {
        log_store s{dir / "log"};
        s.append(run(1, {1, 1, 1, 1, 1, 1}));
        s.append(run(2, {3}));
    }
    {
        log_store s{dir / "log"};
        BOOST_TEST(s.last_index() == 2u);
        BOOST_TEST((all_entries(s) == std::vector<log_entry>{run(1, {1}).front(), run(2, {3}).front()}));
    }
    auto db = open_raw(dir / "log");
    std::string value;
    BOOST_TEST(db->Get({}, entry_key(2), &value).ok());
    for (index_t i = 3; i <= 6; ++i)
        BOOST_TEST(db->Get({}, entry_key(i), &value).IsNotFound(), "entry " << i << " still on disk");
}

BOOST_AUTO_TEST_CASE(hard_state_survives_reopen)
{
    temp_dir dir;
    {
        log_store s{dir / "log"};
        s.save_hard_state({3, 2});
        s.save_hard_state({7, 5});
    }
    log_store s{dir / "log"};
    BOOST_TEST((s.saved_hard_state() == hard_state{7, 5}));
}

BOOST_AUTO_TEST_CASE(log_and_hard_state_survive_reopen)
{
    temp_dir dir;
    const std::vector<log_entry> es{entry(1, 1, "x"), entry(2, 2, "", entry_type::noop),
                                    entry(3, 2, std::string(3000, '\0')),
                                    entry(4, UINT64_MAX, "big term", entry_type::config)};
    {
        log_store s{dir / "log"};
        s.append(es);
        s.save_hard_state({UINT64_MAX, 9});
    }
    log_store s{dir / "log"};
    BOOST_TEST(s.last_index() == 4u);
    BOOST_TEST(s.durable_index() == 4u);
    BOOST_TEST(s.term_at(4) == UINT64_MAX);
    BOOST_TEST((all_entries(s) == es));
    BOOST_TEST((s.saved_hard_state() == hard_state{UINT64_MAX, 9}));
}

BOOST_AUTO_TEST_CASE(log_survives_process_crash_without_close)
{
    temp_dir dir;
    // No database is open at the fork, so LevelDB's background thread is idle and the
    // child, which has no such thread, needs none (its writes never fill a memtable).
    const pid_t child = fork();
    BOOST_TEST_REQUIRE(child >= 0);
    if (child == 0) {
        // Dies without running any destructor, as a killed process would.
        try {
            log_store s{dir / "log"};
            s.append(run(1, {1, 2, 3}));
            s.save_hard_state({3, 1});
        } catch (...) {
            _exit(1);
        }
        _exit(0);
    }
    int status = 0;
    BOOST_TEST_REQUIRE(waitpid(child, &status, 0) == child);
    BOOST_TEST_REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    log_store s{dir / "log"};
    BOOST_TEST((all_entries(s) == run(1, {1, 2, 3})));
    BOOST_TEST((s.saved_hard_state() == hard_state{3, 1}));
}

BOOST_AUTO_TEST_CASE(entries_stops_at_byte_cap_but_returns_at_least_one)
{
    temp_dir dir;
    log_store s{dir / "log"};
    s.append(std::vector<log_entry>{entry(1, 1, std::string(10, 'a')), entry(2, 1, std::string(10, 'b')),
                                    entry(3, 1, std::string(10, 'c')), entry(4, 1, "")});
    BOOST_TEST(s.entries(1, 5, 0).size() == 1u);
    BOOST_TEST(s.entries(1, 5, 9).size() == 1u);
    BOOST_TEST(s.entries(1, 5, 10).size() == 1u);
    BOOST_TEST(s.entries(1, 5, 19).size() == 1u);
    BOOST_TEST(s.entries(1, 5, 20).size() == 2u);
    BOOST_TEST(s.entries(1, 5, 30).size() == 4u); // the empty entry adds no bytes
    BOOST_TEST(s.entries(2, 3, 0).front().data == std::string(10, 'b'));
}

namespace {

std::uint64_t seed_from_env_or(std::uint64_t fallback)
{
    const char* s = std::getenv("RAFTKV_SEED");
    return s ? std::strtoull(s, nullptr, 10) : fallback;
}

void check_matches(const raftkv::memory_log_store& model, const log_store& s, std::mt19937_64& rng)
{
    BOOST_TEST_REQUIRE(s.first_index() == model.first_index());
    BOOST_TEST_REQUIRE(s.last_index() == model.last_index());
    BOOST_TEST_REQUIRE(s.durable_index() == model.durable_index());
    BOOST_TEST_REQUIRE((s.saved_hard_state() == model.saved_hard_state()));
    for (index_t i = 0; i <= model.last_index(); ++i)
        BOOST_TEST_REQUIRE(s.term_at(i) == model.term_at(i));
    if (model.last_index() == 0)
        return;
    for (int k = 0; k < 3; ++k) {
        const index_t lo = std::uniform_int_distribution<index_t>(1, model.last_index())(rng);
        const index_t hi = std::uniform_int_distribution<index_t>(lo + 1, model.last_index() + 1)(rng);
        const std::size_t cap = std::uniform_int_distribution<std::size_t>(0, 120)(rng);
        BOOST_TEST_REQUIRE((s.entries(lo, hi, cap) == model.entries(lo, hi, cap)),
                           "entries(" << lo << ", " << hi << ", " << cap << ")");
    }
}

std::vector<log_entry> random_entries(index_t from, term_t min_term, std::mt19937_64& rng)
{
    const auto count = std::uniform_int_distribution<int>(1, 8)(rng);
    term_t term = min_term;
    std::vector<log_entry> es;
    for (int k = 0; k < count; ++k) {
        term += std::uniform_int_distribution<term_t>(0, 1)(rng);
        std::string data(std::uniform_int_distribution<std::size_t>(0, 40)(rng), '\0');
        for (char& c : data)
            c = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
        const auto type = static_cast<entry_type>(std::uniform_int_distribution<int>(0, 2)(rng));
        es.push_back(entry(from + es.size(), term, std::move(data), type));
    }
    return es;
}

} // namespace

BOOST_AUTO_TEST_CASE(matches_memory_log_store_under_random_appends_truncations_and_reopens)
{
    const std::uint64_t first_seed = seed_from_env_or(1);
    const std::uint64_t seeds = std::getenv("RAFTKV_SEED") ? 1 : 8;
    for (std::uint64_t seed = first_seed; seed < first_seed + seeds; ++seed) {
        BOOST_TEST_CONTEXT("seed " << seed << " (replay with RAFTKV_SEED=" << seed << ")")
        {
            std::mt19937_64 rng(seed);
            temp_dir dir;
            raftkv::memory_log_store model;
            std::optional<log_store> s;
            s.emplace(dir / "log");
            for (int step = 0; step < 150; ++step) {
                const int op = std::uniform_int_distribution<int>(0, 9)(rng);
                if (op < 7) {
                    // Mostly extend the log; sometimes overwrite a suffix of it.
                    const index_t last = model.last_index();
                    const index_t from =
                        op < 4 ? last + 1 : std::uniform_int_distribution<index_t>(1, last + 1)(rng);
                    const std::vector<log_entry> es = random_entries(from, model.term_at(from - 1), rng);
                    model.append(es);
                    s->append(es);
                } else if (op == 7) {
                    const hard_state hs{std::uniform_int_distribution<term_t>(0, 50)(rng),
                                        std::uniform_int_distribution<raftkv::node_id>(0, 5)(rng)};
                    model.save_hard_state(hs);
                    s->save_hard_state(hs);
                } else {
                    s.reset();
                    s.emplace(dir / "log");
                }
                check_matches(model, *s, rng);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_on_garbage_entry_value)
{
    temp_dir dir;
    make_store(dir / "log", 3);
    open_raw(dir / "log")->Put({}, entry_key(2), "garbage");
    check_open_fails<log_store>(dir / "log", "entry 2 is 7 bytes");
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_on_entry_of_unknown_version_or_type)
{
    temp_dir dir;
    make_store(dir / "log", 3);
    std::string value(10, '\0');
    value[0] = 2; // version 2
    open_raw(dir / "log")->Put({}, entry_key(3), value);
    check_open_fails<log_store>(dir / "log", "entry 3 has record version 2");

    value[0] = 1;
    value[9] = 3; // no such entry_type
    open_raw(dir / "log")->Put({}, entry_key(3), value);
    check_open_fails<log_store>(dir / "log", "entry 3 has unknown entry type 3");
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_on_malformed_entry_key)
{
    temp_dir dir;
    make_store(dir / "log", 2);
    open_raw(dir / "log")->Put({}, "e123", "x");
    check_open_fails<log_store>(dir / "log", "entry key");
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_on_gap_in_the_log)
{
    temp_dir dir;
    make_store(dir / "log", 5);
    {
        auto db = open_raw(dir / "log");
        db->Delete({}, entry_key(3));
        db->Delete({}, entry_key(4));
    }
    check_open_fails<log_store>(dir / "log", "gap: entries 3 to 4 are missing");
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_when_the_log_does_not_start_at_index_one)
{
    temp_dir dir;
    make_store(dir / "log", 3);
    open_raw(dir / "log")->Delete({}, entry_key(1));
    check_open_fails<log_store>(dir / "log", "entry 1 is missing");
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_on_entry_index_zero)
{
    temp_dir dir;
    make_store(dir / "log", 1);
    open_raw(dir / "log")->Put({}, entry_key(0), std::string(10, '\0'));
    check_open_fails<log_store>(dir / "log", "index 0");
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_on_corrupt_hard_state)
{
    temp_dir dir;
    {
        log_store s{dir / "log"};
        s.save_hard_state({1, 1});
    }
    open_raw(dir / "log")->Put({}, "h", "short");
    check_open_fails<log_store>(dir / "log", "hard state");
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_on_damaged_leveldb_files)
{
    temp_dir dir;
    make_store(dir / "log", 50);
    // The entries are still in LevelDB's write-ahead log; flip bytes in its middle.
    bool damaged = false;
    for (const auto& f : std::filesystem::directory_iterator(dir / "log")) {
        if (f.path().extension() != ".log" || f.file_size() < 200)
            continue;
        std::fstream file(f.path(), std::ios::in | std::ios::out | std::ios::binary);
        file.seekp(static_cast<std::streamoff>(f.file_size() / 2));
        file.write("\xde\xad\xbe\xef", 4);
        damaged = true;
    }
    BOOST_TEST_REQUIRE(damaged);
    check_open_fails<log_store>(dir / "log", "cannot open");
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_on_another_kind_of_database)
{
    temp_dir dir;
    open_raw(dir / "other")->Put({}, "kcolor", "blue");
    check_open_fails<log_store>(dir / "other", "format record");
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_when_the_store_is_already_open)
{
    temp_dir dir;
    log_store first{dir / "log"};
    check_open_fails<log_store>(dir / "log", "lock");
}

BOOST_AUTO_TEST_CASE(open_creates_missing_parent_directories)
{
    temp_dir dir;
    log_store s{dir / "a/b/log"};
    s.append(run(1, {1}));
    BOOST_TEST(std::filesystem::is_directory(dir / "a/b/log"));
}
