#ifndef RAFTKV_LEVELDB_KV_STATE_MACHINE_HPP
#define RAFTKV_LEVELDB_KV_STATE_MACHINE_HPP

#include <raftkv/concepts.hpp>
#include <raftkv/kv_command.hpp>
#include <raftkv/kv_sessions.hpp>
#include <raftkv/leveldb/detail/coding.hpp>
#include <raftkv/leveldb/detail/database.hpp>
#include <raftkv/leveldb/detail/snapshot_stream.hpp>
#include <raftkv/metrics.hpp>
#include <raftkv/types.hpp>

#include <leveldb/db.h>
#include <leveldb/iterator.h>
#include <leveldb/options.h>
#include <leveldb/status.h>
#include <leveldb/write_batch.h>

#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace raftkv::leveldb {

/// How long a kv_state_machine's work took since it was opened, in nanoseconds.
struct kv_state_machine_stats {
    /// Each apply() batch, its LevelDB write included.
    log2_histogram apply_ns;
    /// Each checkpoint (take_snapshot() with `sync` off): the memtable flushed to a table
    /// file and the index recorded, synced.
    log2_histogram checkpoint_ns;
};

/// How a kv_state_machine writes.
struct kv_state_machine_options {
    /// Whether apply() syncs its write before it returns.
    ///
    /// Each apply batch writes its data and the applied index in one atomic LevelDB write,
    /// and after a restart the node re-applies the log from applied_index() + 1; so losing
    /// the last batches in a crash only means applying them again. That holds when a crash
    /// loses a suffix of the unsynced writes. A process crash loses none of them (they sit
    /// in the OS page cache). A power loss or kernel crash can lose any of them: LevelDB
    /// closes a full write-ahead log file without syncing it, and writes in the next file
    /// may reach the disk first, leaving a later batch (and its applied index) without an
    /// earlier one, whose writes would never be applied again. Turn syncing off to save one
    /// fsync per apply batch only where machine crashes need not be survived, or the state
    /// can be rebuilt by deleting it and re-applying the log.
    ///
    /// For the same reason, with syncing off the machine never reports applied state
    /// durable: snapshot_index() stays at the last snapshot restored (0 if none), so the
    /// node keeps the log after it, and the log stays the durable record.
    ///
    /// Default: true.
    bool sync = true;

    /// The most bytes a restore gathers before it writes them to LevelDB, and the most a
    /// deletion of replaced or abandoned state deletes in one write. Each such write is
    /// synced. A restore's memory is bounded by this, plus one record of the snapshot.
    ///
    /// Default: 4 MiB.
    std::size_t restore_batch_bytes = 4 * 1024 * 1024;

    /// The bytes a restore leaves free on the file system that holds the machine: before
    /// each of its writes, a restore that would leave less fails with raftkv::storage_error
    /// ("... MiB free ..."), rather than fill the disk. The new state is written beside the
    /// current one, so a disk with room for one state only cannot take it; stopping short
    /// leaves room for the deletion of what the restore wrote, and for LevelDB to open (it
    /// writes as it opens), so that freeing space is enough to recover. 0: no check.
    ///
    /// Default: 0.
    std::uint64_t restore_min_free_bytes = 0;

    /// The most bytes, by LevelDB's estimate, that compact_in_background() compacts in one
    /// step. Between steps it makes any checkpoint asked for meanwhile and stops if the
    /// machine is being destroyed, so this bounds how long either waits for it.
    ///
    /// Default: 64 MiB.
    std::uint64_t compaction_step_bytes = std::uint64_t{64} << 20;

    /// compact_in_background() starts a step only while applies and restores write less
    /// than this many bytes a second (measured over the last second), and while LevelDB is
    /// not behind on compacting its level 0: under heavy writes the compaction waits. A
    /// step is one LevelDB CompactRange, whose pass over level 0 starts again for as long
    /// as new level-0 tables arrive, and meanwhile LevelDB compacts nothing else: under
    /// steady writes the step would never end, writes would stall on a growing level 0, and
    /// the checkpoints queued behind it (which let the log be dropped) would wait as long.
    /// 0: steps never wait.
    ///
    /// Default: 1 MiB (a memtable flush every 4 s or less often).
    std::uint64_t compaction_max_write_rate = std::uint64_t{1} << 20;

    /// Called on the background thread after each step of a compaction started by
    /// compact_in_background(), with the steps done and the steps of the whole compaction: its
    /// progress, for an observer. It must not throw, and may call the machine's const
    /// members only; while it runs, checkpoints wait. Default: none.
    std::function<void(std::size_t done, std::size_t steps)> on_compaction_step{};

    /// Called at the end of each apply() batch that was written, once get() and scan() see
    /// it, on the thread that applied it, with the batch and its results: a feed of the
    /// changes for an observer (such as a change journal). It must be quick, must not
    /// throw and must not call back into the machine. Not called for a failed batch.
    /// Default: none.
    std::function<void(std::span<const log_entry> batch, std::span<const kv_result> results)> on_applied{};

    /// Called at the end of each finish_restore() that replaced the state, on its thread,
    /// with the snapshot's index: what was applied one entry at a time up to it was not
    /// seen by on_applied. Same rules as on_applied. Default: none.
    std::function<void(index_t index)> on_restored{};

    /// Opens the state to read it only, for an offline inspection (raftkv-server
    /// --inspect): nothing in the directory is created or changed, and a full disk or a
    /// read-only mount does not keep it from opening. What LevelDB writes as it opens (the
    /// recovery of its log into a table, a new manifest and log) goes to memory through a
    /// detail::overlay_env, and is dropped on close. A missing database reads as an empty
    /// state (which an open for writing would create); one of format v1 or v2, which only an
    /// open for writing upgrades, is an error. apply(),
    /// take_snapshot(), compact_in_background(), the restores and erase_meta() throw
    /// std::logic_error. LevelDB's lock is taken as a read lock: a database in use by a
    /// process is still refused.
    ///
    /// Default: false.
    bool read_only = false;
};

/// What kv_state_machine::scan() lists.
struct kv_scan_options {
    /// Only keys that start with these bytes. Default: every key.
    std::string prefix;
    /// Only keys that sort after this one, bytewise: the last key of the page before.
    /// Default: from the first key.
    std::string after;
    /// The most keys in one page. Default: 100.
    std::size_t limit = 100;
    /// The most bytes of keys and values in one page, but for its first key, which is
    /// listed whatever its size. Default: 2 MiB.
    std::size_t max_bytes = std::size_t{2} << 20;
    /// List the keys without their values (which then count no bytes). Default: false.
    bool keys_only = false;
};

/// One page of keys in byte order, from kv_state_machine::scan().
struct kv_scan_page {
    /// The keys and, unless keys_only, their values.
    std::vector<std::pair<std::string, std::string>> items;
    /// The version of each key of `items`, in the same order (see get_versioned()).
    std::vector<index_t> versions;
    /// Whether more keys match after the last item (the page was cut by limit or
    /// max_bytes): scan again with `after` set to that key.
    bool more = false;
};

/// A user key's value and version, from kv_state_machine::get_versioned().
struct kv_versioned_value {
    std::string value;
    /// The index of the entry that last wrote the key; 0 for a key written before the
    /// database stored versions (format v2 and earlier).
    index_t version = 0;
};

/// The entries a kv_state_machine applied itself, as far back as it keeps a record of them:
/// from kv_state_machine::applied_history().
struct kv_applied_history {
    /// Every entry from `first` to the machine's applied index was applied by the machine,
    /// one batch at a time (none was folded into a restored snapshot); none when `first` is
    /// past the applied index.
    index_t first = 0;
    /// The indices of those entries that were a put or a delete and changed no user key
    /// (raftkv::changed_user_key() was false for their result), ascending.
    std::vector<index_t> unchanged;
};

