#include <raftkv/wal/log_store.hpp>

#include <raftkv/concepts.hpp>
#include <raftkv/error.hpp>
#include <raftkv/membership.hpp>
#include <raftkv/sim/log_store_conformance.hpp>
#include <raftkv/wal/detail/format.hpp>

#include "../leveldb/temp_dir.hpp"
#include "support/log_entries.hpp"

#define BOOST_TEST_MODULE wal_log_store
#include <boost/test/unit_test.hpp>

#include "support/read_only_checks.hpp" // after Boost.Test

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using raftkv::entry_type;
using raftkv::hard_state;
using raftkv::index_t;
using raftkv::log_entry;
using raftkv::membership;
using raftkv::snapshot_meta;
using raftkv::term_t;
using raftkv::test::all_entries;
using raftkv::test::members_from;
using raftkv::test::run;
using raftkv::test::temp_dir;
using raftkv::wal::log_store;
using raftkv::wal::log_store_options;

static_assert(raftkv::log_store<log_store>);

std::vector<std::filesystem::path> segments(const std::filesystem::path& dir)
{
    std::vector<std::filesystem::path> out;
    for (const auto& item : std::filesystem::directory_iterator(dir))
        if (item.path().extension() == ".log")
            out.push_back(item.path());
    std::sort(out.begin(), out.end());
    return out;
}

/// The offset just past the last non-zero byte of `path` (where the written data ends).
std::uint64_t data_end(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::uint64_t end = data.size();
    while (end > 0 && data[end - 1] == '\0')
        --end;
    return end;
}

/// How the file system stores `path`: its extents, or nothing if it cannot say (no FIEMAP).
std::optional<std::vector<fiemap_extent>> extents(const std::filesystem::path& path)
{
    constexpr unsigned max_extents = 256;
    std::vector<std::byte> buffer(sizeof(fiemap) + max_extents * sizeof(fiemap_extent));
    auto* map = new (buffer.data()) fiemap{};
    map->fm_length = FIEMAP_MAX_OFFSET;
    map->fm_flags = FIEMAP_FLAG_SYNC;
    map->fm_extent_count = max_extents;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    BOOST_REQUIRE(fd >= 0);
    const int r = ::ioctl(fd, FS_IOC_FIEMAP, map);
    ::close(fd);
    if (r != 0)
        return std::nullopt;
    BOOST_REQUIRE(map->fm_mapped_extents < max_extents);
    return std::vector<fiemap_extent>(map->fm_extents, map->fm_extents + map->fm_mapped_extents);
}

/// The offset up to which `map` holds written blocks, from the start with no hole and no
/// block that is only reserved (FIEMAP_EXTENT_UNWRITTEN).
std::uint64_t written_up_to(const std::vector<fiemap_extent>& map)
{
    std::uint64_t end = 0;
    for (const fiemap_extent& e : map) {
        if (e.fe_logical != end || (e.fe_flags & FIEMAP_EXTENT_UNWRITTEN) != 0)
            break;
        end += e.fe_length;
    }
    return end;
}

