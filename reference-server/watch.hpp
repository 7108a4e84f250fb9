#ifndef RAFTKV_SERVER_WATCH_HPP
#define RAFTKV_SERVER_WATCH_HPP

// Watches: GET /watch/{key}[?prefix=true][&from=N] streams the changes this node applies,
// in log order (docs/server.md, "Watches").
//
// Every node records the changes its state machine applies (the index of each put and of
// each delete that removed a key, with the key and a put's value) in a change_journal: a
// bounded ring in memory, fed from the apply path and, when the node starts, from the
// entries its log still holds (recovered()). A watch replays what the journal holds from the
// index it asks for, then follows the live changes; a watch that asks for an index the
// journal no longer holds (or never held: before what the node could rebuild when it
// started, or before a snapshot replaced the state) is refused with 410 and the oldest index
// it could resume from.
//
//     change_journal journal{{.max_entries = 100000, .max_bytes = 64 << 20}};
//     machine_options.on_applied = [&](auto batch, auto results) { journal.applied(batch, results); };
//     change_journal::read_result r = journal.read(from, "app/", true, 256 * 1024);

#include "http_server.hpp"
#include "request_parsing.hpp"

#include <raftkv/kv_command.hpp>
#include <raftkv/types.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace raftkv::server {

enum class change_kind { put, del };

/// Whether applying `command` with outcome `result` changed a user key, and how
/// (raftkv::changed_user_key). The one place that decides what a watch sees.
std::optional<change_kind> change_of(const kv_command& command, const kv_result& result);

/// One change a watch reports.
struct change {
    index_t index = 0;
    change_kind kind = change_kind::put;
    std::string key;
    /// A put's value; empty for a delete.
    std::string value;
};

struct change_journal_options {
    /// The most changes held; the oldest go first. REQUIRES: at least 1. Default: 100000.
    std::size_t max_entries = 100'000;
    /// The most bytes of keys and values held (each change counts 64 more). Default: 64 MiB.
    std::size_t max_bytes = std::size_t{64} << 20;
    /// The most watchers at once (acquire_watcher()). Default: 1024.
    std::size_t max_watchers = 1024;
};

/** The changes this node applied, in index order, for watches.

    The journal covers a range of the log: every change applied from resumable_from() to
    applied() is in it. It begins to cover at the first entry recovered(), or else at
    start_at() (the state machine's applied index when the node opens); evicting the oldest change over the
   bounds moves the start past it; a snapshot restore (restored()) or a gap in what is applied starts it again
   after the new state, since the changes folded into a snapshot were never seen one by one.

    @par Thread Safety
    Every member function may be called from any thread. applied(), restored() and
    start_at() are called by the one thread applying; they never wait on a watcher: a
    waker only posts work elsewhere.
*/
class change_journal {
public:
    explicit change_journal(change_journal_options options = {});

    change_journal(const change_journal&) = delete;
    change_journal& operator=(const change_journal&) = delete;

    // ---- The apply side --------------------------------------------------------------

    /// The state machine was opened with everything up to `applied` applied. The first
    /// call starts the journal there; later ones (a node opened again after a storage
    /// failure) change nothing unless `applied` is past what the journal saw, which then
    /// starts again after it.
    void start_at(index_t applied);

    /// Records the changes of an applied batch (entries already recorded are skipped: a
    /// node opened again re-applies from its last checkpoint) and wakes the waiters.
    void applied(std::span<const log_entry> batch, std::span<const kv_result> results);

    /// Records changes the node applied before it started, read back from its log: `batch`
    /// holds the entries that follow those of the call before (the first call starts the
    /// journal at its first entry), and every put or delete among them changed its key but
    /// those at the indices of `unchanged` (ascending; see
    /// raftkv::leveldb::kv_state_machine::applied_history()). Calls come before start_at(),
    /// which then finds the journal started where they left off.
    void recovered(std::span<const log_entry> batch, std::span<const index_t> unchanged);

    /// A snapshot up to `index` replaced the state: forgets every change, starts again
    /// after `index`, and wakes the waiters.
    void restored(index_t index);

    /// Ends every watch (the server is stopping): read() answers closed from now on.
    void close();

    /// With a reason, ends every watch and refuses every read with it (read() answers
    /// refused): the node was removed from the cluster, so no change will ever come. Without
    /// one, reads go on as before.
    void refuse(std::optional<std::string> why);

    // ---- The watch side --------------------------------------------------------------

    enum class read_status {
        /// The changes from `from` (up to the byte budget) are in `changes`.
        ok,
        /// Some changes at or after `from` are no longer held (or never were): resume from
        /// resumable_from() at the earliest.
        gone,
        /// close() was called.
        closed,
        /// refuse() was called with a reason, in `reason`.
        refused,
    };

    struct read_result {
        read_status status = read_status::ok;
        /// The changes at or after `from` whose key matches, in index order.
        std::vector<change> changes;
        /// Where the next read starts: after the last change returned, or after applied()
        /// when none more are held (never before `from`).
        index_t next = 0;
        /// applied() at the time of the read.
        index_t applied = 0;
        /// For `gone`: why (evicted, restored, before the node started); for `refused`, the
        /// reason refuse() was given.
        std::string reason;
    };

