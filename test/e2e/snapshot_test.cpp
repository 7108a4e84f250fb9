// raftkv-server with snapshots and log compaction: nodes compact their logs under load, a
// follower that missed compacted entries catches up from a snapshot, a node whose log lost
// applied entries refuses to run, and the log and memory stay bounded over many writes and
// with large values.
#define BOOST_TEST_MODULE raftkv_e2e_snapshot
#include <boost/test/unit_test.hpp>

#include "harness.hpp"
#include "three_nodes.hpp"

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace raftkv::e2e;
using clock_type = std::chrono::steady_clock;

const std::vector<std::string> small_snapshots = {"--snapshot-entries", "200", "--snapshot-catchup-entries",
                                                  "50"};

double seconds_since(clock_type::time_point start)
{
    return std::chrono::duration<double>(clock_type::now() - start).count();
}

/// Three running nodes with small snapshot settings and an elected leader.
struct small_snapshot_nodes : three_nodes {
    small_snapshot_nodes() : three_nodes(small_snapshots) {}

    node_status status_of(std::uint64_t id)
    {
        auto s = get_status(c.http_port(id));
        BOOST_TEST_REQUIRE(s.has_value(), "no /status from node " << id);
        return *s;
    }

    /// Waits until every running node has applied what the leader has committed.
    bool wait_applied_everywhere(milliseconds timeout)
    {
        return wait_until(
            [&] {
                const auto l = get_status(c.http_port(leader), 1s);
                if (!l)
                    return false;
                for (auto id : c.running_ids()) {
                    const auto s = get_status(c.http_port(id), 1s);
                    if (!s || s->applied_index < l->commit_index)
                        return false;
                }
                return true;
            },
            timeout);
    }

    void require_writes(std::uint64_t via, std::string_view prefix, std::size_t count)
    {
        const load_result r = put_many(c.http_port(via), prefix, count);
        BOOST_TEST_MESSAGE(count << " writes with prefix " << prefix << " through node " << via << " in "
                                 << r.seconds << " s (" << static_cast<int>(r.per_second()) << "/s)");
        BOOST_TEST_REQUIRE(r.failed == 0u, r.failed << " writes failed; the first: " << r.first_failure);
    }

    void check_readable(std::uint64_t via, std::string_view prefix, std::size_t count)
    {
        const load_result r = get_many(c.http_port(via), prefix, count);
        BOOST_TEST(r.failed == 0u, r.failed << " of " << count << " keys with prefix " << prefix
                                            << " unreadable through node " << via
                                            << "; the first: " << r.first_failure);
    }
};

/// The newest segment of the write-ahead log (wal-<number>.log, the highest number) in `dir`.
std::filesystem::path newest_wal_segment(const std::filesystem::path& dir)
{
    std::filesystem::path newest;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        const auto name = e.path().filename().string();
        if (name.starts_with("wal-") && (newest.empty() || name > newest.filename().string()))
            newest = e.path();
    }
    return newest;
}

