#ifndef RAFTKV_WAL_LOG_STORE_HPP
#define RAFTKV_WAL_LOG_STORE_HPP

#include <raftkv/membership.hpp>
#include <raftkv/metrics.hpp>
#include <raftkv/types.hpp>
#include <raftkv/wal/detail/file.hpp>
#include <raftkv/wal/detail/format.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace raftkv::wal {

/// Tuning of a write-ahead log store. Each field has its default.
struct log_store_options {
    /// A segment file is closed and a new one started once the next group would take it
    /// past this size (a single larger group still goes into one segment). Segments are
    /// reserved at this size when created, so appends do not grow the file.
    /// Default: 64 MiB.
    std::uint64_t segment_bytes = std::uint64_t{64} << 20;
    /// How far ahead of its records the current segment is filled with zeros. A reserved
    /// block is recorded as unwritten until something is written to it, and turning it into
    /// a written one is a metadata change that the next fdatasync must make durable too (on
    /// ext4: a journal commit, or without a journal a synchronous write of the inode), so a
    /// group landing on blocks never written costs its sync one more device round trip. The
    /// store writes zeros this far past each group it writes into such blocks, and groups
    /// after it overwrite written blocks, whose sync writes their data alone. 0: no zeros.
    /// Default: 1 MiB.
    std::uint64_t zero_ahead_bytes = std::uint64_t{1} << 20;
    /// Opens the log to read it only, for an offline inspection (raftkv-server --inspect):
    /// nothing in the directory is created or changed, so a full disk or a read-only mount
    /// does not keep it from opening. A torn tail is reported (recovered_torn_tail()) but
    /// not cut; no background thread runs; append(), compact(), install_snapshot(),
    /// save_hard_state() and sync() throw std::logic_error. A missing directory, or one
    /// without the hard state file, is read as an empty log. The directory's lock is taken
    /// as a shared one: a log in use by a process is still refused.
    ///
    /// Default: false.
    bool read_only = false;
};

/// What a log_store's background thread has done since the store was opened: its groups
/// (one write and one fdatasync each) and how long they took. Durations are in
/// nanoseconds.
struct log_store_stats {
    /// Groups written and synced, and the entries and bytes they carried.
    std::uint64_t groups = 0;
    std::uint64_t entries = 0;
    std::uint64_t bytes = 0;
    /// Entries per group, for the groups that carried entries (group commit: how many
    /// appends shared one sync).
    log2_histogram group_entries;
    /// Bytes per group.
    log2_histogram group_bytes;
    /// How long each group's write took (with the zeros it wrote ahead of itself, if any),
    /// and its fdatasync.
    log2_histogram write_ns;
    log2_histogram sync_ns;
    /// For each group that carried entries, from the first append() queued into it until
    /// it was durable: the longest wait an append of the group had for its sync.
    log2_histogram append_to_durable_ns;
};