    /// The changes at or after `from` to `key` (with `prefix`: to any key starting with
    /// it), up to about `max_bytes` of keys and values (at least one change).
    read_result read(index_t from, std::string_view key, bool prefix, std::size_t max_bytes) const;

    /// The first index a watch may start from: every change at or after it is held.
    index_t resumable_from() const;

    /// The last index applied (as far as the journal saw).
    index_t applied() const;

    /// The bytes of every change recorded so far (what size() counts), held or evicted:
    /// what a watch blocked in a write has fallen behind meanwhile.
    std::uint64_t total_bytes() const;

    /// Calls `wake` once, from the applying thread or at once, as soon as applied()
    /// passes `after`, a restore or gap restarts the journal, or it is closed or refuses. Returns an
    /// id for cancel_wait() (0 if `wake` was called already).
    std::uint64_t wait(index_t after, std::function<void()> wake);

    /// Forgets a waiter that was not woken yet.
    void cancel_wait(std::uint64_t id);

    /// Takes one of max_watchers slots; false when all are taken.
    bool acquire_watcher();
    void release_watcher();
    /// The watches streaming: their response header went out and they have not ended
    /// (a slot is taken before the header is written, so this may be lower than the slots).
    std::size_t watchers() const;
    void stream_began();
    void stream_ended();

    /// Changes and bytes held now.
    std::size_t size() const;
    std::size_t bytes() const;

private:
    struct entry {
        change c;
        /// The bytes of every change recorded before this one.
        std::uint64_t offset = 0;
    };

    std::size_t cost(const change& c) const { return c.key.size() + c.value.size() + 64; }
    /// applied() and recovered(): `kind_of(k, command)` is the change batch[k] made, if any.
    template <class KindOf>
    void record(std::span<const log_entry> batch, const KindOf& kind_of);
    void evict_over_bounds();
    void restart_after(index_t index, std::string reason);
    std::vector<std::function<void()>> take_waiters();
    std::deque<entry>::const_iterator first_at(index_t index) const;

    const change_journal_options options_;
    mutable std::mutex mutex_;
    bool started_ = false;
    bool closed_ = false;
    std::optional<std::string> refusal_;
    std::deque<entry> entries_;
    std::size_t bytes_ = 0;
    std::uint64_t total_bytes_ = 0; // of every change ever recorded
    index_t from_ = 1;              // resumable_from()
    index_t applied_ = 0;
    std::string gap_reason_ = "the node started after it";
    std::vector<std::pair<std::uint64_t, std::function<void()>>> waiters_;
    std::uint64_t last_wait_id_ = 0;
    std::size_t watchers_ = 0;  // slots taken
    std::size_t streaming_ = 0; // watchers()
};

/// A validated GET /watch request.
struct watch_request {
    std::string key;
    bool prefix = false;
    /// ?from=, or Last-Event-ID + 1; nothing: after the node's applied index.
    std::optional<index_t> from;
    /// Server-sent events (Accept: text/event-stream) rather than JSON lines.
    bool sse = false;
    /// How often a progress line is sent when nothing else is. Default: 5 s.
    std::chrono::milliseconds progress{5000};
};

/// The most and least ?progress_ms= a watch may ask for.
inline constexpr std::chrono::milliseconds min_watch_progress{100};
inline constexpr std::chrono::milliseconds max_watch_progress{60'000};

/// A watch_request, or the status (400, 413) and message to answer with.
struct checked_watch_request {
    std::optional<watch_request> value;
    boost::beast::http::status status = boost::beast::http::status::ok;
    std::string error;
};

/// Checks the key in the path (still percent-encoded; empty only with prefix=true), the
/// query (prefix=true|false, from=N >= 1, progress_ms=100..60000, each at most once, no
/// other parameter) and the headers Accept and Last-Event-ID (a decimal; wins over ?from=).
checked_watch_request check_watch_request(std::string_view raw_key, std::string_view target,
                                          std::string_view accept,
                                          std::optional<std::string_view> last_event_id);

/// One line of a watch: a change, a progress line or the final error line, as JSON (with
/// a newline) or as a server-sent event.
std::string format_change(const change& c, bool sse);
std::string format_progress(index_t index, index_t applied, bool sse);
std::string format_end(std::string_view error, index_t resume_from, bool sse);

/** The body of one watch: replays the journal from the watch's start, then follows it.

    Ends, with a final error line naming the index to resume from, when the journal no
    longer holds the next change (evicted or restored) or when the server stops; ends
    without one when the client is gone. A watch blocked in a write (its client stopped
    reading) while the node records more than `max_lag_bytes` of changes is closed at once:
    it holds no more than the one chunk it was writing.
*/
class watch_stream : public response_stream {
public:
    /// Holds one of the journal's watcher slots, taken by the caller, until destroyed.
    watch_stream(change_journal& journal, watch_request request, index_t from, std::size_t max_lag_bytes);
    ~watch_stream() override;

    boost::asio::awaitable<void> run(stream_writer& out) override;

private:
    struct waiter;

    change_journal& journal_;
    watch_request request_;
    index_t next_;
    std::size_t max_lag_bytes_;
};

} // namespace raftkv::server

#endif
