#ifndef RAFTKV_LEVELDB_LOG_STORE_HPP
#define RAFTKV_LEVELDB_LOG_STORE_HPP

#include <raftkv/concepts.hpp>
#include <raftkv/leveldb/detail/coding.hpp>
#include <raftkv/leveldb/detail/database.hpp>
#include <raftkv/leveldb/detail/term_cache.hpp>
#include <raftkv/membership.hpp>
#include <raftkv/types.hpp>

#include <leveldb/db.h>
#include <leveldb/iterator.h>
#include <leveldb/options.h>
#include <leveldb/status.h>
#include <leveldb/write_batch.h>

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace raftkv::leveldb {

/** A durable `raftkv::log_store` kept in a LevelDB database of its own.

    One key per retained log entry, plus one for the hard state, one for the base (the
    index and term of the snapshot the log starts after) and one for the configuration at
    the base (the layout is in docs/leveldb.md). first_index() is base + 1: 1 for a new
    store, more once the log was compacted or a snapshot installed. Every append,
    hard-state save, compaction and snapshot install is one LevelDB write with `sync =
    true`, so it is durable when the call returns and durable_index() always equals
    last_index(). The terms of the retained entries are cached in memory (8 bytes per
    entry), so last_index() and term_at() never touch the disk; entries() reads from
    LevelDB. Memory and start-up time grow with the retained log, not with its history.

    Behaves exactly as `raftkv::memory_log_store` with `sync_on_append`, except that its
    contents survive the process.

    @par Example
    @code
    raftkv::leveldb::log_store store{"/var/lib/raftkv/log"};
    raftkv::basic_node node{opts, transport, store, machine};
    @endcode

    @par Errors
    Opening throws std::runtime_error, naming the directory and the cause, when the database
    cannot be opened (permissions, locked by another process or another open store), is
    corrupt (LevelDB checksums, a malformed record, a base membership that does not decode,
    a gap in the log, an entry at or before the base) or belongs to another kind of store.
    Once open, a LevelDB read or write that fails also throws std::runtime_error: the disk
    can no longer be trusted and the process should stop. A failed append,
    save_hard_state, compact or install_snapshot leaves the store's in-memory view
    unchanged.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
class log_store {
public:
    /// Opens the log store in directory `dir`, creating it (and its parents) if missing.
    /// Throws std::runtime_error if it cannot be opened or is corrupt (see Errors above).
    explicit log_store(const std::filesystem::path& dir);

    /// The last hard state saved, or `{}` for a new store.
    hard_state saved_hard_state() const { return hard_state_; }

    /// Replaces the hard state; durable when it returns.
    void save_hard_state(const hard_state& hs);

    /// The first index held: the base index + 1, so 1 until the log is compacted or a
    /// snapshot installed.
    index_t first_index() const noexcept { return base_.index + 1; }

    /// The last index held, or first_index() - 1 when the log is empty.
    index_t last_index() const noexcept { return base_.index + terms_.size(); }

    /// Equal to last_index(): every write returns only once it is synced.
    index_t durable_index() const noexcept { return last_index(); }

    /// The term of entry `i`; term_at(first_index() - 1) is the base term (0 for a new
    /// store, so term_at(0) is 0). Never reads the disk.
    /// REQUIRES: first_index() - 1 <= i <= last_index().
    term_t term_at(index_t i) const
    {
        assert(first_index() - 1 <= i && i <= last_index());
        return i == base_.index ? base_.term : terms_[i - first_index()];
    }

    /// Copies of entries [lo, hi), stopping before the payload total would exceed
    /// `max_bytes`, but always at least one entry.
    /// REQUIRES: first_index() <= lo < hi <= last_index() + 1.
    std::vector<log_entry> entries(index_t lo, index_t hi, std::size_t max_bytes) const;

    /// Discards the entries at and after `es.front().index`, then appends `es`, in one
    /// synced LevelDB write: durable when it returns.
    /// REQUIRES: `es` is non-empty and contiguous, and
    /// first_index() <= es.front().index <= last_index() + 1.
    void append(std::span<const log_entry> es);

    /// Drops the entries up to and including `i`, in one synced LevelDB write that also
    /// records (i, term_at(i)) as the new base and `members` as the configuration at it:
    /// durable when it returns. Afterwards first_index() == i + 1 and base_members() ==
    /// members. Does nothing when i < first_index().
    /// REQUIRES: i <= last_index().
    void compact(index_t i, const membership& members);

    /// Drops every entry and restarts the log after the snapshot `meta`, in one synced
    /// LevelDB write that also records (meta.index, meta.term) as the new base and
    /// meta.members as the configuration at it: durable when it returns. Afterwards
    /// first_index() == meta.index + 1, last_index() == durable_index() == meta.index,
    /// term_at(meta.index) == meta.term and base_members() == meta.members, whatever the
    /// log held before.
    void install_snapshot(const snapshot_meta& meta);

    /// The configuration at first_index() - 1, as the last compact() or install_snapshot()
    /// gave it; empty for a new store and for one written before stores kept it.
    membership base_members() const { return base_members_; }

private:
    struct entry_header {
        term_t term;
        entry_type type;
    };

    /// The snapshot the log starts after: its last index and that entry's term.
    struct log_base {
        index_t index = 0;
        term_t term = 0;
    };

    // Keys: entry_prefix + 8-byte big-endian index for each entry, so they sort by index;
    // hard_state_key; base_key; members_key; format_key. Values of entries, the hard state
    // and the base start with record_version; the base membership is encode_membership(),
    // which starts with its own version. A missing base record is the base (0, 0): stores
    // written before compaction existed have none. A missing base membership is the empty
    // one: stores written before stores kept it have none.
    static constexpr char entry_prefix = 'e';
    static constexpr std::string_view base_key = "b";
    static constexpr std::string_view members_key = "m";
    static constexpr std::string_view format_key = "f";
    static constexpr std::string_view hard_state_key = "h";
    static constexpr std::string_view format = "raftkv.log_store.v1";
    static constexpr char record_version = 1;
    static constexpr std::size_t entry_key_size = 1 + detail::u64_size;
    // version, term, type; the entry's data follows.
    static constexpr std::size_t entry_header_size = 1 + detail::u64_size + 1;
    // version, term, vote.
    static constexpr std::size_t hard_state_size = 1 + 2 * detail::u64_size;
    // version, index, term.
    static constexpr std::size_t base_size = 1 + 2 * detail::u64_size;
    // LevelDB keeps a deleted key as a tombstone until a compaction reaches it, and
    // opening the store iterates over the tombstones of dropped entries: after this many
    // deletions the store compacts their key range itself. Iterating 64Ki tombstones takes
    // some 20 ms; compacting them, a little more, once per 64Ki dropped entries.
    static constexpr std::uint64_t tombstones_per_compaction = 64 * 1024;

    static std::string entry_key(index_t i);
    static std::string encode_entry(const log_entry& e);
    static std::optional<entry_header> decode_entry_header(std::string_view value);
    static std::string entry_problem(std::string_view value);
    static std::string encode_hard_state(const hard_state& hs);
    static std::optional<hard_state> decode_hard_state(std::string_view value);
    static std::string encode_base(const log_base& base);
    static std::optional<log_base> decode_base(std::string_view value);

    void load_hard_state();
    void load_base();
    void load_base_members();
    void load_terms();
    [[noreturn]] void corrupt(const std::string& what) const;
    ::leveldb::Status write_synced(::leveldb::WriteBatch& batch);
    void deleted(index_t lo, index_t hi) noexcept;
    void drop_tombstones() noexcept;

    std::string name_;
    std::unique_ptr<::leveldb::DB> db_;
    hard_state hard_state_;
    log_base base_;
    membership base_members_;
    /// terms_[i - first_index()] is the term of entry i; its size is the log's length.
    detail::term_cache terms_;
    /// Entry keys deleted since the store last compacted their range, and the highest.
    std::uint64_t tombstones_ = 0;
    index_t tombstones_hi_ = 0;
};

inline log_store::log_store(const std::filesystem::path& dir)
    : name_(detail::store_name("raftkv::leveldb::log_store", dir)), db_(detail::open_database(dir, name_))
{
    detail::check_format(*db_, format_key, format, name_);
    load_hard_state();
    load_base();
    load_base_members();
    load_terms();
}

inline void log_store::save_hard_state(const hard_state& hs)
{
    ::leveldb::WriteBatch batch;
    batch.Put(detail::to_slice(hard_state_key), encode_hard_state(hs));
    detail::check(write_synced(batch), name_, "cannot save the hard state");
    hard_state_ = hs;
}

inline std::vector<log_entry> log_store::entries(index_t lo, index_t hi, std::size_t max_bytes) const
{
    assert(first_index() <= lo && lo < hi && hi <= last_index() + 1);
    std::vector<log_entry> out;
    std::size_t bytes = 0;
    std::unique_ptr<::leveldb::Iterator> it(db_->NewIterator(detail::checked_reads()));
    it->Seek(entry_key(lo));
    for (index_t i = lo; i < hi; ++i, it->Next()) {
        if (!it->Valid() || detail::to_view(it->key()) != entry_key(i)) {
            detail::check(it->status(), name_, "cannot read entry " + std::to_string(i));
            corrupt("entry " + std::to_string(i) + " is missing from the database");
        }
        const std::string_view value = detail::to_view(it->value());
        const std::optional<entry_header> header = decode_entry_header(value);
        if (!header || header->term != terms_[i - first_index()])
            corrupt("entry " + std::to_string(i) + " changed on disk since it was written");
        const std::string_view data = value.substr(entry_header_size);
        bytes += data.size();
        if (!out.empty() && bytes > max_bytes)
            break;
        out.push_back(log_entry{header->term, i, header->type, std::string(data)});
    }
    return out;
}

inline void log_store::append(std::span<const log_entry> es)
{
    assert(!es.empty() && first_index() <= es.front().index && es.front().index <= last_index() + 1);
    const index_t from = es.front().index;
    const index_t new_last = from + es.size() - 1;

    ::leveldb::WriteBatch batch;
    // The conflicting suffix: the new entries overwrite keys up to new_last; delete the rest.
    for (index_t i = new_last + 1; i <= last_index(); ++i)
        batch.Delete(entry_key(i));
    for (std::size_t k = 0; k < es.size(); ++k) {
        assert(es[k].index == from + k);
        batch.Put(entry_key(es[k].index), encode_entry(es[k]));
    }

    // Asynchronous appends (group commit) would replace the synced write below: queue
    // `batch` for a background thread that merges queued batches into one synced write,
    // serve entries() from the queue until then, let durable_index() lag, and report its
    // advance to the driver (which calls basic_node::on_log_durable()); a truncation lowers
    // durable_index() to at most from - 1. The background thread must write each batch with
    // sync = true itself: writing now with sync = false and syncing later is unsafe, because
    // LevelDB does not sync a write-ahead log file it rolls over, so a later synced write
    // does not cover earlier unsynced ones.
    terms_.reserve(new_last - first_index() + 1);
    const ::leveldb::Status s = write_synced(batch);
    if (!s.ok())
        detail::fail_storage(name_, "cannot append entries " + std::to_string(from) + " to " +
                                        std::to_string(new_last) + ": " + s.ToString());
    // Within the reserved capacity: cannot throw, so memory never disagrees with disk.
    if (new_last < last_index())
        deleted(new_last + 1, last_index());
    terms_.truncate(from - first_index());
    for (const log_entry& e : es)
        terms_.push_back(e.term);
}

inline void log_store::compact(index_t i, const membership& members)
{
    assert(i <= last_index());
    if (i < first_index())
        return;
    const log_base base{i, term_at(i)};
    membership new_members = members;
    ::leveldb::WriteBatch batch;
    batch.Put(detail::to_slice(base_key), encode_base(base));
    batch.Put(detail::to_slice(members_key), encode_membership(members));
    for (index_t k = first_index(); k <= i; ++k)
        batch.Delete(entry_key(k));
    const ::leveldb::Status s = write_synced(batch);
    if (!s.ok())
        detail::fail_storage(name_,
                             "cannot compact the log up to entry " + std::to_string(i) + ": " + s.ToString());
    deleted(first_index(), i);
    terms_.drop_front(i - base_.index);
    base_ = base;
    base_members_ = std::move(new_members);
}

inline void log_store::install_snapshot(const snapshot_meta& meta)
{
    const log_base base{meta.index, meta.term};
    membership new_members = meta.members;
    ::leveldb::WriteBatch batch;
    for (index_t k = first_index(); k <= last_index(); ++k)
        batch.Delete(entry_key(k));
    batch.Put(detail::to_slice(base_key), encode_base(base));
    batch.Put(detail::to_slice(members_key), encode_membership(meta.members));
    const ::leveldb::Status s = write_synced(batch);
    if (!s.ok())
        detail::fail_storage(name_, "cannot install the snapshot at index " + std::to_string(meta.index) +
                                        ": " + s.ToString());
    if (first_index() <= last_index())
        deleted(first_index(), last_index());
    terms_.clear();
    base_ = base;
    base_members_ = std::move(new_members);
}

inline std::string log_store::entry_key(index_t i)
{
    std::string key;
    key.reserve(entry_key_size);
    key.push_back(entry_prefix);
    detail::put_u64_be(key, i);
    return key;
}

inline std::string log_store::encode_entry(const log_entry& e)
{
    std::string value;
    value.reserve(entry_header_size + e.data.size());
    value.push_back(record_version);
    detail::put_u64_be(value, e.term);
    value.push_back(static_cast<char>(e.type));
    value.append(e.data);
    return value;
}

inline std::optional<log_store::entry_header> log_store::decode_entry_header(std::string_view value)
{
    if (value.size() < entry_header_size || value[0] != record_version)
        return std::nullopt;
    const auto type = static_cast<unsigned char>(value[1 + detail::u64_size]);
    if (type > static_cast<unsigned char>(entry_type::config))
        return std::nullopt;
    return entry_header{detail::get_u64_be(value.substr(1)), static_cast<entry_type>(type)};
}

/// Says why decode_entry_header(value) failed.
inline std::string log_store::entry_problem(std::string_view value)
{
    if (value.size() < entry_header_size)
        return "is " + std::to_string(value.size()) + " bytes, shorter than an entry header (" +
               std::to_string(entry_header_size) + " bytes)";
    if (value[0] != record_version)
        return "has record version " + std::to_string(static_cast<unsigned char>(value[0])) +
               "; this build reads version " + std::to_string(record_version);
    return "has unknown entry type " +
           std::to_string(static_cast<unsigned char>(value[1 + detail::u64_size]));
}

inline std::string log_store::encode_hard_state(const hard_state& hs)
{
    std::string value;
    value.reserve(hard_state_size);
    value.push_back(record_version);
    detail::put_u64_be(value, hs.term);
    detail::put_u64_be(value, hs.vote);
    return value;
}

inline std::optional<hard_state> log_store::decode_hard_state(std::string_view value)
{
    if (value.size() != hard_state_size || value[0] != record_version)
        return std::nullopt;
    return hard_state{detail::get_u64_be(value.substr(1)),
                      detail::get_u64_be(value.substr(1 + detail::u64_size))};
}

inline std::string log_store::encode_base(const log_base& base)
{
    std::string value;
    value.reserve(base_size);
    value.push_back(record_version);
    detail::put_u64_be(value, base.index);
    detail::put_u64_be(value, base.term);
    return value;
}

inline std::optional<log_store::log_base> log_store::decode_base(std::string_view value)
{
    if (value.size() != base_size || value[0] != record_version)
        return std::nullopt;
    return log_base{detail::get_u64_be(value.substr(1)),
                    detail::get_u64_be(value.substr(1 + detail::u64_size))};
}

inline void log_store::load_hard_state()
{
    std::string value;
    const ::leveldb::Status s = db_->Get(detail::checked_reads(), detail::to_slice(hard_state_key), &value);
    if (s.IsNotFound())
        return;
    detail::check(s, name_, "cannot read the hard state");
    const std::optional<hard_state> hs = decode_hard_state(value);
    if (!hs)
        corrupt("the hard state record is not a version-" + std::to_string(record_version) +
                " hard state of " + std::to_string(hard_state_size) + " bytes (it has " +
                std::to_string(value.size()) + " bytes, version " +
                std::to_string(value.empty() ? 0 : static_cast<unsigned char>(value[0])) + ")");
    hard_state_ = *hs;
}

inline void log_store::load_base()
{
    std::string value;
    const ::leveldb::Status s = db_->Get(detail::checked_reads(), detail::to_slice(base_key), &value);
    if (s.IsNotFound())
        return;
    detail::check(s, name_, "cannot read the base record");
    const std::optional<log_base> base = decode_base(value);
    if (!base)
        corrupt("the base record is not a version-" + std::to_string(record_version) + " base of " +
                std::to_string(base_size) + " bytes (it has " + std::to_string(value.size()) +
                " bytes, version " +
                std::to_string(value.empty() ? 0 : static_cast<unsigned char>(value[0])) + ")");
    base_ = *base;
}

inline void log_store::load_base_members()
{
    std::string value;
    const ::leveldb::Status s = db_->Get(detail::checked_reads(), detail::to_slice(members_key), &value);
    if (s.IsNotFound())
        return;
    detail::check(s, name_, "cannot read the base membership");
    std::optional<membership> members = decode_membership(value);
    if (!members)
        corrupt("the base membership record (" + std::to_string(value.size()) + " bytes, version " +
                std::to_string(value.empty() ? 0 : static_cast<unsigned char>(value[0])) +
                ") is not a membership this build decodes (version " +
                std::to_string(membership_encoding_version) + ")");
    base_members_ = std::move(*members);
}

inline void log_store::load_terms()
{
    std::unique_ptr<::leveldb::Iterator> it(db_->NewIterator(detail::checked_reads()));
    for (it->Seek(std::string(1, entry_prefix)); it->Valid(); it->Next()) {
        const std::string_view key = detail::to_view(it->key());
        if (key[0] != entry_prefix)
            break;
        if (key.size() != entry_key_size)
            corrupt("an entry key is " + std::to_string(key.size()) + " bytes long, not " +
                    std::to_string(entry_key_size));
        const index_t i = detail::get_u64_be(key.substr(1));
        const index_t expected = last_index() + 1;
        if (i < expected) // Keys are unique and sorted: only the first key can come early.
            corrupt("an entry key holds index " + std::to_string(i) + ", before the first index " +
                    std::to_string(first_index()) + " (the log starts after the snapshot at " +
                    std::to_string(base_.index) + ")");
        if (i > expected) {
            const std::string missing = i - 1 == expected ? "entry " + std::to_string(expected) + " is"
                                                          : "entries " + std::to_string(expected) + " to " +
                                                                std::to_string(i - 1) + " are";
            corrupt("the log has a gap: " + missing + " missing but entry " + std::to_string(i) +
                    " is present (truncated or damaged files?)");
        }
        const std::string_view value = detail::to_view(it->value());
        const std::optional<entry_header> header = decode_entry_header(value);
        if (!header)
            corrupt("entry " + std::to_string(i) + " " + entry_problem(value));
        terms_.reserve(terms_.size() + 1);
        terms_.push_back(header->term);
    }
    detail::check(it->status(), name_, "cannot read the log");
}

/// Counts the deletion of entry keys [lo, hi]; compacts their range once enough piled up.
inline void log_store::deleted(index_t lo, index_t hi) noexcept
{
    tombstones_hi_ = tombstones_ == 0 ? hi : std::max(tombstones_hi_, hi);
    tombstones_ += hi - lo + 1;
    if (tombstones_ >= tombstones_per_compaction)
        drop_tombstones();
}

/// Has LevelDB compact the entry keys up to the highest one deleted, which drops their
/// tombstones, those left by earlier runs of the process included. Best effort: a failed
/// compaction only leaves them (LevelDB reports the error on a later write).
inline void log_store::drop_tombstones() noexcept
{
    try {
        const std::string lo = entry_key(0);
        const std::string hi = entry_key(tombstones_hi_);
        const ::leveldb::Slice begin = lo;
        const ::leveldb::Slice end = hi;
        db_->CompactRange(&begin, &end);
        tombstones_ = 0;
    } catch (...) {
    }
}

inline void log_store::corrupt(const std::string& what) const
{
    detail::fail_storage(name_, "corrupt log store: " + what);
}

inline ::leveldb::Status log_store::write_synced(::leveldb::WriteBatch& batch)
{
    ::leveldb::WriteOptions options;
    options.sync = true;
    return db_->Write(options, &batch);
}

static_assert(raftkv::log_store<log_store>);

} // namespace raftkv::leveldb

#endif