/** A durable `raftkv::log_store`: a segmented write-ahead log with group commit.

    `append` returns at once: it updates the in-memory log and queues the records for a
    background thread, which writes everything queued since its last round as one
    checksummed group and makes it durable with one fdatasync. While a sync runs, appends
    queue up, so under load many appends share one sync (group commit). durable_index()
    reports what the completed syncs cover and lags last_index() meanwhile; after each
    sync the store calls the handler given to `on_durable`, from its thread, so the
    driver can call basic_node::on_log_durable() on the node's own thread.

    The retained log (first_index() to last_index()) is also held in memory, so
    `entries` and `term_at` never touch the disk: memory grows with the retained log,
    which snapshots bound (raftkv::options::snapshot_entries, snapshot_bytes,
    snapshot_catchup_entries, snapshot_catchup_bytes).

    `compact` queues a compaction record; segments it makes obsolete are deleted once it
    is durable. `install_snapshot` and `save_hard_state` are durable when they return
    (they wait for their sync); both are rare. Compaction and snapshot records carry the
    configuration at the log's new start (base_members()). The hard state lives in its own small
    file, replaced atomically.

    On open, the segments are read back and checked. A group torn by a crash mid-write at
    the end of the last segment (a damaged group with no valid group after it) was never
    acknowledged: it is cut off. A damaged group or a group header of zeros followed by valid
    data, a damaged segment other than the last, or a gap in the log is corruption: the
    constructor throws, and the operator must decide (the layout is in docs/wal.md).

    @par Example
    @code
    raftkv::wal::log_store store{"/var/lib/raftkv/log"};
    store.on_durable([&] { driver.log_durable(); });
    @endcode

    @par Errors
    A failing disk throws raftkv::storage_error (a std::runtime_error) naming the file and
    the cause: a directory or file that cannot be created, opened, locked (another process
    holds it), read, written, reserved or synced (ENOSPC, EIO, ...). What is on the disk but
    does not check (a corrupt segment or hard state, a format it does not know) throws a
    plain std::runtime_error when opening: that is damage to repair, not a disk to retry.
    Once open, a failed write or sync on the background thread is sticky (after a failed
    fsync the page cache can no longer be trusted): durable_index() stops advancing, the
    handler is called once more, and every later append, compact, install_snapshot,
    save_hard_state or sync throws raftkv::storage_error with the cause.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe, except that the background thread
    runs the `on_durable` handler concurrently with the owner's calls, and failure() and
    stats() may be called from any thread.
*/
class log_store {
public:
    /// Opens (creating if missing) the log in directory `dir` and starts its background
    /// thread. Throws raftkv::storage_error or std::runtime_error (see Errors above).
    explicit log_store(const std::filesystem::path& dir, log_store_options opts = {});

    /// Makes everything queued durable, then stops the background thread.
    ~log_store();

    log_store(const log_store&) = delete;
    log_store& operator=(const log_store&) = delete;

    /// Sets the handler called, from the background thread, after each sync (and once
    /// after a failure). It must be cheap and must not call into the store: post to the
    /// thread that owns it. Once this returns, the previous handler is not running and
    /// will not be called again, so `on_durable({})` detaches a handler before what it
    /// refers to is destroyed.
    void on_durable(std::function<void()> handler);

    hard_state saved_hard_state() const { return hard_state_; }
    /// Replaces the hard state, durably, before it returns.
    void save_hard_state(const hard_state& hs);

    index_t first_index() const noexcept { return base_index_ + 1; }
    index_t last_index() const noexcept { return base_index_ + entries_.size(); }
    /// What the completed syncs cover (never more than last_index()).
    index_t durable_index() const noexcept;

    /// REQUIRES: first_index() - 1 <= i <= last_index().
    term_t term_at(index_t i) const;

    /// REQUIRES: first_index() <= lo < hi <= last_index() + 1.
    std::vector<log_entry> entries(index_t lo, index_t hi, std::size_t max_bytes) const;

    /// REQUIRES: `es` non-empty and contiguous, first_index() <= es.front().index <=
    /// last_index() + 1.
    void append(std::span<const log_entry> es);

    /// Drops the entries up to `i` and records `members` as the configuration at `i`
    /// (nothing if `i` < first_index()). Durable once the sync after it completes; a crash
    /// before then leaves the entries and the previous base_members(). REQUIRES: i <=
    /// durable_index().
    void compact(index_t i, const membership& members);

    /// Restarts the log after `meta`, under `meta.members`, durably, before it returns.
    void install_snapshot(const snapshot_meta& meta);

    /// The configuration at first_index() - 1, as the last compact() or install_snapshot()
    /// gave it; empty for a new store and for one whose last compaction or snapshot record
    /// was written by a version without configurations (a version-1 segment).
    membership base_members() const { return base_members_; }

    /// Waits until everything appended, compacted or installed so far is durable (at
    /// shutdown, in tests). Throws raftkv::storage_error if the log failed.
    void sync()
    {
        check_writable("sync()");
        wait_synced(next_seq_);
    }

    /// How many segment files the log spans now (for tests and metrics).
    std::size_t segment_count() const;

    /// What opening the store cut off the end of its last segment: a group torn by a crash
    /// mid-write (never synced, so never acknowledged), which the store cannot tell from
    /// damage to the last group written. Empty when the log ended cleanly.
    struct torn_tail {
        std::filesystem::path segment;
        std::uint64_t offset = 0; ///< where the cut group began
        std::uint64_t bytes = 0;  ///< up to the last byte that was not zero
    };
    const std::optional<torn_tail>& recovered_torn_tail() const noexcept { return torn_tail_; }