/** A `raftkv::state_machine` holding a key-value map in a LevelDB database of its own.

    Applies the commands of <raftkv/kv_command.hpp>: a put sets a key (result `found =
    true`); a delete removes it (`found` says whether it existed); a meta record sets a
    named value that get() never sees, read with get_meta() (`found = true`). Each user key
    is stored with its version, the index of the entry that last wrote it; a put or a delete
    with a precondition is applied only if the precondition holds against the state before
    its entry (kv_result::status, kv_result::version). A put or a delete carrying a client
    session goes through the machine's kv_session_table (rules in <raftkv/kv_sessions.hpp>):
    applied at most once per sequence. The table is kept in memory, loaded when the machine
    opens, and stored beside the keys, each change in the write of the batch that made it;
    it is part of snapshots. An entry whose data is
    not a well-formed command, and noop and config entries, change nothing and give
    `found = false`. Each apply call is one LevelDB write holding every change of the
    batch and the new applied index, so the stored state always matches the stored
    applied index. The layout is in docs/leveldb.md.

    snapshot() streams the state from a LevelDB snapshot while apply() goes on. A restore
    (begin_restore(), restore_chunk() for each chunk, finish_restore()) writes the state it
    receives beside the current one, which stays in force until finish_restore() switches
    to the new one in a single synced write: a crash at any point leaves the old state or
    the new one, never a mix. Neither holds the whole state in memory.

    @par Example
    @code
    raftkv::leveldb::kv_state_machine machine{"/var/lib/raftkv/state"};
    raftkv::basic_node node{opts, transport, store, machine};
    std::optional<std::string> v = machine.get("color");
    @endcode

    @par Errors
    Opening throws std::runtime_error, naming the directory and the cause, when the database
    cannot be opened (permissions, locked by another process or another open store), is
    corrupt or belongs to another kind of store. Once open, a LevelDB read or write that
    fails throws raftkv::storage_error (a std::runtime_error): the node using the machine
    stops, and the machine should be destroyed and opened again once the disk works
    (LevelDB keeps failing every write after one failed until it is re-opened; see
    raftkv::asio::driver, Failures). A failed apply leaves the stored state and
    applied_index() as they were; `results` is then unspecified. A snapshot chunk that does
    not decode, or a stream that ends early, throws std::runtime_error but no
    storage_error, and fails the restore, leaving the current state as it was: the node
    abandons that restore and asks the leader again.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe, except that get(), get_meta(),
    snapshot() and stats() may run on other threads concurrently with any call and with themselves;
    they see each apply batch, and each finished restore, whole or not at all. A reader
    returned by snapshot() may be used on any one thread at a time.
*/
class kv_state_machine {
public:
    using result_type = kv_result;
    class snapshot_reader;

    /// Opens the state machine in directory `dir`, creating it (and its parents) if
    /// missing, and deletes what an unfinished restore left. A database of format v1 or v2
    /// is upgraded in place to v5, its keys at version 0 (docs/leveldb.md): a pass over
    /// the whole state; one of format v3 (v5 without sessions) or v4 (v5 whose sessions
    /// recorded no request fingerprints) by rewriting its format record. Throws
    /// std::runtime_error if it cannot be opened or is corrupt.
    explicit kv_state_machine(const std::filesystem::path& dir, const kv_state_machine_options& opts = {});

    kv_state_machine(const kv_state_machine&) = delete;
    kv_state_machine& operator=(const kv_state_machine&) = delete;

    /// The state's table files that fail their checksums when read whole: one line each,
    /// naming the file and saying what is wrong. Reads the whole state, for an offline check
    /// (LevelDB reads a table only when a read or a compaction needs it, and its messages for
    /// a damaged block name no file). Safe from any thread.
    std::vector<std::string> damaged_tables() const
    {
        return env_ ? detail::damaged_tables(*db_, dir_, env_.get()) : detail::damaged_tables(*db_, dir_);
    }

    /// Applies `batch` and writes the outcome of `batch[k]` to `results[k]`. Never throws
    /// for a malformed command; throws std::runtime_error if LevelDB fails to write.
    /// REQUIRES: results.size() == batch.size(); `batch` is contiguous and, unless empty,
    /// starts at applied_index() + 1.
    void apply(std::span<const log_entry> batch, std::span<kv_result> results);

    /// The index of the last entry applied; after a reopen, the last one stored.
    index_t applied_index() const noexcept { return applied_; }

    /// Whether opening met damaged records in LevelDB's own log and skipped them: with
    /// `sync` off, what a machine crash leaves at its end (the node applies their entries
    /// again from its own log; a warning is logged too).
    bool skipped_damaged_log() const noexcept { return skipped_damaged_log_; }

    /// How long applies and checkpoints took so far. Safe from any thread.
    kv_state_machine_stats stats() const;

    /// With `sync` off, checkpoints the applied state first (see take_snapshot()).
    ~kv_state_machine();

    /// The applied index up to which the state survives a machine crash. With `sync` on:
    /// applied_index(). With it off: the last checkpoint's or restore's index.
    index_t snapshot_index() const noexcept { return opts_.sync ? applied_ : durable_.load(); }

    /// What the machine recorded of the entries it applied itself (with `sync` off: those
    /// since the checkpoint before the last one, or since the last restore; with it on,
    /// none). With the entries, read from the log, it tells which of them changed which user
    /// key without applying them again: what a change journal rebuilt after a restart needs.
    /// On the thread that applies, between calls. Throws raftkv::storage_error if LevelDB
    /// fails to read.
    kv_applied_history applied_history() const;

    /// With `sync` off, starts a checkpoint of the applied state on a background thread
    /// unless one is running; snapshot_index() reaches today's applied_index() when it
    /// completes. With `sync` on, does nothing: the applied state is durable already.
    /// Throws std::runtime_error if an earlier checkpoint failed.
    void take_snapshot();

    /// Starts compacting the whole database on the checkpoints' background thread (LevelDB's
    /// CompactRange over every key), unless one is running or waiting to run: deleted and
    /// overwritten data then leaves the disk. It runs in steps of key ranges of about
    /// compaction_step_bytes each, which wait while the machine writes faster than
    /// compaction_max_write_rate; a checkpoint asked for meanwhile runs between two steps,
    /// and destroying the machine waits for one step at most (the compaction is then left
    /// unfinished). Returns at once; safe from any thread. How many have completed:
    /// compactions().
    void compact_in_background();
    /// The compactions compact_in_background() started that have completed. Any thread.
    std::uint64_t compactions() const noexcept { return compactions_.load(); }

    /// The bytes of LevelDB's table files, from its own accounting (no file is opened): the
    /// state on disk, but for the last writes, which are in LevelDB's log and memtable until
    /// they fill it (4 MiB). Any thread.
    std::uint64_t table_bytes() const
    {
        const ::leveldb::Range all("", "\xff");
        std::uint64_t size = 0;
        db_->GetApproximateSizes(&all, 1, &size);
        return size;
    }

    /// A reader over the state as of applied_index(), unaffected by later applies and
    /// restores. Thread-safe as get(). The reader holds a LevelDB snapshot and iterator
    /// until its last chunk is read or it is destroyed.
    /// REQUIRES: this machine outlives the reader.
    snapshot_reader snapshot() const;

    /// Starts replacing the state with the snapshot `meta`, whose bytes (made by
    /// snapshot() on some machine) follow in restore_chunk() calls. Discards a restore
    /// in progress first, deleting what it stored. Until finish_restore() returns, the
    /// state, applied_index(), snapshot_index() and snapshot() are unchanged.
    void begin_restore(const snapshot_meta& meta);

    /// Stores the records in `data`, the next bytes of the snapshot's stream (cut
    /// anywhere), beside the current state, in synced writes of about
    /// restore_batch_bytes. Throws std::runtime_error if `data` does not decode, or
    /// raftkv::storage_error if LevelDB fails: the restore is then failed, and only
    /// abort_restore() or begin_restore() may follow. Throws std::logic_error without a
    /// restore in progress.
    void restore_chunk(std::string_view data);

    /// Replaces the state with the restored one in one synced write, after which
    /// applied_index() == snapshot_index() == the snapshot's index. The replaced state's
    /// keys are deleted on the background thread that makes checkpoints (a large state
    /// takes a second or more), or by the next begin_restore() or abort_restore() if it
    /// has not finished by then, or on closing; once they are, the database is compacted
    /// (compact_in_background()), which is what returns their space to the disk. Throws
    /// std::runtime_error if the stream is incomplete or the restore failed (the state is
    /// then unchanged), raftkv::storage_error if LevelDB fails; throws std::logic_error
    /// without a restore in progress.
    void finish_restore();

    /// Discards the restore in progress, if any, deleting what it stored (and compacting,
    /// as finish_restore() does for the state it replaced).
    void abort_restore();

    /// The value stored for `key`, or nothing if the key is absent.
    std::optional<std::string> get(std::string_view key) const;

    /// The value and version stored for `key`, or nothing if the key is absent.
    /// Thread-safe as get().
    std::optional<kv_versioned_value> get_versioned(std::string_view key) const;

    /// The value of the meta record `name` (kv_command_op::meta), or nothing if none was
    /// applied. Meta records and user keys are separate namespaces. Thread-safe as get().
    std::optional<std::string> get_meta(std::string_view name) const;

    /// Deletes every meta record whose name starts with `prefix`, in one synced write and
    /// outside of any log entry: for a state that no node serves yet, changed the same way
    /// on every member that will serve it (raftkv-server drops the records of a restored
    /// backup that describe the cluster it was taken from). Not thread-safe: on the thread
    /// that applies, between calls, with no restore in progress. Throws
    /// raftkv::storage_error if LevelDB fails.
    void erase_meta(std::string_view prefix);

    /// The client sessions. Not thread-safe: on the thread that applies, between calls.
    const kv_session_table& sessions() const noexcept { return sessions_; }