/// Where the data written to `file` ends: segments are reserved ahead, and zero after it.
std::uintmax_t data_end(const std::filesystem::path& file)
{
    std::ifstream in(file, std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::size_t end = data.size();
    while (end > 0 && data[end - 1] == '\0')
        --end;
    return end;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(three_nodes_with_small_snapshots, small_snapshot_nodes)

BOOST_AUTO_TEST_CASE(every_node_snapshots_and_compacts_its_log_under_a_write_load)
{
    require_writes(followers()[0], "load-", 1000);
    BOOST_TEST_REQUIRE(wait_applied_everywhere(10s), "the nodes did not all apply the writes within 10 s");
    for (std::uint64_t id = 1; id <= 3; ++id) {
        // A snapshot is taken at once and made durable in the background; the log is
        // compacted behind it once it is.
        wait_until(
            [&] {
                const node_status s = status_of(id);
                return s.first_index + 50 >= s.snapshot_index + 1;
            },
            5s);
        const node_status s = status_of(id);
        BOOST_TEST_MESSAGE("node " << id << ": first_index " << s.first_index << ", snapshot_index "
                                   << s.snapshot_index << ", last_index " << s.last_index);
        BOOST_TEST(s.snapshot_index > 0u, "node " << id << " took no snapshot");
        BOOST_TEST(s.first_index > 1u, "node " << id << " compacted nothing");
        // The log keeps the catch-up tail of 50 entries behind the latest snapshot.
        BOOST_TEST((s.first_index <= s.snapshot_index + 1 && s.first_index + 50 >= s.snapshot_index + 1),
                   "node " << id);
        BOOST_TEST((s.snapshot_term > 0u && s.snapshot_term <= s.term), "node " << id);
        // A snapshot every 200 entries, the log dropped up to 50 entries before it: never
        // the whole log of 1000 entries.
        BOOST_TEST(s.last_index - s.first_index < 200u + 50u, "node " << id << " keeps too much log");
    }
    for (std::uint64_t id = 1; id <= 3; ++id)
        check_readable(id, "load-", 1000);
}

BOOST_AUTO_TEST_CASE(a_follower_that_missed_compacted_entries_catches_up_from_a_snapshot)
{
    const std::uint64_t f = followers()[0], g = followers()[1];
    require_writes(leader, "before-", 300);
    BOOST_TEST_REQUIRE(wait_applied_everywhere(10s));
    const std::uint64_t f_last = status_of(f).last_index;
    c.kill9(f);

    // Enough writes that the leader's log no longer holds what f needs next.
    require_writes(leader, "while-down-", 1500);
    const node_status before_restart = status_of(leader);
    BOOST_TEST_REQUIRE(before_restart.first_index > f_last + 1, "the leader kept its log from index "
                                                                    << before_restart.first_index << "; node "
                                                                    << f << " ends at " << f_last);

    const auto restarted = clock_type::now();
    c.start(f);
    node_status caught_up;
    const bool ok = wait_until(
        [&] {
            const auto s = get_status(c.http_port(f), 1s);
            if (s)
                caught_up = *s;
            return s && s->applied_index >= before_restart.commit_index;
        },
        20s);
    BOOST_TEST_REQUIRE(ok, "node " << f << " applied only " << caught_up.applied_index << " of "
                                   << before_restart.commit_index << " within 20 s of its restart");
    BOOST_TEST_MESSAGE("node " << f << " caught up in " << seconds_since(restarted) << " s: snapshot_index "
                               << caught_up.snapshot_index << ", applied_index " << caught_up.applied_index);
    BOOST_TEST(caught_up.snapshot_index >= before_restart.first_index - 1,
               "node " << f << " did not install a snapshot: its log starts after "
                       << caught_up.snapshot_index);

    // With g down, every write needs f: f appends after the snapshot it installed.
    c.kill9(g);
    require_writes(leader, "after-", 300);

    // f holds writes the restarted g lacks, so once the leader is gone only f can win: the
    // reads below come from f's own state machine.
    c.kill9(leader);
    c.start(g);
    const auto new_leader = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(new_leader.has_value(), "no leader among nodes " << f << " and " << g);
    BOOST_TEST_REQUIRE(*new_leader == f);
    check_readable(f, "before-", 300);
    check_readable(f, "while-down-", 1500);
    check_readable(f, "after-", 300);
    require_writes(g, "new-", 100);
    check_readable(g, "new-", 100);
}

BOOST_AUTO_TEST_CASE(a_follower_whose_data_was_wiped_stops_instead_of_serving)
{
    const std::uint64_t f = followers()[0], g = followers()[1];
    require_writes(leader, "k-", 300);
    BOOST_TEST_REQUIRE(wait_applied_everywhere(10s));
    BOOST_TEST_REQUIRE(c.terminate(f).has_value());
    std::filesystem::remove_all(c.spec(f).data_dir);

    // It starts (an empty directory is a new node), then a peer that recorded its old data
    // directory greets it: it must stop, not serve from an empty state (docs/server.md, "A
    // lost data directory"; before incarnations, the leader's commit index stopped it).
    const auto started = clock_type::now();
    c.start(f);
    const bool stopped = wait_until([&] { return !c.running(f); }, 10s);
    BOOST_TEST_REQUIRE(stopped, "node " << f << " with a wiped data directory still runs after 10 s");
    BOOST_TEST_MESSAGE("node " << f << " stopped " << seconds_since(started) << " s after it started");
    const auto st = c.exit_of(f);
    BOOST_TEST_REQUIRE(st.has_value());
    BOOST_TEST((st->exited && st->code == 1), *st);
    const std::string log = read_tail(c.spec(f).log_file);
    BOOST_TEST(log.find("fatal: peer ") != std::string::npos, log);
    BOOST_TEST(
        log.find("knows node " + std::to_string(f) + " by another data directory") != std::string::npos, log);
    BOOST_TEST(log.find("this node's data was lost") != std::string::npos, log);

    require_writes(g, "k2-", 50);
    check_readable(g, "k-", 300);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(a_node_whose_log_was_truncated_refuses_to_start)
{
    cluster c{3};
    const auto leader = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(leader.has_value());
    const std::uint64_t f = *leader % 3 + 1, g = 6 - *leader - f; // the two followers
    const load_result w = put_many(c.http_port(*leader), "k-", 500);
    BOOST_TEST_REQUIRE(w.failed == 0u, w.first_failure);
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            const auto l = get_status(c.http_port(*leader));
            const auto s = get_status(c.http_port(f));
            return l && s && s->applied_index >= l->commit_index;
        },
        10s));
    const auto stopped = c.terminate(f);
    BOOST_TEST_REQUIRE(stopped.has_value());
    BOOST_TEST((stopped->exited && stopped->code == 0), *stopped);

    // The node stopped cleanly, so its state machine checkpointed everything it applied.
    // Cut the newest log segment's data in half: the log now ends before what was applied.
    const auto file = newest_wal_segment(c.spec(f).data_dir / "wal");
    BOOST_TEST_REQUIRE(!file.empty(), "no wal-*.log file in " << (c.spec(f).data_dir / "wal"));
    const auto size = data_end(file);
    std::filesystem::resize_file(file, size / 2);
    BOOST_TEST_MESSAGE("truncated " << file << " from " << size << " to " << size / 2 << " bytes");

    const auto started = clock_type::now();
    const run_result r = run_server(c.args(f), 10s, c.dir().path());
    BOOST_TEST_MESSAGE("exited after " << seconds_since(started) << " s: " << r.err);
    BOOST_TEST_REQUIRE(r.status.has_value(), "the node with a truncated log still runs after 10 s");
    BOOST_TEST((r.status->exited && r.status->code == 1), *r.status << ", stderr: " << r.err);
    BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1, "not one line: [" << r.err << "]");
    BOOST_TEST(r.err.find(" error node=" + std::to_string(f) + " term=") != std::string::npos, r.err);
    BOOST_TEST(r.err.find("cannot start: raftkv: the state machine applied index ") != std::string::npos,
               r.err);
    BOOST_TEST(r.err.find("was the raft log corrupted, truncated, or lost?\n") != std::string::npos, r.err);

    // The other two still form a majority.
    const load_result more = put_many(c.http_port(g), "more-", 50);
    BOOST_TEST(more.failed == 0u, more.first_failure);
    const load_result read = get_many(c.http_port(g), "k-", 500);
    BOOST_TEST(read.failed == 0u, read.first_failure);
}