    /// Why the background thread's last write or sync failed, or "" while the log works
    /// (see Errors above). Safe from any thread, the `on_durable` handler included.
    std::string failure() const;

    /// What the background thread has written and synced so far, and how long it took.
    /// Safe from any thread: it takes the lock the appends take, briefly.
    log_store_stats stats() const;

private:
    struct segment {
        std::uint64_t seq = 0;
        std::filesystem::path path;
        /// The highest last_index() any group written into it left: every entry it holds
        /// is at or below this.
        index_t max_index = 0;
        /// The format version in its header: how its records are laid out.
        std::uint32_t version = detail::format_version;
    };
    /// What an append's sync will make durable, if nothing truncates it first.
    struct unsynced_op {
        std::uint64_t seq;
        index_t covers;
    };

    void recover();
    void recover_segment(segment& s, bool last, std::uint64_t& end_offset);
    void apply_record(const detail::record& r);
    void load_hard_state();

    /// Numbers the operation just added to pending_. REQUIRES: `lock` holds mutex_.
    std::uint64_t queue(std::unique_lock<std::mutex>& lock);
    void check_failed() const;
    /// Throws std::logic_error for `what`, a call that writes, when opened read-only.
    void check_writable(const char* what) const;
    void wait_synced(std::uint64_t seq);

    // Background thread.
    void run();
    void notify();
    /// How long a group's write and sync took, in nanoseconds.
    struct group_timing {
        std::uint64_t write_ns = 0;
        std::uint64_t sync_ns = 0;
    };
    group_timing write_group(std::string& group, bool new_segment, index_t max_index);
    void open_new_segment();
    template <class Predicate>
    void drop_segments_while(Predicate obsolete);

    std::filesystem::path dir_;
    log_store_options opts_;
    detail::directory_lock lock_;

    // Owned by the caller's thread.
    hard_state hard_state_;
    std::uint64_t hard_state_counter_ = 0;
    index_t base_index_ = 0;
    term_t base_term_ = 0;
    membership base_members_;
    std::deque<log_entry> entries_;
    mutable index_t durable_ = 0;
    mutable std::deque<unsynced_op> unsynced_;
    std::uint64_t next_seq_ = 0;

    // Shared with the background thread, under mutex_.
    mutable std::mutex mutex_;
    std::condition_variable wake_writer_;
    std::condition_variable synced_cv_;
    std::string pending_;           ///< a group in the making: header space, then records
    std::uint64_t pending_seq_ = 0; ///< the last operation in pending_
    index_t pending_max_index_ = 0; ///< last_index() after the operations in pending_
    index_t pending_compact_ = 0;   ///< the highest compaction in pending_, or 0
    bool pending_new_segment_ = false;
    std::uint64_t pending_entries_ = 0;                     ///< entry records in pending_
    std::chrono::steady_clock::time_point pending_since_{}; ///< the first entry's append
    log_store_stats stats_;
    bool stopping_ = false;
    std::string failure_;
    std::atomic<bool> failed_{false}; ///< set with failure_, read without the mutex
    std::mutex handler_mutex_;        ///< held while handler_ runs
    std::function<void()> handler_;
    std::atomic<std::uint64_t> synced_seq_{0};

    // Owned by the background thread once it runs.
    std::deque<segment> segments_;
    detail::file current_;
    std::uint64_t offset_ = 0;
    std::uint64_t zeroed_ = 0;           ///< the current segment holds written blocks up to here
    std::optional<torn_tail> torn_tail_; ///< set by recover()
    /// The last gap recover() met between one entry and the next: where the entries after it
    /// start, for the message when no compaction record covers it.
    struct log_gap {
        index_t missing_from = 0, resumes_at = 0;
        std::filesystem::path segment;
    };
    std::optional<log_gap> gap_;
    std::uint64_t next_segment_seq_ = 1;

    std::thread thread_;
};

} // namespace raftkv::wal

#include <raftkv/wal/impl/log_store.hpp>

#endif