    /// A page of the user keys `options` selects, in byte order, read from one LevelDB
    /// snapshot: it reflects every apply batch and restore finished before the call, whole,
    /// and nothing later. Meta records and the machine's own records are never listed.
    /// Thread-safe as get(). Throws std::runtime_error if LevelDB fails to read.
    kv_scan_page scan(const kv_scan_options& options) const;

private:
    using record_kind = detail::snapshot_record;

    // Keys: the state lives in one of two slots. A user key is stored under
    // user_prefix[slot] + the key, a meta record under meta_prefix[slot] + its name, a
    // client session under session_prefix[slot] + its client id (8 bytes big-endian), so
    // none can collide with another or with the machine's own records ('m' + a name).
    // Slot 0 has the prefixes of format v1, which makes a v1 database a v2 one whose state
    // is in slot 0. Indexes are stored as 8 bytes big-endian. Since format v3 a user key's
    // value is stored as its version (a varint) followed by the value; format v4 adds the
    // sessions, and v5 the request fingerprints of their results.
    static constexpr char user_prefix[2] = {'k', 'K'};
    static constexpr char meta_prefix[2] = {'c', 'C'};
    static constexpr char session_prefix[2] = {'s', 'S'};
    static constexpr std::string_view format_key = "mformat";
    static constexpr std::string_view applied_index_key = "mapplied_index";
    // The applied index of the last durable checkpoint (with `sync` on, of every apply);
    // absent means the restored index.
    static constexpr std::string_view durable_index_key = "mdurable_index";
    // With `sync` off, one record per apply batch since the checkpoint before the last one:
    // this prefix and the batch's first index (8 bytes) -> its last index (8 bytes), then
    // batch_outcomes_tag and the index (8 bytes each) of every put or delete of the batch
    // that changed no user key. Written in the batch's own write, so a record is there
    // exactly when the batch's writes are. Records written before the outcomes were (the
    // last index alone) tell nothing of them.
    static constexpr std::string_view batch_key_prefix = "mbatch";
    static constexpr char batch_outcomes_tag = 'u';
    // The slot holding the state, one byte (0 or 1); absent means 0.
    static constexpr std::string_view slot_key = "mslot";
    // The index of the last restore finished; absent means 0.
    static constexpr std::string_view restored_index_key = "mrestored_index";
    // Present while the slot not in use may hold keys: those of a restore under way, or
    // of the state a restore replaced.
    static constexpr std::string_view stale_key = "mstale";
    // Present from the end of a slot's deletion until a compaction of the whole database has
    // completed: deleted keys take their space until LevelDB compacts them away, and a
    // compaction cut short by closing starts again at the next open.
    static constexpr std::string_view compact_key = "mcompact";
    static constexpr std::string_view format = "raftkv.kv_state_machine.v5";
    static constexpr std::string_view format_v4 = "raftkv.kv_state_machine.v4";
    static constexpr std::string_view format_v3 = "raftkv.kv_state_machine.v3";
    static constexpr std::string_view format_v2 = "raftkv.kv_state_machine.v2";
    static constexpr std::string_view format_v1 = "raftkv.kv_state_machine.v1";

    /// Whether a key exists before an entry is applied, and its version.
    struct key_state {
        bool exists = false;
        index_t version = 0;
    };

    struct restore_state {
        explicit restore_state(const snapshot_meta& m) : meta(m), decoder(m.index) {}

        snapshot_meta meta;
        detail::snapshot_decoder decoder;
        /// Records decoded but not yet written.
        ::leveldb::WriteBatch batch;
        /// Set while a call may leave the restore incomplete; cleared when it returns.
        bool failed = false;
        /// Scratch space for a user value being staged.
        std::string value;
        /// The sessions restored so far.
        kv_session_table sessions;
        /// The bytes of the batches written so far.
        std::uint64_t written = 0;
    };

    static char prefix(record_kind kind, int slot) noexcept
    {
        return kind == record_kind::user   ? user_prefix[slot]
               : kind == record_kind::meta ? meta_prefix[slot]
                                           : session_prefix[slot];
    }
    static std::string data_key(char prefix, std::string_view key);
    static std::string encode_index(index_t i);
    static void encode_value(std::string& out, index_t version, std::string_view value);
    /// Splits a stored user value into its version and the value; false if malformed.
    static bool decode_value(std::string_view stored, index_t& version, std::string_view& value) noexcept;
    kv_versioned_value decode_stored(std::string_view stored) const;
    void upgrade(std::string_view from);
    /// Throws std::logic_error for `what`, a call that writes, when opened read-only.
    void check_writable(std::string_view what) const;

    int slot() const noexcept { return static_cast<int>(generation_.load() & 1); }
    int other_slot() const noexcept { return 1 - slot(); }
    std::optional<std::string> read_current(record_kind kind, std::string_view key) const;
    std::optional<std::string> read(std::string_view key, const ::leveldb::ReadOptions& options) const;
    index_t read_index(std::string_view key, const std::string& what,
                       const ::leveldb::ReadOptions& options) const;
    int read_slot(const ::leveldb::ReadOptions& options) const;
    void load();
    void load_sessions();
    kv_result apply_command(const kv_command& c, index_t index, int slot, ::leveldb::WriteBatch& writes,
                            std::unordered_map<std::string_view, key_state>& written,
                            std::unique_ptr<::leveldb::Iterator>& before, std::string& value) const;
    static std::string batch_key(index_t first);
    struct batch_record {
        index_t last = 0;
        /// Whether the record tells which entries changed no user key (`unchanged`).
        bool outcomes = false;
        /// Their indices, 8 bytes each.
        std::string_view unchanged;
    };
    static std::optional<batch_record> decode_batch_record(std::string_view value) noexcept;
    bool batches_complete(index_t from, index_t to, const ::leveldb::ReadOptions& options) const;
    void delete_batch_records(::leveldb::WriteBatch& batch, index_t from, index_t to) const;
    key_state stored(const std::string& key, std::unique_ptr<::leveldb::Iterator>& it) const;
    /// Keys that cut the database into ranges of about opts_.compaction_step_bytes, in order.
    std::vector<std::string> compaction_bounds() const;
    void compaction_bounds(const std::string& lo, const std::string& hi, int depth,
                           std::vector<std::string>& bounds) const;
    std::uint64_t approximate_bytes(const std::string& lo, const std::string& hi) const;
    /// Whether a compaction step may start now (compaction_max_write_rate); on checkpointer_.
    bool writes_eased();
    restore_state& restoring(std::string_view call);
    void stage(record_kind kind, std::string_view key, std::string_view value);
    void write_staged(::leveldb::WriteBatch& batch, const std::string& what);
    /// Deletes every key of `slot` and then the stale mark, while `go_on()` says so (a
    /// call that stops early leaves the mark, and the next open finishes the job).
    void delete_slot(int slot, const std::function<bool()>& go_on = {});
    void await_slot_deletion();
    void write_synced(::leveldb::WriteBatch& batch, const std::string& what);
    std::string restoring_what() const;
    void run_checkpoints();
    void checkpoint(index_t index);

    std::string name_;
    std::filesystem::path dir_;
    kv_state_machine_options opts_;
    /// Set while db_ opens (so declared before it): see skipped_damaged_log().
    bool skipped_damaged_log_ = false;
    /// With read_only: the Env the database is read through, which must outlive it.
    std::unique_ptr<detail::overlay_env> env_;
    std::unique_ptr<::leveldb::DB> db_;
    index_t applied_ = 0;
    index_t restored_ = 0;
    /// The slot found at opening plus the restores finished since: its low bit is the slot
    /// holding the state. get() reads it around each key read and retries if it changed.
    std::atomic<std::uint64_t> generation_{0};
    /// Mirrors stale_key.
    bool stale_ = false;
    std::unique_ptr<restore_state> restore_;
    /// The client sessions of the slot in use; only the applying thread touches them.
    kv_session_table sessions_;

    // Checkpoints (`sync` off): requested on the owner's thread, made on checkpointer_.
    std::atomic<index_t> durable_{0};
    std::mutex checkpoint_mutex_;
    std::condition_variable checkpoint_cv_;
    index_t checkpoint_wanted_ = 0;  ///< under checkpoint_mutex_
    bool checkpoint_stop_ = false;   ///< under checkpoint_mutex_
    bool compaction_wanted_ = false; ///< under checkpoint_mutex_
    /// The replaced slot that checkpointer_ is to delete (-1: none), and whether it is
    /// deleting it now; under checkpoint_mutex_. deletion_done_ is signalled when it ends.
    int slot_to_delete_ = -1;
    bool deleting_slot_ = false;
    std::condition_variable deletion_done_;
    std::atomic<std::uint64_t> compactions_{0};
    /// Bytes written by applies and restores since opening: their rate holds compaction
    /// steps back. The window it is measured over, on checkpointer_ only: its start, the
    /// count then, and whether the last complete window was quiet.
    std::atomic<std::uint64_t> written_bytes_{0};
    std::chrono::steady_clock::time_point lull_since_{};
    std::uint64_t lull_bytes_ = 0;
    bool lull_ = false;
    /// Slot deletions completed since opening: a compaction planned before one ended may
    /// have passed over its key range already.
    std::atomic<std::uint64_t> deletions_{0};
    /// Every batch record whose first index is below it was deleted by a checkpoint since
    /// opening; under checkpoint_mutex_. A checkpoint deletes from here on rather than from
    /// the start: the records deleted before are tombstones until LevelDB compacts them, and
    /// an iterator steps over each one. It deletes up to the checkpoint before it, keeping
    /// the records since then for applied_history().
    index_t batch_records_from_ = 0;
    std::string checkpoint_error_; ///< under checkpoint_mutex_
    std::thread checkpointer_;