// A single node whose state directory was lost after its log was compacted has no leader to
// send it a snapshot: it cannot serve, and its log says why at start-up.
BOOST_AUTO_TEST_CASE(a_node_whose_state_was_lost_behind_a_compacted_log_says_so)
{
    cluster c{1, true, {"--snapshot-entries", "50", "--snapshot-catchup-entries", "10"}};
    BOOST_TEST_REQUIRE(c.wait_ready(20s).has_value());
    const load_result w = put_many(c.http_port(1), "k-", 200);
    BOOST_TEST_REQUIRE(w.failed == 0u, w.first_failure);
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            const auto s = get_status(c.http_port(1));
            return s && s->first_index > 1;
        },
        10s));
    const auto stopped = c.terminate(1);
    BOOST_TEST_REQUIRE((stopped.has_value() && stopped->exited));
    std::filesystem::remove_all(c.spec(1).data_dir / "state");
    c.start(1);
    const std::string expected = "is behind the start of the log (first index ";
    BOOST_TEST(
        wait_until([&] { return read_tail(c.spec(1).log_file).find(expected) != std::string::npos; }, 5s),
        read_tail(c.spec(1).log_file));
    BOOST_TEST(read_tail(c.spec(1).log_file).find("until a leader sends it a snapshot") != std::string::npos);
    BOOST_TEST(c.running(1));
}

