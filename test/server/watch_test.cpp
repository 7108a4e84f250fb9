// The change journal behind GET /watch: what counts as a change, bounds, replay, the 410
// decision after evictions, restores and gaps, and waking; and the watch request's checks.

#define BOOST_TEST_MODULE server_watch
#include <boost/test/unit_test.hpp>

#include "watch.hpp"

#include <raftkv/kv_command.hpp>

#include <string>
#include <vector>

namespace {

using namespace raftkv;
using namespace raftkv::server;

log_entry entry(index_t index, std::string data, entry_type type = entry_type::normal)
{
    log_entry e;
    e.index = index;
    e.term = 1;
    e.type = type;
    e.data = std::move(data);
    return e;
}

// Feeds `entries` as one apply batch; deletes find their key unless listed in `absent`.
void apply(change_journal& j, const std::vector<log_entry>& entries, std::vector<index_t> absent = {})
{
    std::vector<kv_result> results(entries.size());
    for (std::size_t k = 0; k < entries.size(); ++k) {
        results[k].found = true;
        for (const index_t a : absent)
            if (entries[k].index == a)
                results[k].found = false;
    }
    j.applied(entries, results);
}

std::vector<index_t> indexes(const change_journal::read_result& r)
{
    std::vector<index_t> out;
    for (const change& c : r.changes)
        out.push_back(c.index);
    return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_change_is_a_put_or_a_delete_that_found_its_key)
{
    const kv_command put{kv_command_op::put, "k", "v"};
    const kv_command del{kv_command_op::del, "k", ""};
    const kv_command meta{kv_command_op::meta, "node.1.http", "x"};
    BOOST_TEST((change_of(put, kv_result{true}) == change_kind::put));
    BOOST_TEST((change_of(del, kv_result{true}) == change_kind::del));
    BOOST_TEST(!change_of(del, kv_result{false}));
    BOOST_TEST(!change_of(meta, kv_result{true}));
    // A conditional write whose precondition did not hold changed nothing.
    kv_result failed{true};
    failed.status = kv_status::precondition_failed;
    BOOST_TEST(!change_of(put, failed));
    BOOST_TEST(!change_of(del, failed));
    // Nor did a retry of a session's write already applied.
    kv_result replayed{true};
    replayed.replayed = true;
    BOOST_TEST(!change_of(put, replayed));
    BOOST_TEST(!change_of(del, replayed));
    kv_result stale{false};
    stale.status = kv_status::stale_sequence;
    BOOST_TEST(!change_of(put, stale));
}

BOOST_AUTO_TEST_CASE(records_changes_in_order_and_replays_them_by_key_or_prefix)
{
    change_journal j;
    j.start_at(0);
    apply(j,
          {entry(1, encode_put("a/1", "x")), entry(2, encode_meta("node.1.http", "h")),
           entry(3, encode_put("b/1", "y")), entry(4, encode_del("a/1")), entry(5, encode_del("a/2")),
           entry(6, "", entry_type::noop), entry(7, "garbage")},
          {5});
    BOOST_TEST(j.applied() == 7u);
    BOOST_TEST(j.size() == 3u);

    const auto all = j.read(1, "", true, 1 << 20);
    BOOST_TEST((all.status == change_journal::read_status::ok));
    BOOST_TEST(indexes(all) == (std::vector<index_t>{1, 3, 4}));
    BOOST_TEST((all.changes[2].kind == change_kind::del));
    BOOST_TEST(all.changes[0].value == "x");
    BOOST_TEST(all.next == 8u);

    BOOST_TEST(indexes(j.read(1, "a/", true, 1 << 20)) == (std::vector<index_t>{1, 4}));
    BOOST_TEST(indexes(j.read(1, "a/", false, 1 << 20)).empty());
    BOOST_TEST(indexes(j.read(1, "b/1", false, 1 << 20)) == (std::vector<index_t>{3}));
    BOOST_TEST(indexes(j.read(4, "", true, 1 << 20)) == (std::vector<index_t>{4}));
    // From the future: nothing yet, and the next read starts there.
    const auto later = j.read(20, "", true, 1 << 20);
    BOOST_TEST(later.changes.empty());
    BOOST_TEST(later.next == 20u);
}

BOOST_AUTO_TEST_CASE(a_read_is_cut_by_its_byte_budget_but_returns_at_least_one_change)
{
    change_journal j;
    j.start_at(0);
    apply(j, {entry(1, encode_put("k", std::string(1000, 'a'))),
              entry(2, encode_put("k", std::string(1000, 'b'))),
              entry(3, encode_put("k", std::string(1000, 'c')))});
    const auto first = j.read(1, "k", false, 10);
    BOOST_TEST(indexes(first) == (std::vector<index_t>{1}));
    BOOST_TEST(first.next == 2u);
    const auto two = j.read(first.next, "k", false, 2200);
    BOOST_TEST(indexes(two) == (std::vector<index_t>{2, 3}));
    BOOST_TEST(two.next == 4u);
}

BOOST_AUTO_TEST_CASE(bounds_evict_the_oldest_changes_and_make_them_gone)
{
    change_journal j{{.max_entries = 3, .max_bytes = std::size_t{1} << 20}};
    j.start_at(10);
    BOOST_TEST(j.resumable_from() == 11u);
    for (index_t i = 11; i <= 15; ++i)
        apply(j, {entry(i, encode_put("k" + std::to_string(i), "v"))});
    BOOST_TEST(j.size() == 3u);
    BOOST_TEST(j.resumable_from() == 13u);
    BOOST_TEST((j.read(12, "", true, 1 << 20).status == change_journal::read_status::gone));
    BOOST_TEST(indexes(j.read(13, "", true, 1 << 20)) == (std::vector<index_t>{13, 14, 15}));
    // Before the journal started: gone, with why.
    const auto before = change_journal{}.read(1, "", true, 1);
    BOOST_TEST((before.status == change_journal::read_status::ok)); // not started: nothing known is missing

    change_journal small{{.max_entries = 1000, .max_bytes = 3 * (64 + 1 + 100)}};
    small.start_at(0);
    for (index_t i = 1; i <= 10; ++i)
        apply(small, {entry(i, encode_put("k", std::string(100, 'x')))});
    BOOST_TEST(small.size() == 3u);
    BOOST_TEST(small.bytes() <= 3u * (64 + 1 + 100));
    BOOST_TEST(small.resumable_from() == 8u);
}

BOOST_AUTO_TEST_CASE(the_journal_starts_where_the_node_opened_and_skips_re_applied_entries)
{
    change_journal j;
    j.start_at(100);
    const auto r = j.read(50, "", true, 1 << 20);
    BOOST_TEST((r.status == change_journal::read_status::gone));
    BOOST_TEST(r.reason.find("started") != std::string::npos);
    apply(j, {entry(101, encode_put("a", "1")), entry(102, encode_put("a", "2"))});
    // A node opened again after a storage failure re-applies from its checkpoint.
    j.start_at(90);
    apply(j,
          {entry(95, encode_put("a", "0")), entry(96, encode_put("a", "1")), entry(101, encode_put("a", "1")),
           entry(102, encode_put("a", "2")), entry(103, encode_put("a", "3"))});
    BOOST_TEST(indexes(j.read(101, "a", false, 1 << 20)) == (std::vector<index_t>{101, 102, 103}));
    BOOST_TEST(j.resumable_from() == 101u);
}

BOOST_AUTO_TEST_CASE(changes_recovered_from_the_log_start_the_journal_and_leave_out_what_changed_nothing)
{
    change_journal j{{.max_entries = 4, .max_bytes = std::size_t{1} << 20}};
    // Read back in two chunks; 21 and 24 changed nothing (a failed precondition, a delete of
    // an absent key), 23 is a meta record.
    const std::vector<index_t> unchanged{21, 24};
    j.recovered(std::vector<log_entry>{entry(20, encode_put("a", "0")), entry(21, encode_put("a", "x")),
                                       entry(22, encode_put("b", "1"))},
                unchanged);
    j.recovered(std::vector<log_entry>{entry(23, encode_meta("node.1.http", "h")), entry(24, encode_del("c")),
                                       entry(25, encode_del("a")), entry(26, "", entry_type::noop),
                                       entry(27, encode_put("d", "2")), entry(28, encode_put("e", "3"))},
                unchanged);
    j.start_at(28);
    BOOST_TEST(j.applied() == 28u);
    // Bounded as any other changes: 20 went first.
    BOOST_TEST(j.resumable_from() == 21u);
    const auto all = j.read(21, "", true, 1 << 20);
    BOOST_TEST_REQUIRE((all.status == change_journal::read_status::ok));
    BOOST_TEST(indexes(all) == (std::vector<index_t>{22, 25, 27, 28}));
    BOOST_TEST((all.changes[1].kind == change_kind::del));
    BOOST_TEST(all.changes[1].key == "a");
    BOOST_TEST(all.changes[2].value == "2");
    const auto before = j.read(19, "", true, 1 << 20);
    BOOST_TEST((before.status == change_journal::read_status::gone));
    // The node goes on after them.
    apply(j, {entry(29, encode_put("a", "9"))});
    BOOST_TEST(indexes(j.read(25, "a", false, 1 << 20)) == (std::vector<index_t>{25, 29}));
    // Nothing recovered: the journal starts where the node opened.
    change_journal fresh;
    fresh.start_at(28);
    BOOST_TEST(fresh.resumable_from() == 29u);
}

BOOST_AUTO_TEST_CASE(a_restore_or_a_gap_starts_the_journal_again_after_it)
{
    change_journal j;
    j.start_at(0);
    apply(j, {entry(1, encode_put("a", "1")), entry(2, encode_put("a", "2"))});
    j.restored(50);
    BOOST_TEST(j.size() == 0u);
    BOOST_TEST(j.resumable_from() == 51u);
    BOOST_TEST(j.applied() == 50u);
    const auto r = j.read(3, "a", false, 1 << 20);
    BOOST_TEST((r.status == change_journal::read_status::gone));
    BOOST_TEST(r.reason.find("snapshot") != std::string::npos);
    apply(j, {entry(51, encode_put("a", "3"))});
    BOOST_TEST(indexes(j.read(51, "a", false, 1 << 20)) == (std::vector<index_t>{51}));
    // Entries that skip ahead were never seen one by one.
    apply(j, {entry(60, encode_put("a", "4"))});
    BOOST_TEST(j.resumable_from() == 60u);
    BOOST_TEST((j.read(52, "a", false, 1 << 20).status == change_journal::read_status::gone));
}

BOOST_AUTO_TEST_CASE(waiters_are_woken_once_by_an_apply_a_restore_or_close)
{
    change_journal j;
    j.start_at(0);
    int woken = 0;
    const auto id = j.wait(0, [&] { ++woken; });
    BOOST_TEST(id != 0u);
    BOOST_TEST(woken == 0);
    apply(j, {entry(1, encode_put("a", "1"))});
    BOOST_TEST(woken == 1);
    apply(j, {entry(2, encode_put("a", "1"))});
    BOOST_TEST(woken == 1); // once
    // Already past: woken at once.
    BOOST_TEST(j.wait(0, [&] { ++woken; }) == 0u);
    BOOST_TEST(woken == 2);
    const auto cancelled = j.wait(2, [&] { ++woken; });
    j.cancel_wait(cancelled);
    apply(j, {entry(3, encode_put("a", "1"))});
    BOOST_TEST(woken == 2);
    j.wait(3, [&] { ++woken; });
    j.restored(10);
    BOOST_TEST(woken == 3);
    j.wait(10, [&] { ++woken; });
    j.close();
    BOOST_TEST(woken == 4);
    BOOST_TEST((j.read(11, "", true, 1).status == change_journal::read_status::closed));
}

// A node removed from the cluster never applies another change: its watches end, saying why.
BOOST_AUTO_TEST_CASE(a_refusing_journal_wakes_its_waiters_and_ends_every_read_until_it_no_longer_refuses)
{
    change_journal j;
    j.start_at(0);
    apply(j, {entry(1, encode_put("a", "1"))});
    int woken = 0;
    BOOST_TEST(j.wait(1, [&] { ++woken; }) != 0u);
    j.refuse("node 3 was removed");
    BOOST_TEST(woken == 1);
    const auto r = j.read(1, "a", false, 1 << 20);
    BOOST_TEST((r.status == change_journal::read_status::refused));
    BOOST_TEST(r.reason == "node 3 was removed");
    BOOST_TEST(j.wait(1, [&] { ++woken; }) == 0u, "a refusing journal wakes a new waiter at once");
    BOOST_TEST(woken == 2);
    j.refuse(std::nullopt);
    BOOST_TEST((j.read(1, "a", false, 1 << 20).status == change_journal::read_status::ok));
}

BOOST_AUTO_TEST_CASE(watcher_slots_are_bounded)
{
    change_journal j{{.max_entries = 10, .max_bytes = 1 << 20, .max_watchers = 2}};
    BOOST_TEST(j.acquire_watcher());
    BOOST_TEST(j.acquire_watcher());
    BOOST_TEST(!j.acquire_watcher());
    // Counted as watching only once streaming (its response header sent).
    BOOST_TEST(j.watchers() == 0u);
    j.stream_began();
    BOOST_TEST(j.watchers() == 1u);
    j.stream_ended();
    BOOST_TEST(j.watchers() == 0u);
    j.release_watcher();
    BOOST_TEST(j.acquire_watcher());
}

BOOST_AUTO_TEST_CASE(watch_requests_are_checked)
{
    namespace http = boost::beast::http;
    auto ok = [](std::string_view key, std::string_view target, std::string_view accept = {},
                 std::optional<std::string_view> last = std::nullopt) {
        checked_watch_request r = check_watch_request(key, target, accept, last);
        BOOST_TEST_REQUIRE(r.value.has_value(), target << ": " << r.error);
        return *r.value;
    };
    const watch_request a = ok("a%2Fb", "/watch/a%2Fb?prefix=true&from=7&progress_ms=250");
    BOOST_TEST(a.key == "a/b");
    BOOST_TEST(a.prefix);
    BOOST_TEST(*a.from == 7u);
    BOOST_TEST(a.progress.count() == 250);
    BOOST_TEST(!a.sse);
    const watch_request all = ok("", "/watch/?prefix=true", "text/event-stream", "41");
    BOOST_TEST(all.key.empty());
    BOOST_TEST(all.sse);
    BOOST_TEST(*all.from == 42u);
    BOOST_TEST(!ok("k", "/watch/k").from);
    BOOST_TEST(*ok("k", "/watch/k?fr%6Fm=%37").from == 7u); // parameters are percent-decoded
    BOOST_TEST(*ok("k", "/watch/k?from=18446744073709551615").from == 18446744073709551615u);

    for (const auto& [key, target] : std::vector<std::pair<std::string_view, std::string_view>>{
             {"", "/watch/"},
             {"k", "/watch/k?from=0"},
             {"k", "/watch/k?from=x"},
             {"k", "/watch/k?from=1&from=2"},
             {"k", "/watch/k?prefix=yes"},
             {"k", "/watch/k?progress_ms=5"},
             {"k", "/watch/k?limit=3"},
             {"k", "/watch/k?from=%"},
             {"k", "/watch/k?from=18446744073709551616"},
             {"%zz", "/watch/%zz"}}) {
        const checked_watch_request r = check_watch_request(key, target, {}, std::nullopt);
        BOOST_TEST(!r.value.has_value(), target);
        BOOST_TEST((r.status == http::status::bad_request), target);
    }
    BOOST_TEST(!check_watch_request("k", "/watch/k", {}, std::string_view("nope")).value);
}

BOOST_AUTO_TEST_CASE(lines_are_json_or_server_sent_events)
{
    const change put{7, change_kind::put, "a\"b", "v\n"};
    BOOST_TEST(format_change(put, false) ==
               "{\"index\":7,\"type\":\"put\",\"key\":\"a\\\"b\",\"value\":\"v\\n\"}\n");
    const change del{8, change_kind::del, "k", ""};
    BOOST_TEST(format_change(del, false) == "{\"index\":8,\"type\":\"delete\",\"key\":\"k\"}\n");
    BOOST_TEST(format_change(del, true) ==
               "id: 8\nevent: delete\ndata: {\"index\":8,\"type\":\"delete\",\"key\":\"k\"}\n\n");
    BOOST_TEST(format_progress(9, 12, false) == "{\"type\":\"progress\",\"index\":9,\"applied_index\":12}\n");
    BOOST_TEST(format_end("gone", 5, false) == "{\"type\":\"error\",\"error\":\"gone\",\"resume_from\":5}\n");
    BOOST_TEST(format_end("gone", 5, true).starts_with("event: error\ndata: "));
}