    mutable std::mutex stats_mutex_;
    kv_state_machine_stats stats_; ///< under stats_mutex_
    void record(log2_histogram kv_state_machine_stats::*which, std::chrono::steady_clock::time_point start);
};

/** A point-in-time view of a kv_state_machine's state, read as a byte stream in chunks
    (`raftkv::snapshot_reader`).

    Made by kv_state_machine::snapshot() from a LevelDB snapshot: applies and restores
    after it do not change what it yields, and it never holds the whole state. The stream
    (layout in docs/leveldb.md) is a header, one record per meta record, user key and client
    session, and a trailer with a record count and checksum;
    kv_state_machine::restore_chunk() reads it back, however it is cut.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
class kv_state_machine::snapshot_reader {
public:
    snapshot_reader(snapshot_reader&&) noexcept = default;
    snapshot_reader& operator=(snapshot_reader&&) noexcept = default;
    ~snapshot_reader() = default;

    /// The applied index of the state this reader yields.
    index_t index() const noexcept { return index_; }

    /// Replaces `out` with the next chunk of the stream: whole parts (header, records,
    /// trailer) up to `max_bytes` in all, or a single part that is larger. Returns true
    /// when the chunk is the last; the reader then lets go of its LevelDB snapshot.
    /// Throws std::runtime_error if LevelDB fails to read.
    /// REQUIRES: no earlier call returned true (checked: std::logic_error).
    bool read(std::string& out, std::size_t max_bytes);

private:
    friend class kv_state_machine;

    enum class part { header, meta, user, sessions, trailer, done };

    struct release_snapshot {
        ::leveldb::DB* db = nullptr;
        void operator()(const ::leveldb::Snapshot* s) const noexcept { db->ReleaseSnapshot(s); }
    };

    explicit snapshot_reader(const kv_state_machine& machine);
    static record_kind kind_of(part p) noexcept
    {
        return p == part::meta   ? record_kind::meta
               : p == part::user ? record_kind::user
                                 : record_kind::session;
    }
    void start(part p);
    bool in_part() const;
    bool fits(const std::string& out, std::size_t bytes, std::size_t max_bytes) const noexcept
    {
        return out.empty() || out.size() + bytes <= max_bytes;
    }

    const kv_state_machine* machine_;
    std::unique_ptr<const ::leveldb::Snapshot, release_snapshot> snapshot_;
    std::unique_ptr<::leveldb::Iterator> it_;
    index_t index_ = 0;
    int slot_ = 0;
    part part_ = part::header;
    detail::snapshot_encoder encoder_;
};

inline kv_state_machine::kv_state_machine(const std::filesystem::path& dir,
                                          const kv_state_machine_options& opts)
    : name_(detail::store_name("raftkv::leveldb::kv_state_machine", dir)), dir_(dir), opts_(opts),
      env_(opts.read_only ? std::make_unique<detail::overlay_env>() : nullptr),
      db_(detail::open_database(dir, name_, !opts.sync, env_.get(), &skipped_damaged_log_))
{
    std::string found;
    const ::leveldb::Status s = db_->Get(detail::checked_reads(), detail::to_slice(format_key), &found);
    if (!s.IsNotFound())
        detail::check(s, name_, "cannot read the format record");
    const bool old = s.ok() && (found == format_v1 || found == format_v2);
    if (old && opts_.read_only)
        detail::fail(name_,
                     "format '" + found + "' is upgraded in place by the next start, and read only after it");
    if (!old)
        detail::check_format(*db_, format_key, format, name_, {format_v3, format_v4});
    load();
    if (opts_.read_only) {
        load_sessions();
        return;
    }
    if (stale_)
        delete_slot(other_slot());
    if (old)
        upgrade(found);
    load_sessions();
    if (read(compact_key, detail::checked_reads()).has_value())
        compact_in_background();
}

inline void kv_state_machine::check_writable(std::string_view what) const
{
    if (opts_.read_only)
        throw std::logic_error(name_ + ": " + std::string(what) + ": the state was opened read-only");
}

// Copies the state into the other slot with every user value at version 0, as a restore
// would, then switches to it and records the current format in one synced write. A crash before
// the switch leaves the old format and slot (the copy is stale and deleted on the next
// open, by this build or an older one); a crash after it leaves the old slot stale.
inline void kv_state_machine::upgrade(std::string_view from)
{
    ::leveldb::ReadOptions options = detail::checked_reads();
    options.fill_cache = false;
    std::unique_ptr<::leveldb::Iterator> it(db_->NewIterator(options));
    const int next = other_slot();
    const std::string what = "cannot upgrade the state from '" + std::string(from) + "'";
    ::leveldb::WriteBatch batch;
    std::string value;
    for (const record_kind kind : {record_kind::meta, record_kind::user}) {
        const char p = prefix(kind, slot());
        for (it->Seek(std::string(1, p)); it->Valid() && it->key().size() > 0 && it->key()[0] == p;
             it->Next()) {
            const std::string_view key = detail::to_view(it->key()).substr(1);
            value.clear();
            if (kind == record_kind::user)
                encode_value(value, 0, detail::to_view(it->value()));
            else
                value.assign(detail::to_view(it->value()));
            batch.Put(data_key(prefix(kind, next), key), value);
            if (batch.ApproximateSize() >= opts_.restore_batch_bytes)
                write_staged(batch, what);
        }
        detail::check(it->status(), name_, what);
    }
    it.reset();
    batch.Put(detail::to_slice(slot_key), std::string(1, static_cast<char>(next)));
    batch.Put(detail::to_slice(format_key), detail::to_slice(format));
    write_staged(batch, what);
    generation_.fetch_add(1);
    delete_slot(1 - next);
}

// Closing checkpoints what was applied, so a clean restart re-applies nothing, and
// finishes deleting a replaced state (else the next open would).
inline kv_state_machine::~kv_state_machine()
{
    if (checkpointer_.joinable()) {
        {
            std::lock_guard lock(checkpoint_mutex_);
            checkpoint_stop_ = true;
        }
        checkpoint_cv_.notify_one();
        checkpointer_.join();
    }
    if (!opts_.sync && !opts_.read_only && applied_ > durable_.load() && !restore_) {
        try {
            checkpoint(applied_);
        } catch (const std::exception&) {
            // The log still holds what a restart needs to re-apply.
        }
    }
    if (slot_to_delete_ >= 0 && checkpoint_error_.empty()) {
        try {
            delete_slot(slot_to_delete_);
        } catch (const std::exception&) {
            // The stale mark stays: the next open deletes it.
        }
    }
}

inline void kv_state_machine::take_snapshot()
{
    check_writable("take_snapshot()");
    if (opts_.sync)
        return;
    {
        std::lock_guard lock(checkpoint_mutex_);
        if (!checkpoint_error_.empty())
            throw std::runtime_error(checkpoint_error_);
        if (applied_ <= std::max(durable_.load(), checkpoint_wanted_))
            return;
        checkpoint_wanted_ = applied_;
        if (!checkpointer_.joinable())
            checkpointer_ = std::thread([this] { run_checkpoints(); });
    }
    checkpoint_cv_.notify_one();
}

inline void kv_state_machine::compact_in_background()
{
    check_writable("compact_in_background()");
    {
        std::lock_guard lock(checkpoint_mutex_);
        if (compaction_wanted_ || checkpoint_stop_)
            return;
        compaction_wanted_ = true;
        if (!checkpointer_.joinable())
            checkpointer_ = std::thread([this] { run_checkpoints(); });
    }
    checkpoint_cv_.notify_one();
}

// Checkpoints come first: they let the node drop log. A compaction runs one step (a key
// range) per turn of the loop, so a checkpoint or a stop waits for one step at most.
inline void kv_state_machine::run_checkpoints()
{
    std::vector<std::string> bounds; // of the compaction under way, once planned
    std::size_t step = 0;            // the next step of it: the range from bounds[step - 1]
    bool planned = false;
    std::uint64_t deletions = 0; // deletions_ when it was planned
    for (;;) {
        index_t index = 0;
        int slot = -1; // a replaced slot to delete
        {
            std::unique_lock lock(checkpoint_mutex_);
            checkpoint_cv_.wait(lock, [&] {
                return checkpoint_stop_ || compaction_wanted_ || slot_to_delete_ >= 0 ||
                       checkpoint_wanted_ > durable_.load();
            });
            if (checkpoint_stop_)
                return;
            if (checkpoint_wanted_ > durable_.load())
                index = checkpoint_wanted_;
            else if (slot_to_delete_ >= 0)
                slot = std::exchange(slot_to_delete_, -1);
            deleting_slot_ = slot >= 0;
        }
        if (index != 0) {
            try {
                checkpoint(index);
            } catch (const std::exception& e) {
                std::lock_guard lock(checkpoint_mutex_);
                checkpoint_error_ = e.what();
                return;
            }
            continue;
        }
        if (slot >= 0) {
            // A checkpoint or a stop waits for one batch of deletions at most.
            std::string error;
            try {
                delete_slot(slot, [this] {
                    std::lock_guard lock(checkpoint_mutex_);
                    return !checkpoint_stop_ && checkpoint_wanted_ <= durable_.load();
                });
            } catch (const std::exception& e) {
                error = e.what();
            }
            {
                std::lock_guard lock(checkpoint_mutex_);
                deleting_slot_ = false;
                if (stale_ && error.empty())
                    slot_to_delete_ = slot; // interrupted: go on after the checkpoint, or on closing
                else if (error.empty())
                    compaction_wanted_ = true; // deletions free no disk until compacted
                if (!error.empty())
                    checkpoint_error_ = error;
            }
            deletion_done_.notify_all();
            if (!error.empty())
                return;
            continue;
        }
        if (!writes_eased()) {
            std::unique_lock lock(checkpoint_mutex_);
            checkpoint_cv_.wait_for(lock, std::chrono::milliseconds(100), [&] {
                return checkpoint_stop_ || slot_to_delete_ >= 0 || checkpoint_wanted_ > durable_.load();
            });
            continue;
        }
        if (!planned) {
            deletions = deletions_.load();
            bounds = compaction_bounds();
            step = 0;
            planned = true;
        }
        // Step i compacts [bounds[i - 1], bounds[i]] (CompactRange includes both ends), from
        // the first key for the first step and to the last for the last.
        std::optional<::leveldb::Slice> begin, end;
        if (step > 0)
            begin.emplace(bounds[step - 1]);
        if (step < bounds.size())
            end.emplace(bounds[step]);
        db_->CompactRange(begin ? &*begin : nullptr, end ? &*end : nullptr);
        ++step;
        if (opts_.on_compaction_step)
            opts_.on_compaction_step(step, bounds.size() + 1);
        if (step <= bounds.size())
            continue;
        planned = false;
        // A deletion that ended meanwhile may have left keys in ranges already compacted: once
        // more. Otherwise the space of every deletion is back: the mark goes (unsynced: if
        // lost, the next open compacts once more).
        if (deletions_.load() != deletions)
            continue;
        ::leveldb::WriteBatch clear;
        clear.Delete(detail::to_slice(compact_key));
        [[maybe_unused]] const ::leveldb::Status ignored = db_->Write(::leveldb::WriteOptions{}, &clear);
        std::lock_guard lock(checkpoint_mutex_);
        compaction_wanted_ = false;
        compactions_.fetch_add(1);
    }
}

// Writes are counted over windows of a second or more (a step may last longer). A step
// starts if the last complete window wrote at most compaction_max_write_rate a second, the
// current one has not yet written more than a second's worth, and level 0 holds fewer
// tables than make LevelDB compact it (4). A window older than 10 s is no measure of now:
// measuring starts again, and the first step waits a second.
inline bool kv_state_machine::writes_eased()
{
    if (opts_.compaction_max_write_rate == 0)
        return true;
    const auto now = std::chrono::steady_clock::now();
    const std::uint64_t written = written_bytes_.load(std::memory_order_relaxed);
    const std::uint64_t limit = opts_.compaction_max_write_rate;
    auto elapsed = std::chrono::duration<double>(now - lull_since_).count();
    if (elapsed > 10.0) { // not measuring (no compaction under way lately): start now
        lull_since_ = now;
        lull_bytes_ = written;
        lull_ = false;
        elapsed = 0;
    }
    if (elapsed >= 1.0) {
        lull_ = static_cast<double>(written - lull_bytes_) <= static_cast<double>(limit) * elapsed;
        lull_since_ = now;
        lull_bytes_ = written;
    } else if (written - lull_bytes_ > limit) {
        lull_ = false;
    }
    if (!lull_)
        return false;
    std::string level0;
    unsigned files = 0;
    return !db_->GetProperty("leveldb.num-files-at-level0", &level0) ||
           std::from_chars(level0.data(), level0.data() + level0.size(), files).ec != std::errc{} ||
           files < 4;
}

inline std::uint64_t kv_state_machine::approximate_bytes(const std::string& lo, const std::string& hi) const
{
    const ::leveldb::Range range(lo, hi);
    std::uint64_t size = 0;
    db_->GetApproximateSizes(&range, 1, &size);
    return size;
}

// Every key this machine writes sorts below "\xff" (they start with a letter).
inline std::vector<std::string> kv_state_machine::compaction_bounds() const
{
    std::vector<std::string> bounds;
    compaction_bounds(std::string(), std::string(1, '\xff'), 0, bounds);
    return bounds;
}

// Halves [lo, hi) until each piece holds at most opts_.compaction_step_bytes, and marks a
// bound only between two pieces that both hold data: keys crowded under a common prefix
// take many halvings of the byte space, whose empty halves need no step of their own.
// 256 halvings reach the 32nd byte of a key; a piece that is still larger is one step.
inline void kv_state_machine::compaction_bounds(const std::string& lo, const std::string& hi, int depth,
                                                std::vector<std::string>& bounds) const
{
    if (depth >= 256 || approximate_bytes(lo, hi) <= opts_.compaction_step_bytes)
        return;
    const std::optional<std::string> mid = detail::key_between(lo, hi);
    if (!mid)
        return;
    const bool left = approximate_bytes(lo, *mid) > 0;
    const bool right = approximate_bytes(*mid, hi) > 0;
    if (left)
        compaction_bounds(lo, *mid, depth + 1, bounds);
    if (left && right)
        bounds.push_back(*mid);
    if (right)
        compaction_bounds(*mid, hi, depth + 1, bounds);
}

// Every write up to `index` was made before this runs. CompactRange first flushes the
// memtable to a table file and waits for it (LevelDB syncs the table and its manifest);
// its range holds no key, so it compacts nothing else. Then the index is recorded, synced.
inline kv_state_machine_stats kv_state_machine::stats() const
{
    std::lock_guard lock(stats_mutex_);
    return stats_;
}

inline void kv_state_machine::record(log2_histogram kv_state_machine_stats::*which,
                                     std::chrono::steady_clock::time_point start)
{
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start);
    std::lock_guard lock(stats_mutex_);
    (stats_.*which).record(static_cast<std::uint64_t>(ns.count()));
}

inline void kv_state_machine::checkpoint(index_t index)
{
    const auto start = std::chrono::steady_clock::now();
    const ::leveldb::Slice nothing("\xff\xff");
    db_->CompactRange(&nothing, &nothing);
    std::lock_guard lock(checkpoint_mutex_);
    const index_t previous = durable_.load();
    if (index <= previous)
        return; // a restore finished meanwhile and went further
    ::leveldb::WriteBatch batch;
    batch.Put(detail::to_slice(durable_index_key), encode_index(index));
    if (previous >= batch_records_from_)
        delete_batch_records(batch, batch_records_from_, previous);
    write_synced(batch, "cannot record a checkpoint");
    batch_records_from_ = std::max(batch_records_from_, previous + 1);
    record(&kv_state_machine_stats::checkpoint_ns, start); // before snapshot_index() shows it
    durable_.store(index);
}

inline void kv_state_machine::apply(std::span<const log_entry> batch, std::span<kv_result> results)
{
    assert(results.size() == batch.size());
    check_writable("apply()");
    if (batch.empty())
        return;
    assert(batch.front().index == applied_ + 1);
    const auto start = std::chrono::steady_clock::now();

    const int current = slot();
    ::leveldb::WriteBatch writes;
    // Whether each key this batch wrote exists after its last write, and its version;
    // views into `batch`.
    std::unordered_map<std::string_view, key_state> written;
    // Reads what the database held before this batch; made at the first read. A plain put
    // reads nothing: its version is its entry's index.
    std::unique_ptr<::leveldb::Iterator> before;
    std::string value;
    // With `sync` off, the batch record: the last index, then the entries that changed no key.
    std::string outcomes;
    if (!opts_.sync) {
        outcomes = encode_index(batch.back().index);
        outcomes.push_back(batch_outcomes_tag);
    }
    sessions_.start_batch();
    try {
        for (std::size_t k = 0; k < batch.size(); ++k) {
            const log_entry& e = batch[k];
            assert(k == 0 || e.index == batch[k - 1].index + 1);
            results[k] = kv_result{};
            if (e.type != entry_type::normal)
                continue;
            const std::optional<kv_command> c = decode_kv_command(e.data);
            if (!c)
                continue;
            if (c->op == kv_command_op::meta) {
                writes.Put(data_key(meta_prefix[current], c->key), detail::to_slice(c->value));
                results[k].found = true;
                continue;
            }
            results[k] = apply_with_session(sessions_, *c, e.index, [&] {
                return apply_command(*c, e.index, current, writes, written, before, value);
            });
            if (!opts_.sync && !changed_user_key(*c, results[k]))
                detail::put_u64_be(outcomes, e.index);
        }
        for (const std::uint64_t client : sessions_.changed()) {
            const std::string key = data_key(session_prefix[current], kv_session_table::encode_id(client));
            if (const kv_session* session = sessions_.find(client))
                writes.Put(key, kv_session_table::encode(*session));
            else
                writes.Delete(key);
        }
    } catch (...) {
        sessions_.rollback();
        throw;
    }
    writes.Put(detail::to_slice(applied_index_key), encode_index(batch.back().index));
    if (!opts_.sync)
        writes.Put(batch_key(batch.front().index), outcomes);
    if (opts_.sync)
        writes.Put(detail::to_slice(durable_index_key), encode_index(batch.back().index));

    ::leveldb::WriteOptions options;
    options.sync = opts_.sync;
    const ::leveldb::Status s = db_->Write(options, &writes);
    if (!s.ok())
        sessions_.rollback();
    else
        sessions_.commit();
    if (!s.ok())
        detail::fail_storage(name_, "cannot apply entries " + std::to_string(batch.front().index) + " to " +
                                        std::to_string(batch.back().index) + ": " + s.ToString());
    written_bytes_.fetch_add(writes.ApproximateSize(), std::memory_order_relaxed);
    applied_ = batch.back().index;
    record(&kv_state_machine_stats::apply_ns, start);
    if (opts_.on_applied)
        opts_.on_applied(batch, results);
}

// Applies a put or a delete to the slot `slot` through `writes`; `written` holds the state
// this batch left each key it wrote, `before` reads what the database held before it.
inline kv_result kv_state_machine::apply_command(const kv_command& c, index_t index, int slot,
                                                 ::leveldb::WriteBatch& writes,
                                                 std::unordered_map<std::string_view, key_state>& written,
                                                 std::unique_ptr<::leveldb::Iterator>& before,
                                                 std::string& value) const
{
    const std::string key = data_key(user_prefix[slot], c.key);
    key_state was;
    if (c.op == kv_command_op::del || !c.precondition.empty()) {
        const auto w = written.find(c.key);
        was = w != written.end() ? w->second : stored(key, before);
    }
    const kv_precondition& pre = c.precondition;
    if ((pre.expect_absent && was.exists) ||
        (pre.expect_version && !(was.exists && was.version == *pre.expect_version)))
        return kv_result{was.exists, kv_status::precondition_failed, was.exists ? was.version : 0};
    if (c.op == kv_command_op::put) {
        value.clear();
        encode_value(value, index, c.value);
        writes.Put(key, value);
        written[c.key] = key_state{true, index};
        return kv_result{true, kv_status::ok, index};
    }
    if (was.exists)
        writes.Delete(key);
    written[c.key] = key_state{};
    return kv_result{was.exists, kv_status::ok, was.exists ? was.version : 0};
}

inline kv_state_machine::snapshot_reader kv_state_machine::snapshot() const
{
    return snapshot_reader(*this);
}

inline void kv_state_machine::begin_restore(const snapshot_meta& meta)
{
    check_writable("begin_restore()");
    abort_restore(); // which awaits the deletion of the slot the restore writes to
    restore_ = std::make_unique<restore_state>(meta);
}

inline void kv_state_machine::restore_chunk(std::string_view data)
{
    restore_state& r = restoring("restore_chunk");
    r.failed = true;
    try {
        r.decoder.feed(data, [this](record_kind kind, std::string_view key, std::string_view value) {
            stage(kind, key, value);
        });
    } catch (const detail::snapshot_stream_error& e) {
        detail::fail(name_, "cannot restore " + restoring_what() + ": a chunk does not decode: " + e.what());
    }
    r.failed = false;
}

inline void kv_state_machine::finish_restore()
{
    restore_state& r = restoring("finish_restore");
    if (!r.decoder.done()) {
        r.failed = true;
        detail::fail(name_, "cannot finish restoring " + restoring_what() + ": the stream is incomplete (" +
                                r.decoder.missing() + ")");
    }
    const index_t index = r.meta.index;
    const int next = other_slot();
    r.batch.Put(detail::to_slice(slot_key), std::string(1, static_cast<char>(next)));
    r.batch.Put(detail::to_slice(applied_index_key), encode_index(index));
    r.batch.Put(detail::to_slice(restored_index_key), encode_index(index));
    r.batch.Put(detail::to_slice(durable_index_key), encode_index(index));
    r.failed = true;
    {
        // The last records and the switch in one write; the old slot becomes the stale one.
        // Under the checkpoint lock, so a checkpoint of the replaced state cannot record
        // its older index afterwards.
        std::lock_guard lock(checkpoint_mutex_);
        write_staged(r.batch, "cannot finish restoring " + restoring_what());
        durable_.store(index);
    }
    applied_ = index;
    restored_ = index;
    generation_.fetch_add(1);
    sessions_ = std::move(r.sessions);
    restore_.reset();
    if (opts_.on_restored)
        opts_.on_restored(index);
    {
        std::lock_guard lock(checkpoint_mutex_);
        slot_to_delete_ = 1 - next;
        if (!checkpointer_.joinable())
            checkpointer_ = std::thread([this] { run_checkpoints(); });
    }
    checkpoint_cv_.notify_one();
}

inline void kv_state_machine::abort_restore()
{
    check_writable("abort_restore()");
    await_slot_deletion();
    restore_.reset();
    if (stale_) {
        delete_slot(other_slot());
        compact_in_background();
    }
}

// The owner's thread, before it writes to the slot not in use or reads stale_: a deletion
// of that slot left to checkpointer_ is finished first, here if it has not begun.
inline void kv_state_machine::await_slot_deletion()
{
    std::unique_lock lock(checkpoint_mutex_);
    if (slot_to_delete_ >= 0 && !deleting_slot_) {
        const int slot = std::exchange(slot_to_delete_, -1);
        lock.unlock();
        delete_slot(slot);
        compact_in_background();
        return;
    }
    deletion_done_.wait(lock, [&] { return !deleting_slot_; });
}

inline std::optional<std::string> kv_state_machine::get(std::string_view key) const
{
    std::optional<kv_versioned_value> v = get_versioned(key);
    if (!v)
        return std::nullopt;
    return std::move(v->value);
}

inline std::optional<kv_versioned_value> kv_state_machine::get_versioned(std::string_view key) const
{
    const std::optional<std::string> stored = read_current(record_kind::user, key);
    if (!stored)
        return std::nullopt;
    return decode_stored(*stored);
}

inline std::optional<std::string> kv_state_machine::get_meta(std::string_view name) const
{
    return read_current(record_kind::meta, name);
}

inline void kv_state_machine::erase_meta(std::string_view prefix)
{
    check_writable("erase_meta()");
    const std::string first = data_key(meta_prefix[slot()], prefix);
    std::unique_ptr<::leveldb::Iterator> it(db_->NewIterator(detail::checked_reads()));
    ::leveldb::WriteBatch batch;
    for (it->Seek(detail::to_slice(first)); it->Valid() && it->key().starts_with(detail::to_slice(first));
         it->Next())
        batch.Delete(it->key());
    detail::check(it->status(), name_, "cannot read the meta records");
    write_synced(batch, "cannot delete meta records");
}

inline kv_scan_page kv_state_machine::scan(const kv_scan_options& options) const
{
    // A snapshot holds the slot record and the state it names together, so a restore
    // finishing meanwhile cannot mix two states into one page.
    const std::unique_ptr<const ::leveldb::Snapshot, snapshot_reader::release_snapshot> snapshot(
        db_->GetSnapshot(), snapshot_reader::release_snapshot{db_.get()});
    ::leveldb::ReadOptions read_options = detail::checked_reads();
    read_options.snapshot = snapshot.get();
    const std::string wanted = data_key(user_prefix[read_slot(read_options)], options.prefix);
    const std::string after = data_key(wanted[0], options.after);
    std::unique_ptr<::leveldb::Iterator> it(db_->NewIterator(read_options));
    it->Seek(detail::to_slice(std::max(wanted, after)));
    if (it->Valid() && it->key() == detail::to_slice(after))
        it->Next();
    kv_scan_page page;
    std::size_t bytes = 0;
    for (; it->Valid() && it->key().starts_with(detail::to_slice(wanted)); it->Next()) {
        index_t version = 0;
        std::string_view value;
        if (!decode_value(detail::to_view(it->value()), version, value))
            detail::fail_storage(name_, "corrupt state machine: a stored value has no version");
        const std::size_t size = it->key().size() - 1 + (options.keys_only ? 0 : value.size());
        if (page.items.size() >= options.limit || (!page.items.empty() && bytes + size > options.max_bytes)) {
            page.more = true;
            break;
        }
        bytes += size;
        page.items.emplace_back(std::string(detail::to_view(it->key()).substr(1)),
                                options.keys_only ? std::string() : std::string(value));
        page.versions.push_back(version);
    }
    detail::check(it->status(), name_, "cannot read keys");
    return page;
}

inline std::optional<std::string> kv_state_machine::read_current(record_kind kind, std::string_view key) const
{
    // A restore finishing meanwhile switches slots, then deletes the old slot's keys, and
    // the next one writes there: whatever was read from a slot no longer current is stale.
    for (;;) {
        const std::uint64_t generation = generation_.load();
        std::optional<std::string> value =
            read(data_key(prefix(kind, static_cast<int>(generation & 1)), key), detail::checked_reads());
        if (generation_.load() == generation)
            return value;
    }
}

inline std::optional<std::string> kv_state_machine::read(std::string_view key,
                                                         const ::leveldb::ReadOptions& options) const
{
    std::string value;
    const ::leveldb::Status s = db_->Get(options, detail::to_slice(key), &value);
    if (s.IsNotFound())
        return std::nullopt;
    detail::check(s, name_, "cannot read a key");
    return value;
}

inline index_t kv_state_machine::read_index(std::string_view key, const std::string& what,
                                            const ::leveldb::ReadOptions& options) const
{
    const std::optional<std::string> value = read(key, options);
    if (!value)
        return 0;
    if (value->size() != detail::u64_size)
        detail::fail_storage(name_, "corrupt state machine: the " + what + " record is " +
                                        std::to_string(value->size()) + " bytes long, not " +
                                        std::to_string(detail::u64_size));
    return detail::get_u64_be(*value);
}

inline int kv_state_machine::read_slot(const ::leveldb::ReadOptions& options) const
{
    const std::optional<std::string> value = read(slot_key, options);
    if (!value)
        return 0;
    if (value->size() != 1 || static_cast<unsigned char>((*value)[0]) > 1)
        detail::fail_storage(name_, "corrupt state machine: the slot record is not one byte 0 or 1");
    return (*value)[0];
}

inline void kv_state_machine::load()
{
    const ::leveldb::ReadOptions options = detail::checked_reads();
    generation_ = static_cast<std::uint64_t>(read_slot(options));
    applied_ = read_index(applied_index_key, "applied index", options);
    restored_ = read_index(restored_index_key, "restored index", options);
    stale_ = read(stale_key, options).has_value();
    const bool recorded = read(durable_index_key, options).has_value();
    durable_ = recorded ? read_index(durable_index_key, "durable index", options) : restored_;
    // Without syncing, the stored state past the checkpoint may lack earlier writes. When
    // the record of every batch since the checkpoint is there, none is missing (a process
    // crash, or a machine crash that lost only a suffix): resume after the last. Otherwise
    // resume from the checkpoint, forget the batch records past it, and let the node
    // re-apply the rest of the log (docs/wal.md, Applying without fsync).
    if (!opts_.sync && applied_ > durable_.load() && !batches_complete(durable_.load(), applied_, options)) {
        ::leveldb::WriteBatch batch;
        delete_batch_records(batch, durable_.load() + 1, applied_);
        write_synced(batch, "cannot forget the batches past the checkpoint");
        applied_ = durable_.load();
    }
    if (!opts_.sync && applied_ < durable_.load())
        applied_ = durable_.load();
}

// Reads the sessions of the slot in use into memory.
inline void kv_state_machine::load_sessions()
{
    sessions_.clear();
    ::leveldb::ReadOptions options = detail::checked_reads();
    options.fill_cache = false;
    std::unique_ptr<::leveldb::Iterator> it(db_->NewIterator(options));
    const char p = session_prefix[slot()];
    for (it->Seek(std::string(1, p)); it->Valid() && it->key().size() > 0 && it->key()[0] == p; it->Next()) {
        const std::optional<std::uint64_t> client =
            kv_session_table::decode_id(detail::to_view(it->key()).substr(1));
        std::optional<kv_session> session = kv_session_table::decode(detail::to_view(it->value()));
        if (!client || !session)
            detail::fail_storage(name_, "corrupt state machine: a client session record does not decode");
        sessions_.load(*client, std::move(*session));
    }
    detail::check(it->status(), name_, "cannot read the client sessions");
}

inline std::string kv_state_machine::batch_key(index_t first)
{
    std::string out(batch_key_prefix);
    detail::put_u64_be(out, first);
    return out;
}

/// Whether the records of the batches (from, to] are all stored, each starting right after
/// the one before.
inline bool kv_state_machine::batches_complete(index_t from, index_t to,
                                               const ::leveldb::ReadOptions& options) const
{
    index_t at = from;
    while (at < to) {
        const std::optional<std::string> value = read(batch_key(at + 1), options);
        const std::optional<batch_record> r = value ? decode_batch_record(*value) : std::nullopt;
        if (!r || r->last <= at || r->last > to)
            return false;
        at = r->last;
    }
    return true;
}

inline std::optional<kv_state_machine::batch_record>
kv_state_machine::decode_batch_record(std::string_view value) noexcept
{
    if (value.size() < detail::u64_size)
        return std::nullopt;
    batch_record r;
    r.last = detail::get_u64_be(value);
    value.remove_prefix(detail::u64_size);
    if (value.empty())
        return r;
    if (value.front() != batch_outcomes_tag || (value.size() - 1) % detail::u64_size != 0)
        return std::nullopt;
    r.outcomes = true;
    r.unchanged = value.substr(1);
    return r;
}

// Walks the batch records after the last restore; the history is the run of records with
// outcomes that reaches the applied index, each starting right after the one before.
inline kv_applied_history kv_state_machine::applied_history() const
{
    kv_applied_history h{applied_ + 1, {}};
    if (opts_.sync)
        return h;
    ::leveldb::ReadOptions options = detail::checked_reads();
    options.fill_cache = false;
    std::unique_ptr<::leveldb::Iterator> it(db_->NewIterator(options));
    index_t first = 0; // of the run; 0 while there is none
    index_t next = 0;
    std::vector<index_t> unchanged;
    for (it->Seek(batch_key(restored_ + 1));
         it->Valid() && it->key().starts_with(detail::to_slice(batch_key_prefix)); it->Next()) {
        const std::string_view key = detail::to_view(it->key()).substr(batch_key_prefix.size());
        const std::optional<batch_record> r = decode_batch_record(detail::to_view(it->value()));
        const index_t at = key.size() == detail::u64_size ? detail::get_u64_be(key) : 0;
        const bool usable = r && at != 0 && r->last >= at && r->last <= applied_;
        if (!usable || !r->outcomes || at != next) {
            first = 0;
            unchanged.clear();
        }
        if (usable && r->outcomes) {
            if (first == 0)
                first = at;
            for (std::string_view u = r->unchanged; !u.empty(); u.remove_prefix(detail::u64_size))
                unchanged.push_back(detail::get_u64_be(u));
        }
        next = usable ? r->last + 1 : 0;
    }
    detail::check(it->status(), name_, "cannot read the batch records");
    if (first != 0 && next == applied_ + 1) {
        h.first = first;
        h.unchanged = std::move(unchanged);
    }
    return h;
}

/// Adds to `batch` the deletion of every batch record whose first index is in [from, to].
inline void kv_state_machine::delete_batch_records(::leveldb::WriteBatch& batch, index_t from,
                                                   index_t to) const
{
    ::leveldb::ReadOptions options = detail::checked_reads();
    options.fill_cache = false;
    std::unique_ptr<::leveldb::Iterator> it(db_->NewIterator(options));
    const std::string end = batch_key(to);
    for (it->Seek(batch_key(from));
         it->Valid() && it->key().starts_with(detail::to_slice(batch_key_prefix)) &&
         detail::to_view(it->key()) <= std::string_view(end);
         it->Next())
        batch.Delete(it->key());
    detail::check(it->status(), name_, "cannot read the batch records");
}

inline std::string kv_state_machine::data_key(char prefix, std::string_view key)
{
    std::string out;
    out.reserve(1 + key.size());
    out.push_back(prefix);
    out.append(key);
    return out;
}

inline std::string kv_state_machine::encode_index(index_t i)
{
    std::string out;
    detail::put_u64_be(out, i);
    return out;
}

inline void kv_state_machine::encode_value(std::string& out, index_t version, std::string_view value)
{
    detail::put_varint64(out, version);
    out.append(value);
}

inline bool kv_state_machine::decode_value(std::string_view stored, index_t& version,
                                           std::string_view& value) noexcept
{
    std::size_t pos = 0;
    std::uint64_t v = 0;
    if (detail::get_varint64(stored, pos, v) != detail::varint_status::ok)
        return false;
    version = v;
    value = stored.substr(pos);
    return true;
}

inline kv_versioned_value kv_state_machine::decode_stored(std::string_view stored) const
{
    index_t version = 0;
    std::string_view value;
    if (!decode_value(stored, version, value))
        detail::fail_storage(name_, "corrupt state machine: a stored value has no version");
    return kv_versioned_value{std::string(value), version};
}

inline kv_state_machine::key_state kv_state_machine::stored(const std::string& key,
                                                            std::unique_ptr<::leveldb::Iterator>& it) const
{
    if (!it)
        it.reset(db_->NewIterator(detail::checked_reads()));
    it->Seek(key);
    key_state state;
    if (it->Valid() && detail::to_view(it->key()) == key) {
        std::string_view value;
        if (!decode_value(detail::to_view(it->value()), state.version, value))
            detail::fail_storage(name_, "corrupt state machine: the value of a key has no version");
        state.exists = true;
    }
    detail::check(it->status(), name_, "cannot read a key");
    return state;
}

inline kv_state_machine::restore_state& kv_state_machine::restoring(std::string_view call)
{
    if (!restore_)
        throw std::logic_error(name_ + ": " + std::string(call) + " without begin_restore");
    if (restore_->failed)
        detail::fail(name_, std::string(call) + ": the restore of " + restoring_what() +
                                " failed earlier; abort it or begin another");
    return *restore_;
}

/// Names the snapshot being restored, for error messages.
inline std::string kv_state_machine::restoring_what() const
{
    return "the snapshot at index " + std::to_string(restore_->meta.index);
}

/// Adds a decoded record to the slot not in use; writes the batch once it is large enough.
inline void kv_state_machine::stage(record_kind kind, std::string_view key, std::string_view value)
{
    ::leveldb::WriteBatch& batch = restore_->batch;
    if (kind == record_kind::user) {
        // A version-1 stream predates versions: its keys get version 0.
        std::string& stored = restore_->value;
        stored.clear();
        if (restore_->decoder.version() == 1) {
            encode_value(stored, 0, value);
        } else {
            index_t version = 0;
            std::string_view plain;
            if (!decode_value(value, version, plain))
                throw detail::snapshot_stream_error("a key's record has no version");
            stored.assign(value);
        }
        batch.Put(data_key(prefix(kind, other_slot()), key), stored);
    } else if (kind == record_kind::session) {
        const std::optional<std::uint64_t> client = kv_session_table::decode_id(key);
        std::optional<kv_session> session = kv_session_table::decode(value);
        if (!client || !session)
            throw detail::snapshot_stream_error("a client session's record does not decode");
        restore_->sessions.load(*client, std::move(*session));
        batch.Put(data_key(prefix(kind, other_slot()), key), detail::to_slice(value));
    } else {
        batch.Put(data_key(prefix(kind, other_slot()), key), detail::to_slice(value));
    }
    if (batch.ApproximateSize() >= opts_.restore_batch_bytes)
        write_staged(batch, "cannot restore " + restoring_what());
}

/// Writes a batch of the restore, synced and marking the slot not in use stale. Each is
/// synced because a later synced write does not cover an earlier unsynced one (see
/// kv_state_machine_options::sync): the switch must find every record on disk.
inline void kv_state_machine::write_staged(::leveldb::WriteBatch& batch, const std::string& what)
{
    if (opts_.restore_min_free_bytes != 0) {
        struct statvfs fs {};
        if (::statvfs(dir_.c_str(), &fs) == 0) {
            const std::uint64_t free = std::uint64_t{fs.f_bavail} * fs.f_frsize;
            const std::uint64_t need = opts_.restore_min_free_bytes + batch.ApproximateSize();
            if (free < need) {
                constexpr std::uint64_t mib = std::uint64_t{1} << 20;
                const std::uint64_t written = restore_ ? restore_->written : 0;
                detail::fail_storage(name_, what + ": " + std::to_string(free / mib) + " MiB free on " +
                                                dir_.string() + ", and a restore leaves " +
                                                std::to_string(opts_.restore_min_free_bytes / mib) +
                                                " MiB free: the state being restored, written beside the "
                                                "current one, does not fit (free space for both; " +
                                                std::to_string(written / mib) +
                                                " MiB of it were written before this)");
            }
        }
    }
    batch.Put(detail::to_slice(stale_key), {});
    stale_ = true;
    write_synced(batch, what);
    written_bytes_.fetch_add(batch.ApproximateSize(), std::memory_order_relaxed);
    if (restore_)
        restore_->written += batch.ApproximateSize();
    batch.Clear();
}

/// Deletes every key of `slot`, then the stale mark, in synced writes: a crash midway
/// leaves the mark, and the next open finishes the job. Synced, so that no deletion can
/// be lost under the keys a later restore writes to the same slot.
inline void kv_state_machine::delete_slot(int slot, const std::function<bool()>& go_on)
{
    ::leveldb::ReadOptions options = detail::checked_reads();
    options.fill_cache = false;
    // A point-in-time view: the deletions below do not disturb it.
    std::unique_ptr<::leveldb::Iterator> it(db_->NewIterator(options));
    ::leveldb::WriteBatch batch;
    for (const record_kind kind : {record_kind::meta, record_kind::user, record_kind::session}) {
        const char p = prefix(kind, slot);
        for (it->Seek(std::string(1, p)); it->Valid() && it->key().size() > 0 && it->key()[0] == p;
             it->Next()) {
            batch.Delete(it->key());
            if (batch.ApproximateSize() >= opts_.restore_batch_bytes) {
                write_synced(batch, "cannot delete replaced state");
                batch.Clear();
                if (go_on && !go_on())
                    return;
            }
        }
        detail::check(it->status(), name_, "cannot read replaced state");
    }
    batch.Delete(detail::to_slice(stale_key));
    batch.Put(detail::to_slice(compact_key), {});
    write_synced(batch, "cannot delete replaced state");
    stale_ = false;
    deletions_.fetch_add(1);
}

inline void kv_state_machine::write_synced(::leveldb::WriteBatch& batch, const std::string& what)
{
    ::leveldb::WriteOptions options;
    options.sync = true;
    detail::check(db_->Write(options, &batch), name_, what);
}

inline kv_state_machine::snapshot_reader::snapshot_reader(const kv_state_machine& machine)
    : machine_(&machine), snapshot_(machine.db_->GetSnapshot(), release_snapshot{machine.db_.get()})
{
    ::leveldb::ReadOptions options = detail::checked_reads();
    options.snapshot = snapshot_.get();
    slot_ = machine.read_slot(options);
    index_ = machine.read_index(applied_index_key, "applied index", options);
    options.fill_cache = false;
    it_.reset(machine.db_->NewIterator(options));
}

inline bool kv_state_machine::snapshot_reader::read(std::string& out, std::size_t max_bytes)
{
    if (part_ == part::done)
        throw std::logic_error(machine_->name_ + ": snapshot_reader::read after the last chunk");
    out.clear();
    if (part_ == part::header) {
        encoder_.header(out, index_);
        start(part::meta);
    }
    while (part_ == part::meta || part_ == part::user || part_ == part::sessions) {
        if (!in_part()) {
            start(part_ == part::meta ? part::user : part_ == part::user ? part::sessions : part::trailer);
            continue;
        }
        const std::string_view key = detail::to_view(it_->key()).substr(1);
        const std::string_view value = detail::to_view(it_->value());
        if (!fits(out, detail::snapshot_encoder::record_size(key, value), max_bytes))
            return false;
        encoder_.record(out, kind_of(part_), key, value);
        it_->Next();
    }
    if (!fits(out, detail::snapshot_trailer_size, max_bytes))
        return false;
    encoder_.trailer(out);
    part_ = part::done;
    it_.reset();
    snapshot_.reset();
    return true;
}

inline void kv_state_machine::snapshot_reader::start(part p)
{
    part_ = p;
    if (p == part::meta || p == part::user || p == part::sessions)
        it_->Seek(std::string(1, prefix(kind_of(p), slot_)));
}

/// Whether the iterator is on a key of the current part; throws if it stopped on an error.
inline bool kv_state_machine::snapshot_reader::in_part() const
{
    const char p = prefix(kind_of(part_), slot_);
    if (it_->Valid() && it_->key().size() > 0 && it_->key()[0] == p)
        return true;
    detail::check(it_->status(), machine_->name_, "cannot read the state for a snapshot");
    return false;
}

static_assert(raftkv::state_machine<kv_state_machine>);
static_assert(raftkv::snapshot_reader<kv_state_machine::snapshot_reader>);

} // namespace raftkv::leveldb

#endif