// The log's segments are reserved 64 MiB at a time and deleted once a durable snapshot covers
// them, so the log directory stays at one or two segments where an uncompacted log would
// grow with every write; the node holds only the retained log in memory.
// Large values: 1000 catch-up entries of 64 KiB would keep 64 MiB of log (in memory too);
// --snapshot-catchup-bytes keeps 256 KiB of them, and 0 turns that bound off.
BOOST_AUTO_TEST_CASE(large_values_keep_at_most_snapshot_catchup_bytes_of_log)
{
    const std::string value(64 * 1024, 'v');
    for (const std::string budget : {"262144", "0"}) {
        BOOST_TEST_CONTEXT("--snapshot-catchup-bytes " << budget)
        {
            cluster c{1,
                      true,
                      {"--snapshot-entries", "20", "--snapshot-catchup-entries", "1000",
                       "--snapshot-catchup-bytes", budget}};
            BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
            const auto port = c.http_port(1);
            for (int k = 0; k < 150; ++k)
                BOOST_TEST_REQUIRE(put(port, "big-" + std::to_string(k % 10), value).status == 200);
            // The log is dropped once the state machine's checkpoint of the last snapshot
            // is on disk, which takes a moment.
            std::optional<node_status> s;
            const bool bounded = wait_until(
                [&] {
                    s = get_status(port);
                    return s && s->snapshot_index >= 140u && s->first_index > 1u &&
                           s->snapshot_index - s->first_index + 1 <= 3u;
                },
                budget == "0" ? 2s : 10s);
            BOOST_TEST_REQUIRE(s.has_value());
            BOOST_TEST_MESSAGE("first_index " << s->first_index << ", snapshot_index " << s->snapshot_index
                                              << ", last_index " << s->last_index);
            BOOST_TEST(s->snapshot_index >= 140u);
            if (budget == "0") {
                BOOST_TEST(!bounded);
                BOOST_TEST(s->first_index == 1u);
            } else {
                // Four entries of 64 KiB (and a few bytes of key) do not fit in 256 KiB.
                BOOST_TEST(bounded);
            }
            BOOST_TEST(get(port, "big-9").status == 200);
        }
    }
}

BOOST_AUTO_TEST_CASE(the_log_and_memory_stay_bounded_over_100000_writes)
{
    cluster c{1, true, {"--snapshot-entries", "1000", "--snapshot-catchup-entries", "500"}};
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    const auto port = c.http_port(1);
    const auto log_dir = c.spec(1).data_dir / "wal";
    constexpr std::size_t clients = 32, distinct_keys = 10'000, step = 10'000;

    struct sample {
        std::size_t writes;
        std::uint64_t log_bytes, rss_kib;
        node_status status;
    };
    std::vector<sample> samples;
    load_result total;
    for (std::size_t written = step; written <= 100'000; written += step) {
        const load_result r = put_many(port, "k-", step, clients, distinct_keys);
        BOOST_TEST_REQUIRE(r.failed == 0u, r.failed << " writes failed; the first: " << r.first_failure);
        total.ok += r.ok;
        total.seconds += r.seconds;
        const auto s = get_status(port);
        BOOST_TEST_REQUIRE(s.has_value());
        samples.push_back({written, directory_bytes(log_dir), rss_kib(c.pid(1)), *s});
        BOOST_TEST_MESSAGE("after " << written << " writes: log dir " << samples.back().log_bytes / 1024
                                    << " KiB, RSS " << samples.back().rss_kib << " KiB, first_index "
                                    << s->first_index << ", last_index " << s->last_index);
    }
    BOOST_TEST_MESSAGE(total.ok << " writes in " << total.seconds << " s ("
                                << static_cast<int>(total.per_second()) << "/s)");
    const sample& early = samples[1];
    const sample& late = samples.back();
    std::uint64_t peak_log_bytes = 0;
    for (std::size_t k = 2; k < samples.size(); ++k)
        peak_log_bytes = std::max(peak_log_bytes, samples[k].log_bytes);
    BOOST_TEST(late.status.first_index > 90'000u);
    BOOST_TEST(late.log_bytes < 2 * early.log_bytes);
    BOOST_TEST(peak_log_bytes < 3 * early.log_bytes);
    BOOST_TEST(late.rss_kib < early.rss_kib * 3 / 2 + 16 * 1024);
    const load_result read = get_many(port, "k-", distinct_keys, clients);
    BOOST_TEST(read.failed == 0u, read.first_failure);
}
