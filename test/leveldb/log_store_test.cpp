#include <raftkv/leveldb/log_store.hpp>

#include <raftkv/concepts.hpp>
#include <raftkv/leveldb/detail/term_cache.hpp>
#include <raftkv/membership.hpp>
#include <raftkv/memory_log_store.hpp>
#include <raftkv/sim/log_store_conformance.hpp>

#include "support/log_entries.hpp"
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
using raftkv::membership;
using raftkv::snapshot_meta;
using raftkv::term_t;
using raftkv::leveldb::log_store;
using raftkv::test::all_entries;
using raftkv::test::check_open_fails;
using raftkv::test::damage_leveldb_logs;
using raftkv::test::members_from;
using raftkv::test::open_raw;
using raftkv::test::run;
using raftkv::test::temp_dir;

static_assert(raftkv::log_store<log_store>);

log_entry entry(index_t index, term_t term, std::string data = {}, entry_type type = entry_type::normal)
{
    return log_entry{term, index, type, std::move(data)};
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

/// Entries lo..hi of `es`, a run that starts at index 1.
std::vector<log_entry> slice(const std::vector<log_entry>& es, index_t lo, index_t hi)
{
    return std::vector<log_entry>(es.begin() + static_cast<std::ptrdiff_t>(lo - 1),
                                  es.begin() + static_cast<std::ptrdiff_t>(hi));
}

/// The entry keys the database under a closed store holds, in order.
std::vector<index_t> entry_keys_on_disk(const std::filesystem::path& dir)
{
    auto db = open_raw(dir);
    std::vector<index_t> out;
    std::unique_ptr<::leveldb::Iterator> it(db->NewIterator({}));
    for (it->Seek("e"); it->Valid() && it->key().starts_with("e"); it->Next()) {
        index_t i = 0;
        for (std::size_t k = 1; k < it->key().size(); ++k)
            i = (i << 8) | static_cast<unsigned char>(it->key()[k]);
        out.push_back(i);
    }
    return out;
}

std::vector<index_t> indexes(index_t lo, index_t hi)
{
    std::vector<index_t> out;
    for (index_t i = lo; i <= hi; ++i)
        out.push_back(i);
    return out;
}

snapshot_meta snapshot_at(index_t index, term_t term, membership members = {})
{
    return snapshot_meta{index, term, std::move(members)};
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

namespace {

// The child of log_survives_process_crash_without_close.
int append_then_exit(const std::filesystem::path& dir)
{
    log_store s{dir / "log"};
    s.append(run(1, {1, 2, 3}));
    s.save_hard_state({3, 1});
    return 0;
}

[[maybe_unused]] const bool child = raftkv::test::serve_child_roles({{"append", append_then_exit}});

} // namespace

BOOST_AUTO_TEST_CASE(log_survives_process_crash_without_close)
{
    temp_dir dir;
    const int status = raftkv::test::run_child("append", dir.path());
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
    BOOST_TEST_REQUIRE(damage_leveldb_logs(dir / "log", 200));
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

// Compaction and snapshots.

BOOST_AUTO_TEST_CASE(compact_drops_entries_up_to_the_index_and_keeps_its_term)
{
    temp_dir dir;
    log_store s{dir / "log"};
    const std::vector<log_entry> es = run(1, {1, 1, 2, 2, 2, 3, 3, 3, 3, 3});
    s.append(es);
    s.compact(4, {});
    BOOST_TEST(s.first_index() == 5u);
    BOOST_TEST(s.last_index() == 10u);
    BOOST_TEST(s.durable_index() == 10u);
    BOOST_TEST(s.term_at(4) == 2u);
    BOOST_TEST(s.term_at(5) == 2u);
    BOOST_TEST(s.term_at(10) == 3u);
    BOOST_TEST((all_entries(s) == slice(es, 5, 10)));
    BOOST_TEST((s.entries(6, 8, SIZE_MAX) == slice(es, 6, 7)));
}

BOOST_AUTO_TEST_CASE(compact_at_or_below_the_base_does_nothing)
{
    temp_dir dir;
    log_store s{dir / "log"};
    s.compact(0, {}); // a new store: first_index() - 1 == 0
    BOOST_TEST(s.first_index() == 1u);
    s.append(run(1, {1, 1, 2, 2, 2}));
    s.compact(3, {});
    s.compact(3, {});
    s.compact(1, {});
    BOOST_TEST(s.first_index() == 4u);
    BOOST_TEST(s.last_index() == 5u);
    BOOST_TEST(s.term_at(3) == 2u);
    BOOST_TEST((all_entries(s) == slice(run(1, {1, 1, 2, 2, 2}), 4, 5)));
}

BOOST_AUTO_TEST_CASE(compacted_log_reopens_with_its_base_and_only_the_retained_entries)
{
    temp_dir dir;
    const std::vector<log_entry> es = run(1, {1, 1, 2, 2, 2, 3, 3, 3, 3, 3});
    {
        log_store s{dir / "log"};
        s.append(es);
        s.save_hard_state({3, 2});
        s.compact(4, {});
        s.compact(6, {});
    }
    {
        log_store s{dir / "log"};
        BOOST_TEST(s.first_index() == 7u);
        BOOST_TEST(s.last_index() == 10u);
        BOOST_TEST(s.durable_index() == 10u);
        BOOST_TEST(s.term_at(6) == 3u);
        BOOST_TEST((all_entries(s) == slice(es, 7, 10)));
        BOOST_TEST((s.saved_hard_state() == hard_state{3, 2}));
    }
    BOOST_TEST((entry_keys_on_disk(dir / "log") == indexes(7, 10)));
}

BOOST_AUTO_TEST_CASE(compacting_the_whole_log_leaves_it_empty_after_the_base)
{
    temp_dir dir;
    {
        log_store s{dir / "log"};
        s.append(run(1, {1, 2, 2}));
        s.compact(3, {});
        BOOST_TEST(s.first_index() == 4u);
        BOOST_TEST(s.last_index() == 3u);
        BOOST_TEST(s.durable_index() == 3u);
        BOOST_TEST(s.term_at(3) == 2u);
    }
    log_store s{dir / "log"};
    BOOST_TEST(s.first_index() == 4u);
    BOOST_TEST(s.last_index() == 3u);
    BOOST_TEST(s.term_at(3) == 2u);
    s.append(run(4, {3}));
    BOOST_TEST((all_entries(s) == run(4, {3})));
}

BOOST_AUTO_TEST_CASE(append_after_compaction_extends_or_overwrites_the_retained_log)
{
    temp_dir dir;
    log_store s{dir / "log"};
    s.append(run(1, {1, 1, 1, 1, 1}));
    s.compact(2, {});
    s.append(run(6, {1, 1}));
    BOOST_TEST(s.last_index() == 7u);
    s.append(run(3, {4, 4})); // conflicts from the first retained entry on
    BOOST_TEST(s.first_index() == 3u);
    BOOST_TEST(s.last_index() == 4u);
    BOOST_TEST(s.term_at(2) == 1u);
    BOOST_TEST((all_entries(s) == run(3, {4, 4})));
}

BOOST_AUTO_TEST_CASE(many_compactions_keep_open_and_disk_bounded_by_the_retained_log)
{
    // More dropped entries than the store lets pile up as LevelDB tombstones, so the
    // store compacts their key range at least once on the way.
    temp_dir dir;
    const index_t total = 150'000;
    const index_t keep = 1'000;
    {
        log_store s{dir / "log"};
        for (index_t i = 1; i <= total; i += 5'000) {
            s.append(run(i, std::vector<term_t>(5'000, i / 10'000 + 1)));
            s.compact(s.last_index() - keep, {});
        }
        BOOST_TEST(s.first_index() == total - keep + 1);
    }
    log_store s{dir / "log"};
    BOOST_TEST(s.first_index() == total - keep + 1);
    BOOST_TEST(s.last_index() == total);
    BOOST_TEST(s.term_at(total - keep) == (total - 5'000 + 1) / 10'000 + 1);
    BOOST_TEST(s.entries(s.first_index(), s.first_index() + 1, SIZE_MAX).front().index == total - keep + 1);
}

BOOST_AUTO_TEST_CASE(term_cache_memory_follows_the_retained_log)
{
    raftkv::leveldb::detail::term_cache terms;
    std::size_t peak = 0;
    for (term_t t = 1; t <= 200'000; ++t) {
        terms.reserve(terms.size() + 1);
        terms.push_back(t);
        if (terms.size() > 1'000) {
            terms.drop_front(terms.size() - 1'000);
            BOOST_TEST_REQUIRE(terms[0] == t - 999);
            BOOST_TEST_REQUIRE(terms[999] == t);
        }
        peak = std::max(peak, terms.capacity());
    }
    BOOST_TEST(peak <= 8'000u, "the cache held room for " << peak << " terms to retain 1000");

    // A long log, then compacted to a short one: the room shrinks with it.
    for (term_t t = 1; t <= 100'000; ++t) {
        terms.reserve(terms.size() + 1);
        terms.push_back(t);
    }
    terms.drop_front(terms.size() - 10);
    BOOST_TEST(terms.size() == 10u);
    BOOST_TEST(terms[9] == 100'000u);
    BOOST_TEST(terms.capacity() <= 2'048u);
}

BOOST_AUTO_TEST_CASE(install_snapshot_past_the_log_restarts_it_after_the_snapshot)
{
    temp_dir dir;
    {
        log_store s{dir / "log"};
        s.append(run(1, {1, 1, 2}));
        s.install_snapshot(snapshot_at(100, 7));
        BOOST_TEST(s.first_index() == 101u);
        BOOST_TEST(s.last_index() == 100u);
        BOOST_TEST(s.durable_index() == 100u);
        BOOST_TEST(s.term_at(100) == 7u);
        s.append(run(101, {7, 8}));
        BOOST_TEST((all_entries(s) == run(101, {7, 8})));
    }
    log_store s{dir / "log"};
    BOOST_TEST(s.first_index() == 101u);
    BOOST_TEST(s.term_at(100) == 7u);
    BOOST_TEST((all_entries(s) == run(101, {7, 8})));
}

BOOST_AUTO_TEST_CASE(install_snapshot_inside_the_log_drops_every_entry)
{
    temp_dir dir;
    {
        log_store s{dir / "log"};
        s.append(run(1, {1, 1, 2, 2, 2, 3}));
        s.compact(1, {});
        s.install_snapshot(snapshot_at(4, 5)); // another term than entry 4's: the log conflicted
        BOOST_TEST(s.first_index() == 5u);
        BOOST_TEST(s.last_index() == 4u);
        BOOST_TEST(s.durable_index() == 4u);
        BOOST_TEST(s.term_at(4) == 5u);
    }
    BOOST_TEST(entry_keys_on_disk(dir / "log").empty());
    log_store s{dir / "log"};
    BOOST_TEST(s.first_index() == 5u);
    BOOST_TEST(s.last_index() == 4u);
    BOOST_TEST(s.term_at(4) == 5u);
    s.append(run(5, {5}));
    BOOST_TEST((all_entries(s) == run(5, {5})));
}

BOOST_AUTO_TEST_CASE(install_snapshot_before_the_log_moves_its_start_back)
{
    temp_dir dir;
    {
        log_store s{dir / "log"};
        s.append(run(1, std::vector<term_t>(20, 2)));
        s.compact(10, {});
        s.install_snapshot(snapshot_at(3, 1));
        BOOST_TEST(s.first_index() == 4u);
        BOOST_TEST(s.last_index() == 3u);
        BOOST_TEST(s.term_at(3) == 1u);
        s.append(run(4, {1, 4}));
    }
    BOOST_TEST((entry_keys_on_disk(dir / "log") == indexes(4, 5)));
    log_store s{dir / "log"};
    BOOST_TEST(s.first_index() == 4u);
    BOOST_TEST(s.term_at(3) == 1u);
    BOOST_TEST((all_entries(s) == run(4, {1, 4})));
}

BOOST_AUTO_TEST_CASE(install_snapshot_on_a_new_store)
{
    temp_dir dir;
    {
        log_store s{dir / "log"};
        s.install_snapshot(snapshot_at(42, 3));
    }
    log_store s{dir / "log"};
    BOOST_TEST(s.first_index() == 43u);
    BOOST_TEST(s.last_index() == 42u);
    BOOST_TEST(s.durable_index() == 42u);
    BOOST_TEST(s.term_at(42) == 3u);
}

BOOST_AUTO_TEST_CASE(store_without_base_record_opens_as_one_starting_at_index_one)
{
    // Stores written before compaction existed have no base record.
    temp_dir dir;
    make_store(dir / "log", 3);
    {
        auto db = open_raw(dir / "log");
        std::string value;
        BOOST_TEST_REQUIRE(db->Get({}, "b", &value).IsNotFound());
    }
    log_store s{dir / "log"};
    BOOST_TEST(s.first_index() == 1u);
    BOOST_TEST(s.term_at(0) == 0u);
    BOOST_TEST(s.last_index() == 3u);
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_on_corrupt_base_record)
{
    temp_dir dir;
    {
        log_store s{dir / "log"};
        s.append(run(1, {1, 1}));
        s.compact(1, {});
    }
    open_raw(dir / "log")->Put({}, "b", "short");
    check_open_fails<log_store>(dir / "log", "the base record is not a version-1 base");
}

// The configuration at the base.

BOOST_AUTO_TEST_CASE(base_members_survive_reopening_after_compaction_and_snapshot_install)
{
    temp_dir dir;
    const membership joint = members_from(3, true);
    {
        log_store s{dir / "log"};
        BOOST_TEST((s.base_members() == membership{}));
        s.append(run(1, {1, 1, 2, 2}));
        s.compact(2, joint);
        BOOST_TEST((s.base_members() == joint));
        s.compact(1, members_from(8)); // below the base: changes nothing
        BOOST_TEST((s.base_members() == joint));
    }
    {
        log_store s{dir / "log"};
        BOOST_TEST(s.first_index() == 3u);
        BOOST_TEST((s.base_members() == joint));
        s.install_snapshot(snapshot_at(9, 4, members_from(20)));
        BOOST_TEST((s.base_members() == members_from(20)));
    }
    {
        // Stored as encode_membership() under "m", written with the base.
        auto db = open_raw(dir / "log");
        std::string value;
        BOOST_TEST_REQUIRE(db->Get({}, "m", &value).ok());
        BOOST_TEST((value == raftkv::encode_membership(members_from(20))));
    }
    log_store s{dir / "log"};
    BOOST_TEST(s.first_index() == 10u);
    BOOST_TEST(s.term_at(9) == 4u);
    BOOST_TEST((s.base_members() == members_from(20)));
}

BOOST_AUTO_TEST_CASE(bootstrap_install_at_index_zero_keeps_the_log_empty_and_the_members_durable)
{
    temp_dir dir;
    {
        log_store s{dir / "log"};
        s.install_snapshot(snapshot_at(0, 0, members_from(1)));
        BOOST_TEST(s.first_index() == 1u);
        BOOST_TEST(s.last_index() == 0u);
        BOOST_TEST(s.durable_index() == 0u);
    }
    log_store s{dir / "log"};
    BOOST_TEST(s.first_index() == 1u);
    BOOST_TEST(s.last_index() == 0u);
    BOOST_TEST(s.term_at(0) == 0u);
    BOOST_TEST((s.base_members() == members_from(1)));
    s.append(run(1, {1, 1}));
    BOOST_TEST((all_entries(s) == run(1, {1, 1})));
}

BOOST_AUTO_TEST_CASE(store_without_members_record_opens_with_empty_base_members)
{
    // Stores written before stores kept the configuration have a base record but no "m".
    temp_dir dir;
    {
        log_store s{dir / "log"};
        s.append(run(1, {1, 1, 2, 2}));
        s.compact(2, members_from(1));
    }
    open_raw(dir / "log")->Delete({}, "m");
    log_store s{dir / "log"};
    BOOST_TEST(s.first_index() == 3u);
    BOOST_TEST(s.term_at(2) == 1u);
    BOOST_TEST((s.base_members() == membership{}));
    BOOST_TEST((all_entries(s) == slice(run(1, {1, 1, 2, 2}), 3, 4)));
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_on_undecodable_base_members)
{
    temp_dir dir;
    {
        log_store s{dir / "log"};
        s.append(run(1, {1, 1}));
        s.compact(1, members_from(1));
    }
    std::string truncated = raftkv::encode_membership(members_from(1));
    truncated.pop_back();
    open_raw(dir / "log")->Put({}, "m", truncated);
    check_open_fails<log_store>(dir / "log", "the base membership record");

    std::string other_version = raftkv::encode_membership(members_from(1));
    other_version[0] = 9;
    open_raw(dir / "log")->Put({}, "m", other_version);
    check_open_fails<log_store>(dir / "log", "version 9");

    open_raw(dir / "log")->Put({}, "m", "");
    check_open_fails<log_store>(dir / "log", "the base membership record (0 bytes");
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_on_entry_at_or_before_the_base)
{
    temp_dir dir;
    {
        log_store s{dir / "log"};
        s.append(run(1, {1, 1, 1, 1, 1, 1}));
        s.compact(4, {});
    }
    open_raw(dir / "log")->Put({}, entry_key(4), std::string(10, '\0'));
    check_open_fails<log_store>(dir / "log", "an entry key holds index 4, before the first index 5");
}

BOOST_AUTO_TEST_CASE(open_fails_clearly_when_the_entry_after_the_base_is_missing)
{
    temp_dir dir;
    {
        log_store s{dir / "log"};
        s.append(run(1, {1, 1, 1, 1, 1, 1}));
        s.compact(2, {});
    }
    open_raw(dir / "log")->Delete({}, entry_key(3));
    check_open_fails<log_store>(dir / "log", "gap: entry 3 is missing but entry 4 is present");
}

namespace {

/// What a log store must hold, kept in the obvious way.
struct model_log {
    index_t base_index = 0;
    term_t base_term = 0;
    membership base_members;
    std::vector<log_entry> entries;
    hard_state hs;

    index_t first_index() const { return base_index + 1; }
    index_t last_index() const { return base_index + entries.size(); }
    term_t term_at(index_t i) const { return i == base_index ? base_term : entries[i - first_index()].term; }

    void append(const std::vector<log_entry>& es)
    {
        entries.resize(es.front().index - first_index());
        entries.insert(entries.end(), es.begin(), es.end());
    }
    void compact(index_t i, const membership& members)
    {
        if (i < first_index())
            return;
        base_term = term_at(i);
        entries.erase(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(i - base_index));
        base_index = i;
        base_members = members;
    }
    void install_snapshot(const snapshot_meta& meta)
    {
        entries.clear();
        base_index = meta.index;
        base_term = meta.term;
        base_members = meta.members;
    }
};

void check_matches(const model_log& model, const log_store& s)
{
    BOOST_TEST_REQUIRE(s.first_index() == model.first_index());
    BOOST_TEST_REQUIRE(s.last_index() == model.last_index());
    BOOST_TEST_REQUIRE(s.durable_index() == model.last_index());
    BOOST_TEST_REQUIRE((s.saved_hard_state() == model.hs));
    BOOST_TEST_REQUIRE((s.base_members() == model.base_members));
    for (index_t i = model.base_index; i <= model.last_index(); ++i)
        BOOST_TEST_REQUIRE(s.term_at(i) == model.term_at(i), "term_at(" << i << ")");
    if (!model.entries.empty())
        BOOST_TEST_REQUIRE((all_entries(s) == model.entries));
}

} // namespace

BOOST_AUTO_TEST_CASE(matches_a_model_under_random_appends_compactions_snapshots_and_reopens)
{
    const std::uint64_t first_seed = seed_from_env_or(1);
    const std::uint64_t seeds = std::getenv("RAFTKV_SEED") ? 1 : 8;
    for (std::uint64_t seed = first_seed; seed < first_seed + seeds; ++seed) {
        BOOST_TEST_CONTEXT("seed " << seed << " (replay with RAFTKV_SEED=" << seed << ")")
        {
            std::mt19937_64 rng(seed);
            temp_dir dir;
            model_log model;
            std::optional<log_store> s;
            s.emplace(dir / "log");
            for (int step = 0; step < 200; ++step) {
                const int op = std::uniform_int_distribution<int>(0, 19)(rng);
                if (op < 12) {
                    const index_t last = model.last_index();
                    const index_t from =
                        op < 8 ? last + 1
                               : std::uniform_int_distribution<index_t>(model.first_index(), last + 1)(rng);
                    const std::vector<log_entry> es = random_entries(from, model.term_at(from - 1), rng);
                    model.append(es);
                    s->append(es);
                } else if (op < 15) {
                    // Sometimes below the base: a no-op.
                    const index_t lo = model.base_index > 2 ? model.base_index - 2 : 0;
                    const index_t i = std::uniform_int_distribution<index_t>(lo, model.last_index())(rng);
                    const membership m = members_from(
                        std::uniform_int_distribution<raftkv::node_id>(1, 9)(rng), step % 2 == 0);
                    model.compact(i, m);
                    s->compact(i, m);
                } else if (op == 15) {
                    const index_t last = model.last_index();
                    const index_t i =
                        std::uniform_int_distribution<index_t>(last > 10 ? last - 10 : 0, last + 10)(rng);
                    const snapshot_meta meta =
                        snapshot_at(i, model.term_at(model.base_index) + 1,
                                    members_from(std::uniform_int_distribution<raftkv::node_id>(1, 9)(rng)));
                    model.install_snapshot(meta);
                    s->install_snapshot(meta);
                } else if (op == 16) {
                    model.hs = hard_state{std::uniform_int_distribution<term_t>(0, 50)(rng), 1};
                    s->save_hard_state(model.hs);
                } else {
                    s.reset();
                    s.emplace(dir / "log");
                }
                check_matches(model, *s);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(passes_the_log_store_conformance_test_across_reopens)
{
    temp_dir dir;
    std::unique_ptr<log_store> store;
    raftkv::sim::check_log_store_conformance<log_store>({.open = [&]() -> log_store& {
                                                             store.reset(); // close before reopening
                                                             store = std::make_unique<log_store>(dir.path());
                                                             return *store;
                                                         },
                                                         .sync = {}});
}