void overwrite(const std::filesystem::path& path, std::uint64_t offset, const std::string& bytes)
{
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// The offsets of the groups in segment `path`, in order, up to the first header of zeros.
std::vector<std::uint64_t> group_offsets(const std::filesystem::path& path)
{
    namespace d = raftkv::wal::detail;
    std::ifstream in(path, std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::uint64_t> out;
    for (std::uint64_t at = d::segment_header_size; at + d::group_header_size <= data.size();) {
        if (data.compare(at, d::group_header_size, std::string(d::group_header_size, '\0')) == 0)
            break;
        out.push_back(at);
        at += d::align_up(d::group_header_size + d::get_u32(data.data() + at + 4));
    }
    return out;
}

/// Writes entries 1 to 200 of term 1 into `dir`, `per_group` a group (one sync each), over
/// 4 KiB segments: a log of several segments, each of a few groups.
void write_segmented_log(const std::filesystem::path& dir, index_t per_group)
{
    log_store s(dir, {.segment_bytes = 4096});
    for (index_t i = 1; i <= 200; i += per_group) {
        s.append(run(i, std::vector<term_t>(per_group, 1), 60));
        s.sync();
    }
}

/// Opening `dir` fails with an error naming `expected`: a raftkv::storage_error when the
/// disk failed (`failing_disk`), a plain std::runtime_error when the data does not check.
void check_open_fails(const std::filesystem::path& dir, const std::string& expected,
                      bool failing_disk = false)
{
    try {
        log_store s(dir);
    } catch (const std::runtime_error& e) {
        BOOST_TEST_INFO("error: " << e.what());
        BOOST_TEST(std::string(e.what()).find(expected) != std::string::npos);
        BOOST_TEST((dynamic_cast<const raftkv::storage_error*>(&e) != nullptr) == failing_disk);
        return;
    }
    BOOST_FAIL("opening " << dir << " succeeded; expected an error naming \"" << expected << "\"");
}

/// The 16-byte header of a segment of format `version`.
std::string segment_header(std::uint32_t version)
{
    namespace d = raftkv::wal::detail;
    std::string h(d::segment_header_size, '\0');
    d::put_u64(h.data(), d::segment_magic);
    d::put_u32(h.data() + 8, version);
    d::put_u32(h.data() + 12, d::crc32c(h.data(), 12));
    return h;
}

/// Writes segment `seq` of `dir` by hand: a header of format `version`, then one group of
/// `records` (already encoded as that version lays them out).
void write_segment(const std::filesystem::path& dir, std::uint64_t seq, std::uint32_t version,
                   const std::string& records)
{
    namespace d = raftkv::wal::detail;
    std::filesystem::create_directories(dir);
    if (!std::filesystem::exists(dir / "hardstate")) // as a store makes it, before any segment
        std::ofstream(dir / "hardstate", std::ios::binary) << std::string(2 * d::hard_state_slot, '\0');
    std::string group(d::group_header_size, '\0');
    group += records;
    d::seal_group(group, seq, d::segment_header_size);
    std::ofstream out(dir / d::segment_name(seq), std::ios::binary);
    const std::string data = segment_header(version) + group + std::string(256, '\0');
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

/// A version-1 compaction or snapshot record: kind, index, term and no configuration.
std::string v1_base_record(raftkv::wal::detail::record_kind kind, index_t index, term_t term)
{
    namespace d = raftkv::wal::detail;
    std::string r(d::v1_base_record_size, '\0');
    r[0] = static_cast<char>(kind);
    d::put_u64(r.data() + 1, index);
    d::put_u64(r.data() + 9, term);
    return r;
}

} // namespace

namespace raftkv {
inline std::ostream& boost_test_print_type(std::ostream& os, const log_entry& e)
{
    return os << "{index " << e.index << ", term " << e.term << ", " << e.data.size() << " bytes}";
}
} // namespace raftkv

BOOST_AUTO_TEST_CASE(passes_the_log_store_conformance_test)
{
    temp_dir dir;
    std::unique_ptr<log_store> store;
    raftkv::sim::log_store_conformance_options<log_store> o;
    o.open = [&]() -> log_store& {
        store.reset();
        store = std::make_unique<log_store>(dir / "log", log_store_options{.segment_bytes = 4096});
        return *store;
    };
    o.sync = [](log_store& s) { s.sync(); };
    raftkv::sim::check_log_store_conformance(o);
}

BOOST_AUTO_TEST_CASE(appends_return_before_they_are_durable_and_report_when_they_are)
{
    temp_dir dir;
    log_store s(dir / "log");
    std::atomic<int> reports{0};
    s.on_durable([&] { ++reports; });
    for (index_t i = 1; i <= 200; ++i)
        s.append(run(i, {1}));
    BOOST_TEST(s.last_index() == 200u);
    BOOST_TEST(s.durable_index() <= s.last_index());
    s.sync();
    BOOST_TEST(s.durable_index() == 200u);
    // The handler runs after the sync is published, so it may not have run yet when sync()
    // returns: waited for (briefly), not assumed.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (reports.load() == 0 && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    // Appends queued while a sync runs share the next one: fewer syncs than appends.
    BOOST_TEST(reports.load() >= 1);
    BOOST_TEST(reports.load() < 200);
    s.on_durable({}); // `reports` goes first
}

BOOST_AUTO_TEST_CASE(stats_count_every_group_its_entries_and_its_timings)
{
    temp_dir dir;
    log_store s(dir / "log");
    for (index_t i = 1; i <= 200; ++i)
        s.append(run(i, {1}));
    s.sync();
    const raftkv::wal::log_store_stats st = s.stats();
    BOOST_TEST(st.entries == 200u);
    BOOST_TEST(st.groups >= 1u);
    BOOST_TEST(st.groups <= 200u);
    BOOST_TEST(st.sync_ns.count() == st.groups);
    BOOST_TEST(st.write_ns.count() == st.groups);
    BOOST_TEST(st.group_bytes.count() == st.groups);
    BOOST_TEST(st.group_bytes.sum == st.bytes);
    BOOST_TEST(st.group_entries.sum == 200u);
    BOOST_TEST(st.append_to_durable_ns.count() == st.group_entries.count());
    BOOST_TEST(st.sync_ns.sum > 0u);
    // A compaction's group carries no entry: it counts as a sync, not in entries per group.
    s.compact(100, members_from(1));
    s.sync();
    const raftkv::wal::log_store_stats after = s.stats();
    BOOST_TEST(after.groups == st.groups + 1);
    BOOST_TEST(after.group_entries.count() == st.group_entries.count());
}

// A group written into reserved blocks makes its sync record them as written too, one more
// device round trip; the store writes zeros ahead so that most groups overwrite blocks.
BOOST_AUTO_TEST_CASE(blocks_ahead_of_the_records_are_written_before_the_records_reach_them)
{
    constexpr std::uint64_t ahead = 64 << 10;
    const log_store_options options{.segment_bytes = 1 << 20, .zero_ahead_bytes = ahead};
    temp_dir dir;
    std::filesystem::path segment;
    std::uint64_t first_stretch = 0;
    {
        log_store s(dir / "log", options);
        s.append(run(1, {1, 1, 1}, 100));
        s.sync();
        segment = segments(dir / "log").back();
        const std::optional<std::vector<fiemap_extent>> map = extents(segment);
        if (!map) {
            BOOST_TEST_MESSAGE("skipped: the file system does not map extents (FIEMAP)");
            return;
        }
        first_stretch = written_up_to(*map);
        BOOST_TEST(first_stretch >= data_end(segment) + ahead);
        BOOST_TEST(first_stretch < std::uint64_t{1} << 20);

        // Records go on into the zeros; the group that first passes them writes more.
        for (index_t i = 4; i <= 1003; ++i) {
            s.append(run(i, {1}, 100));
            if (i % 50 == 0) {
                s.sync();
                BOOST_TEST_INFO("after entry " << i);
                BOOST_TEST(written_up_to(extents(segment).value()) > data_end(segment));
            }
        }
        s.sync();
        BOOST_TEST(data_end(segment) > first_stretch);
        BOOST_TEST(written_up_to(extents(segment).value()) > data_end(segment));
    }
    // The zeros read as the end of the log, and a reopened store goes on after it.
    log_store s(dir / "log", options);
    BOOST_TEST(s.last_index() == 1003u);
    s.append(run(1004, {2}, 100));
    s.sync();
    BOOST_TEST(written_up_to(extents(segment).value()) > data_end(segment));
    BOOST_TEST((all_entries(s).back() == run(1004, {2}, 100).back()));
}

// Without zeros ahead, only the blocks that hold records are written; the rest of the
// segment stays reserved (which the test above relies on to tell the two apart). The
// segment is larger than the default zeros ahead, so zeros written anyway would show.
BOOST_AUTO_TEST_CASE(without_zeros_ahead_only_the_blocks_holding_records_are_written)
{
    temp_dir dir;
    log_store s(dir / "log", {.segment_bytes = 4 << 20, .zero_ahead_bytes = 0});
    s.append(run(1, {1, 1, 1}, 100));
    s.sync();
    const auto segment = segments(dir / "log").back();
    const std::optional<std::vector<fiemap_extent>> map = extents(segment);
    if (!map) {
        BOOST_TEST_MESSAGE("skipped: the file system does not map extents (FIEMAP)");
        return;
    }
    // A file system that cannot reserve blocks (posix_fallocate then writes them) has
    // nothing to convert, and nothing for this test to see.
    if (std::none_of(map->begin(), map->end(),
                     [](const fiemap_extent& e) { return (e.fe_flags & FIEMAP_EXTENT_UNWRITTEN) != 0; })) {
        BOOST_TEST_MESSAGE("skipped: the file system records no block as reserved but unwritten");
        return;
    }
    struct stat st {};
    BOOST_REQUIRE(::stat(segment.c_str(), &st) == 0);
    const auto block = static_cast<std::uint64_t>(st.st_blksize);
    BOOST_TEST(written_up_to(*map) >= data_end(segment));
    BOOST_TEST(written_up_to(*map) <= (data_end(segment) + block - 1) / block * block);
}

BOOST_AUTO_TEST_CASE(a_late_sync_does_not_cover_entries_that_replaced_what_it_wrote)
{
    temp_dir dir;
    log_store s(dir / "log");
    s.append(run(1, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
    s.append(run(5, {2, 2}));
    BOOST_TEST(s.durable_index() <= 6u);
    s.sync();
    BOOST_TEST(s.durable_index() == 6u);
    BOOST_TEST(s.term_at(4) == 1u);
    BOOST_TEST(s.term_at(6) == 2u);
}

BOOST_AUTO_TEST_CASE(everything_synced_survives_reopening_with_truncations_and_rollovers)
{
    temp_dir dir;
    std::vector<log_entry> expected;
    {
        log_store s(dir / "log", {.segment_bytes = 4096});
        s.save_hard_state({7, 3});
        s.append(run(1, std::vector<term_t>(100, 1), 40));
        s.sync();                                          // its own group, so the next one starts a segment
        s.append(run(90, std::vector<term_t>(50, 2), 40)); // replaces 90..100
        s.sync();
        expected = all_entries(s);
    }
    BOOST_TEST(segments(dir / "log").size() > 1u);
    log_store s(dir / "log", {.segment_bytes = 4096});
    BOOST_TEST(s.first_index() == 1u);
    BOOST_TEST(s.last_index() == 139u);
    BOOST_TEST(s.durable_index() == 139u);
    BOOST_TEST(all_entries(s) == expected, boost::test_tools::per_element());
    BOOST_TEST((s.saved_hard_state() == hard_state{7, 3}));
}

BOOST_AUTO_TEST_CASE(compaction_deletes_segments_it_made_obsolete_and_survives_reopening)
{
    temp_dir dir;
    {
        log_store s(dir / "log", {.segment_bytes = 4096});
        for (index_t i = 1; i <= 400; i += 10) {
            s.append(run(i, std::vector<term_t>(10, 1 + i / 100), 60));
            s.sync(); // one group each, so they spread over segments
        }
        const std::size_t before = s.segment_count();
        BOOST_TEST(before > 5u);
        s.compact(350, {});
        s.sync();
        BOOST_TEST(s.segment_count() < before);
        BOOST_TEST(segments(dir / "log").size() == s.segment_count());
    }
    log_store s(dir / "log", {.segment_bytes = 4096});
    BOOST_TEST(s.first_index() == 351u);
    BOOST_TEST(s.last_index() == 400u);
    BOOST_TEST(s.term_at(350) == 4u);
    BOOST_TEST(s.entries(351, 352, SIZE_MAX).front().data.substr(0, 6) == "351/4x");
}

BOOST_AUTO_TEST_CASE(a_snapshot_install_leaves_one_segment_and_restarts_the_log)
{
    temp_dir dir;
    {
        log_store s(dir / "log", {.segment_bytes = 4096});
        s.append(run(1, std::vector<term_t>(200, 1), 60));
        s.install_snapshot(snapshot_meta{1000, 5, {}});
        BOOST_TEST(s.durable_index() == 1000u);
        s.append(run(1001, {5, 6}));
        s.sync();
    }
    log_store s(dir / "log", {.segment_bytes = 4096});
    BOOST_TEST(s.segment_count() <= 2u); // the install's segment, and one the next append may start
    BOOST_TEST(s.first_index() == 1001u);
    BOOST_TEST(s.last_index() == 1002u);
    BOOST_TEST(s.term_at(1000) == 5u);
    BOOST_TEST(s.term_at(1002) == 6u);
}

BOOST_AUTO_TEST_CASE(a_torn_tail_is_cut_and_the_log_goes_on_after_it)
{
    temp_dir dir;
    {
        log_store s(dir / "log");
        s.append(run(1, {1, 1, 1}));
        s.sync();
        s.append(run(4, {1, 1}));
        s.sync();
    }
    // Damage the last group, as a crash in the middle of its write would.
    const auto segment = segments(dir / "log").back();
    const std::uint64_t end = data_end(segment);
    overwrite(segment, end - 5, "\x01\x02\x03");
    {
        log_store s(dir / "log");
        BOOST_TEST(s.last_index() == 3u);
        // The cut is reported: it looks the same as damage to the last group written.
        const auto& torn = s.recovered_torn_tail();
        BOOST_TEST_REQUIRE(torn.has_value());
        BOOST_TEST(torn->segment == segment);
        BOOST_TEST(torn->offset < end - 5);
        BOOST_TEST(torn->offset + torn->bytes == end);
        s.append(run(4, {2, 2, 2}));
        s.sync();
    }
    log_store s(dir / "log");
    BOOST_TEST(s.last_index() == 6u);
    BOOST_TEST(s.term_at(6) == 2u);
    BOOST_TEST(!s.recovered_torn_tail().has_value());
}

BOOST_AUTO_TEST_CASE(a_read_only_open_reads_the_log_and_changes_nothing)
{
    temp_dir dir;
    const raftkv::wal::log_store_options small{.segment_bytes = 4096, .zero_ahead_bytes = 0};
    {
        log_store s(dir / "log", small);
        s.save_hard_state({3, 2});
        s.append(run(1, {1, 1, 2}));
        s.sync();
        s.append(run(4, std::vector<raftkv::term_t>(40, 3), 200)); // a group of its own segment
        s.sync();
    }
    BOOST_TEST_REQUIRE(segments(dir / "log").size() == 2u);
    const auto segment = segments(dir / "log").back();
    const std::uint64_t end = data_end(segment);
    overwrite(segment, end - 5, "\x01\x02\x03"); // a torn tail
    const auto before = raftkv::test::directory_snapshot(dir / "log");
    {
        log_store s(dir / "log", {.read_only = true});
        BOOST_TEST(s.saved_hard_state().term == 3u);
        BOOST_TEST(s.first_index() == 1u);
        BOOST_TEST(s.last_index() == 3u); // the torn group is not read
        BOOST_TEST(s.term_at(3) == 2u);
        BOOST_TEST(s.segment_count() == 2u);
        BOOST_TEST_REQUIRE(s.recovered_torn_tail().has_value());
        BOOST_TEST(s.recovered_torn_tail()->segment == segment);
        // A second reader at once; a writer is refused meanwhile.
        log_store other(dir / "log", {.read_only = true});
        BOOST_TEST(other.last_index() == s.last_index());
        check_open_fails(dir / "log", "lock", true);
        raftkv::test::check_refused_read_only([&] { s.append(run(s.last_index() + 1, {3})); }, "append");
        raftkv::test::check_refused_read_only([&] { s.save_hard_state({4, 1}); }, "save_hard_state");
        raftkv::test::check_refused_read_only([&] { s.compact(1, {}); }, "compact");
        raftkv::test::check_refused_read_only([&] { s.sync(); }, "sync");
    }
    BOOST_TEST((raftkv::test::directory_snapshot(dir / "log") == before));

    // A running store's lock keeps a reader out; a missing directory reads as an empty log.
    {
        log_store writer(dir / "log");
        try {
            log_store s(dir / "log", {.read_only = true});
            BOOST_FAIL("a read-only open of a locked log succeeded");
        } catch (const raftkv::storage_error& e) {
            BOOST_TEST(std::string(e.what()).find("cannot lock") != std::string::npos, e.what());
        }
    }
    log_store none(dir / "missing", {.read_only = true});
    BOOST_TEST(none.last_index() == 0u);
    BOOST_TEST(!std::filesystem::exists(dir / "missing"));
}

BOOST_AUTO_TEST_CASE(garbage_after_the_last_group_is_a_torn_tail)
{
    temp_dir dir;
    {
        log_store s(dir / "log");
        s.append(run(1, {1, 1}));
        s.sync();
    }
    const auto segment = segments(dir / "log").back();
    const std::uint64_t end = (data_end(segment) + 7) / 8 * 8;
    overwrite(segment, end + 64, std::string(100, '\x5a'));
    log_store s(dir / "log");
    BOOST_TEST(s.last_index() == 2u);
    // The rest of a group whose first bytes never reached the disk: cut, and said.
    const auto& torn = s.recovered_torn_tail();
    BOOST_TEST_REQUIRE(torn.has_value());
    BOOST_TEST(torn->offset == end);
    BOOST_TEST(torn->bytes == 164u);
}

// Zeros are where the written data ends, unless a valid group follows them: that group was
// synced after the one whose header is zeros now, so the entries in between were durable.
BOOST_AUTO_TEST_CASE(a_group_header_of_zeros_followed_by_valid_data_is_corruption)
{
    temp_dir dir;
    {
        log_store s(dir / "log");
        s.append(run(1, {1, 1}, 100));
        s.sync();
        s.append(run(3, {1, 1}, 100));
        s.sync();
    }
    overwrite(segments(dir / "log").back(), 16, std::string(32, '\0'));
    check_open_fails(dir / "log", "a group header of zeros at offset 16 is followed by valid data at offset");
}

BOOST_AUTO_TEST_CASE(a_group_header_of_zeros_in_an_earlier_segment_is_corruption)
{
    temp_dir dir;
    write_segmented_log(dir / "log", 10);
    const auto first = segments(dir / "log").front();
    const std::vector<std::uint64_t> groups = group_offsets(first);
    BOOST_REQUIRE(groups.size() >= 2u);
    overwrite(first, groups[1], std::string(32, '\0'));
    check_open_fails(dir / "log", "is followed by valid data");
}

// An earlier segment zeroed from one of its groups on: the message says which entries are
// missing and where the log goes on, not only that a segment is missing.
BOOST_AUTO_TEST_CASE(entries_missing_from_the_end_of_an_earlier_segment_are_named)
{
    temp_dir dir;
    write_segmented_log(dir / "log", 10);
    const auto all = segments(dir / "log");
    BOOST_REQUIRE(all.size() >= 3u);
    const std::vector<std::uint64_t> groups = group_offsets(all[0]);
    BOOST_REQUIRE(groups.size() >= 2u);
    overwrite(all[0], groups[1], std::string(std::filesystem::file_size(all[0]) - groups[1], '\0'));
    check_open_fails(dir / "log", "entries 11 to ");
    check_open_fails(dir / "log", "are missing: the segments before this one end at entry 10");
}

BOOST_AUTO_TEST_CASE(damage_followed_by_valid_data_is_corruption)
{
    temp_dir dir;
    {
        log_store s(dir / "log");
        s.append(run(1, {1, 1}, 100));
        s.sync();
        s.append(run(3, {1, 1}, 100));
        s.sync();
    }
    // A byte inside the first group's payload (after the 16-byte segment and 32-byte group headers).
    overwrite(segments(dir / "log").back(), 16 + 32 + 40, "\xff");
    check_open_fails(dir / "log", "followed by valid data");
}

BOOST_AUTO_TEST_CASE(a_missing_segment_is_corruption)
{
    temp_dir dir;
    write_segmented_log(dir / "log", 20);
    const auto all = segments(dir / "log");
    BOOST_REQUIRE(all.size() >= 3u);
    std::filesystem::remove(all[1]);
    check_open_fails(dir / "log", "missing");
}

BOOST_AUTO_TEST_CASE(a_damaged_segment_that_is_not_the_last_is_corruption)
{
    temp_dir dir;
    write_segmented_log(dir / "log", 20);
    const auto first = segments(dir / "log").front();
    overwrite(first, data_end(first) - 3, "\x01");
    check_open_fails(dir / "log", "corrupt");
}

BOOST_AUTO_TEST_CASE(a_blank_last_segment_is_removed_and_the_one_before_it_goes_on)
{
    temp_dir dir;
    {
        log_store s(dir / "log", {.segment_bytes = 4096});
        s.append(run(1, {1, 1, 1}, 20));
        s.sync();
    }
    // A crash while starting the next segment: created and reserved, nothing written.
    const auto first = segments(dir / "log").back();
    {
        std::ofstream blank(dir / "log" / raftkv::wal::detail::segment_name(2), std::ios::binary);
        blank << std::string(4096, '\0');
    }
    {
        log_store s(dir / "log", {.segment_bytes = 4096});
        BOOST_TEST(s.last_index() == 3u);
        BOOST_TEST(segments(dir / "log") == std::vector<std::filesystem::path>{first});
        s.append(run(4, {1, 1}, 20));
        s.sync();
    }
    log_store s(dir / "log", {.segment_bytes = 4096});
    BOOST_TEST(s.last_index() == 5u);
    BOOST_TEST((all_entries(s) == run(1, {1, 1, 1, 1, 1}, 20)), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_torn_hard_state_write_leaves_the_previous_one)
{
    temp_dir dir;
    {
        log_store s(dir / "log");
        s.save_hard_state({1, 1});
        s.save_hard_state({2, 3});
    }
    // The second save went to slot 0 (counter 2); tear it.
    overwrite(dir / "log" / "hardstate", 20, "\xee");
    {
        log_store s(dir / "log");
        BOOST_TEST((s.saved_hard_state() == hard_state{1, 1}));
        s.save_hard_state({4, 2});
    }
    log_store s(dir / "log");
    BOOST_TEST((s.saved_hard_state() == hard_state{4, 2}));
}

BOOST_AUTO_TEST_CASE(a_missing_hard_state_beside_segments_is_refused)
{
    temp_dir dir;
    {
        log_store s(dir / "log");
        s.save_hard_state({3, 2});
        s.append(run(1, {1, 2, 3}, 20));
        s.sync();
    }
    std::filesystem::remove(dir / "log" / "hardstate");
    check_open_fails(dir / "log", "hardstate");
    BOOST_TEST(!std::filesystem::exists(dir / "log" / "hardstate"), "the refused open made a new one");
    // A new log makes its own.
    log_store s(dir / "fresh");
    BOOST_TEST((s.saved_hard_state() == hard_state{}));
}

BOOST_AUTO_TEST_CASE(two_stores_cannot_open_one_directory)
{
    temp_dir dir;
    log_store s(dir / "log");
    check_open_fails(dir / "log", "lock", true);
}

/// While it lives, this process's writes past `bytes` into a file fail with EFBIG, as on a
/// disk that refuses them (SIGXFSZ ignored meanwhile).
class file_size_limit {
public:
    explicit file_size_limit(rlim_t bytes) : old_handler_(std::signal(SIGXFSZ, SIG_IGN))
    {
        BOOST_TEST_REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_) == 0);
        rlimit limit = old_;
        limit.rlim_cur = bytes;
        BOOST_TEST_REQUIRE(::setrlimit(RLIMIT_FSIZE, &limit) == 0);
    }
    ~file_size_limit()
    {
        ::setrlimit(RLIMIT_FSIZE, &old_);
        std::signal(SIGXFSZ, old_handler_);
    }
    file_size_limit(const file_size_limit&) = delete;
    file_size_limit& operator=(const file_size_limit&) = delete;

private:
    void (*old_handler_)(int);
    rlimit old_{};
};

BOOST_AUTO_TEST_CASE(a_write_the_disk_refuses_is_a_storage_error_from_then_on)
{
    temp_dir dir;
    log_store s(dir / "log");
    s.append(run(1, {1}));
    s.sync();
    {
        const file_size_limit refuse_writes(1);
        s.append(run(2, {1}));
        BOOST_CHECK_THROW(s.sync(), raftkv::storage_error);
        BOOST_CHECK_THROW(s.save_hard_state(hard_state{2, 1}), raftkv::storage_error);
    }
    BOOST_TEST(s.failure().find("cannot write") != std::string::npos, s.failure());
    BOOST_TEST(s.durable_index() == 1u);
    // Sticky: the disk works again, but the page cache can no longer be trusted.
    BOOST_CHECK_THROW(s.append(run(3, {1})), raftkv::storage_error);
    BOOST_CHECK_THROW(s.sync(), raftkv::storage_error);
}

// A process killed without running any destructor: what sync() reported durable is there.
BOOST_AUTO_TEST_CASE(a_killed_process_loses_nothing_it_reported_durable)
{
    temp_dir dir;
    int fds[2];
    BOOST_REQUIRE(::pipe(fds) == 0);
    const pid_t child = ::fork();
    BOOST_REQUIRE(child >= 0);
    if (child == 0) {
        ::close(fds[0]);
        auto* s = new log_store(dir / "log", {.segment_bytes = 8192});
        index_t i = 1;
        for (;; i += 5) {
            s->append(run(i, {1, 1, 1, 1, 1}, 30));
            if (i % 50 == 1) {
                s->sync();
                const index_t d = s->durable_index();
                if (::write(fds[1], &d, sizeof d) != sizeof d)
                    ::_exit(1);
            }
        }
    }
    ::close(fds[1]);
    index_t reported = 0;
    for (int k = 0; k < 20; ++k)
        BOOST_REQUIRE(::read(fds[0], &reported, sizeof reported) == sizeof reported);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ::close(fds[0]);
    log_store s(dir / "log", {.segment_bytes = 8192});
    BOOST_TEST(s.last_index() >= reported);
    for (const auto& e : all_entries(s))
        BOOST_TEST(e.data.substr(0, e.data.find('/')) == std::to_string(e.index));
}

// The configuration at the base.

BOOST_AUTO_TEST_CASE(base_members_survive_reopening_after_compactions_rollovers_and_installs)
{
    temp_dir dir;
    {
        log_store s(dir / "log", {.segment_bytes = 4096});
        BOOST_TEST((s.base_members() == membership{}));
        for (index_t i = 1; i <= 200; i += 10) {
            s.append(run(i, std::vector<term_t>(10, 1), 60));
            s.sync(); // one group each, so they spread over segments
            if (i == 51)
                s.compact(40, members_from(1));
        }
        s.compact(150, members_from(2, true)); // deletes the segment of the first compaction
        s.compact(100, members_from(3));       // below the base: changes nothing
        BOOST_TEST((s.base_members() == members_from(2, true)));
        s.sync();
    }
    {
        log_store s(dir / "log", {.segment_bytes = 4096});
        BOOST_TEST(s.first_index() == 151u);
        BOOST_TEST(s.last_index() == 200u);
        BOOST_TEST((s.base_members() == members_from(2, true)));
        s.install_snapshot(snapshot_meta{500, 3, members_from(4)});
        BOOST_TEST((s.base_members() == members_from(4)));
    }
    {
        log_store s(dir / "log", {.segment_bytes = 4096});
        BOOST_TEST(s.first_index() == 501u);
        BOOST_TEST((s.base_members() == members_from(4)));
        s.append(run(501, {3, 3}));
        s.sync();
        s.compact(501, {});
        s.sync();
    }
    log_store s(dir / "log", {.segment_bytes = 4096});
    BOOST_TEST(s.first_index() == 502u);
    BOOST_TEST((s.base_members() == membership{}));
}

BOOST_AUTO_TEST_CASE(an_unsynced_compaction_is_lost_with_its_members_but_never_half)
{
    temp_dir dir;
    {
        log_store s(dir / "log");
        s.append(run(1, {1, 1, 1, 1}));
        s.sync();
        s.compact(2, members_from(1));
        s.sync();
    }
    // Cut the last group (the second compaction's), as a crash before its sync would.
    {
        log_store s(dir / "log");
        s.compact(3, members_from(5));
    }
    const auto segment = segments(dir / "log").back();
    const std::uint64_t end = data_end(segment);
    overwrite(segment, end - 3, "\x01\x02\x03");
    log_store s(dir / "log");
    BOOST_TEST(s.first_index() == 3u);
    BOOST_TEST(s.last_index() == 4u);
    BOOST_TEST((s.base_members() == members_from(1)));
}

BOOST_AUTO_TEST_CASE(bootstrap_install_at_index_zero_keeps_the_log_empty_and_the_members_durable)
{
    temp_dir dir;
    {
        log_store s(dir / "log");
        s.install_snapshot(snapshot_meta{0, 0, members_from(1)});
        BOOST_TEST(s.first_index() == 1u);
        BOOST_TEST(s.last_index() == 0u);
        BOOST_TEST(s.durable_index() == 0u);
    }
    {
        log_store s(dir / "log");
        BOOST_TEST(s.first_index() == 1u);
        BOOST_TEST(s.last_index() == 0u);
        BOOST_TEST(s.term_at(0) == 0u);
        BOOST_TEST((s.base_members() == members_from(1)));
        s.append(run(1, {1, 1}));
        s.sync();
    }
    log_store s(dir / "log");
    BOOST_TEST((all_entries(s) == run(1, {1, 1})), boost::test_tools::per_element());
    BOOST_TEST((s.base_members() == members_from(1)));
}

BOOST_AUTO_TEST_CASE(a_version_1_log_opens_with_empty_members_and_goes_on_in_a_new_segment)
{
    namespace d = raftkv::wal::detail;
    temp_dir dir;
    // What a build from before configurations wrote: entries 1..6, then a compaction to 3.
    std::string records;
    for (const log_entry& e : run(1, {1, 1, 2, 2, 2, 2}))
        d::put_entry_record(records, e);
    records += v1_base_record(d::record_kind::compact, 3, 2);
    write_segment(dir / "log", 1, 1, records);
    {
        log_store s(dir / "log");
        BOOST_TEST(s.first_index() == 4u);
        BOOST_TEST(s.last_index() == 6u);
        BOOST_TEST(s.term_at(3) == 2u);
        BOOST_TEST((s.base_members() == membership{}));
        const std::vector<log_entry> written = run(1, {1, 1, 2, 2, 2, 2});
        BOOST_TEST((all_entries(s) == std::vector<log_entry>(written.begin() + 3, written.end())),
                   boost::test_tools::per_element());
        // Records of this version never go into a version-1 segment.
        BOOST_TEST(s.segment_count() == 2u);
        s.append(run(7, {3}));
        s.sync();
    }
    {
        log_store s(dir / "log");
        BOOST_TEST(s.last_index() == 7u);
        BOOST_TEST((s.base_members() == membership{}));
        s.compact(7, members_from(1));
        s.sync();
        BOOST_TEST(s.segment_count() == 1u); // the version-1 segment held only entries up to 6
    }
    log_store s(dir / "log");
    BOOST_TEST(s.first_index() == 8u);
    BOOST_TEST((s.base_members() == members_from(1)));
}

BOOST_AUTO_TEST_CASE(a_version_1_snapshot_record_gives_empty_members)
{
    namespace d = raftkv::wal::detail;
    temp_dir dir;
    std::string records = v1_base_record(d::record_kind::snapshot, 40, 5);
    d::put_entry_record(records, log_entry{5, 41, raftkv::entry_type::normal, "x"});
    write_segment(dir / "log", 1, 1, records);
    log_store s(dir / "log");
    BOOST_TEST(s.first_index() == 41u);
    BOOST_TEST(s.last_index() == 41u);
    BOOST_TEST(s.term_at(40) == 5u);
    BOOST_TEST((s.base_members() == membership{}));
}

BOOST_AUTO_TEST_CASE(a_record_whose_members_do_not_decode_is_corruption)
{
    namespace d = raftkv::wal::detail;
    temp_dir dir;
    std::string members = raftkv::encode_membership(members_from(1));
    members.pop_back();
    std::string records;
    d::put_entry_record(records, log_entry{1, 1, raftkv::entry_type::normal, "x"});
    d::put_base_record(records, d::record_kind::compact, 1, 1, members);
    write_segment(dir / "log", 1, d::format_version, records);
    check_open_fails(dir / "log", "malformed record");
}

BOOST_AUTO_TEST_CASE(an_entry_with_a_lower_term_than_the_base_is_corruption)
{
    namespace d = raftkv::wal::detail;
    for (const auto kind : {d::record_kind::compact, d::record_kind::snapshot}) {
        temp_dir dir;
        std::string records;
        d::put_base_record(records, kind, 3, 5, raftkv::encode_membership(members_from(1)));
        d::put_entry_record(records, log_entry{4, 4, raftkv::entry_type::normal, "x"});
        write_segment(dir / "log", 1, d::format_version, records);
        check_open_fails(dir / "log", "entry 4 has a lower term than the base 3");
    }
}

BOOST_AUTO_TEST_CASE(a_record_at_the_last_possible_index_is_corruption)
{
    // A base there would make first_index() wrap to 0; an entry there, last_index() + 1.
    namespace d = raftkv::wal::detail;
    constexpr raftkv::index_t last = std::numeric_limits<raftkv::index_t>::max();
    for (const auto kind : {d::record_kind::compact, d::record_kind::snapshot, d::record_kind::entry}) {
        temp_dir dir;
        std::string records;
        if (kind == d::record_kind::entry)
            d::put_entry_record(records, log_entry{1, last, raftkv::entry_type::normal, "x"});
        else
            d::put_base_record(records, kind, last, 5, raftkv::encode_membership(members_from(1)));
        write_segment(dir / "log", 1, d::format_version, records);
        check_open_fails(dir / "log", "names index 18446744073709551615, past the last a log can hold");
    }
}

BOOST_AUTO_TEST_CASE(a_segment_of_a_later_version_is_refused)
{
    temp_dir dir;
    write_segment(dir / "log", 1, raftkv::wal::detail::format_version + 1, "");
    check_open_fails(dir / "log", "bad segment header");
}
