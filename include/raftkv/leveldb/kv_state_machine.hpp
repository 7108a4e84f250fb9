#ifndef RAFTKV_LEVELDB_KV_STATE_MACHINE_HPP
#define RAFTKV_LEVELDB_KV_STATE_MACHINE_HPP

#include <raftkv/concepts.hpp>
#include <raftkv/kv_command.hpp>
#include <raftkv/leveldb/detail/coding.hpp>
#include <raftkv/leveldb/detail/database.hpp>
#include <raftkv/types.hpp>

#include <leveldb/db.h>
#include <leveldb/iterator.h>
#include <leveldb/options.h>
#include <leveldb/status.h>
#include <leveldb/write_batch.h>

#include <cassert>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

namespace raftkv::leveldb {

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
    /// Default: true.
    bool sync = true;
};

/** A `raftkv::state_machine` holding a key-value map in a LevelDB database of its own.

    Applies the commands of <raftkv/kv_command.hpp>: a put sets a key (result `found =
    true`); a delete removes it (`found` says whether it existed); a meta record sets a
    named value that get() never sees, read with get_meta() (`found = true`). An entry whose data is
    not a well-formed command, and noop and config entries, change nothing and give
    `found = false`. Each apply call is one LevelDB write holding every change of the
    batch and the new applied index, so the stored state always matches the stored
    applied index. The layout is in docs/leveldb.md.

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
    fails also throws std::runtime_error: the process should stop. A failed apply leaves
    the stored state and applied_index() as they were; `results` is then unspecified.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe, except that get() may run on other
    threads concurrently with apply() and with itself; it sees each apply batch whole or
    not at all.
*/
class kv_state_machine {
public:
    using result_type = kv_result;

    /// Opens the state machine in directory `dir`, creating it (and its parents) if
    /// missing. Throws std::runtime_error if it cannot be opened or is corrupt.
    explicit kv_state_machine(const std::filesystem::path& dir, const kv_state_machine_options& opts = {});

    /// Applies `batch` and writes the outcome of `batch[k]` to `results[k]`. Never throws
    /// for a malformed command; throws std::runtime_error if LevelDB fails to write.
    /// REQUIRES: results.size() == batch.size(); `batch` is contiguous and, unless empty,
    /// starts at applied_index() + 1.
    void apply(std::span<const log_entry> batch, std::span<kv_result> results);

    /// The index of the last entry applied; after a reopen, the last one stored.
    index_t applied_index() const noexcept { return applied_; }

    /// The value stored for `key`, or nothing if the key is absent.
    std::optional<std::string> get(std::string_view key) const;

    /// The value of the meta record `name` (kv_command_op::meta), or nothing if none was
    /// applied. Meta records and user keys are separate namespaces. Thread-safe as get().
    std::optional<std::string> get_meta(std::string_view name) const;

private:
    // Keys: user_prefix + the user's key and replicated_meta_prefix + a meta record's name,
    // so neither can collide with the other or with the machine's own records ('m' + a
    // name). The applied index is stored as 8 bytes big-endian.
    static constexpr char user_prefix = 'k';
    static constexpr char replicated_meta_prefix = 'c';
    static constexpr std::string_view format_key = "mformat";
    static constexpr std::string_view applied_index_key = "mapplied_index";
    static constexpr std::string_view format = "raftkv.kv_state_machine.v1";

    static std::string user_key(std::string_view key) { return prefixed(user_prefix, key); }
    static std::string meta_key(std::string_view name) { return prefixed(replicated_meta_prefix, name); }
    static std::string prefixed(char prefix, std::string_view key);
    std::optional<std::string> read(const std::string& key) const;
    void load_applied_index();
    bool stored(const std::string& key, std::unique_ptr<::leveldb::Iterator>& it) const;

    std::string name_;
    kv_state_machine_options opts_;
    std::unique_ptr<::leveldb::DB> db_;
    index_t applied_ = 0;
};

inline kv_state_machine::kv_state_machine(const std::filesystem::path& dir,
                                          const kv_state_machine_options& opts)
    : name_(detail::store_name("raftkv::leveldb::kv_state_machine", dir)), opts_(opts),
      db_(detail::open_database(dir, name_))
{
    detail::check_format(*db_, format_key, format, name_);
    load_applied_index();
}

inline void kv_state_machine::apply(std::span<const log_entry> batch, std::span<kv_result> results)
{
    assert(results.size() == batch.size());
    if (batch.empty())
        return;
    assert(batch.front().index == applied_ + 1);

    ::leveldb::WriteBatch writes;
    // Whether each key this batch wrote exists after its last write; views into `batch`.
    std::unordered_map<std::string_view, bool> written;
    // Reads what the database held before this batch; made at the first delete.
    std::unique_ptr<::leveldb::Iterator> before;
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
            writes.Put(meta_key(c->key), detail::to_slice(c->value));
            results[k].found = true;
            continue;
        }
        const std::string key = user_key(c->key);
        if (c->op == kv_command_op::put) {
            writes.Put(key, detail::to_slice(c->value));
            written[c->key] = true;
            results[k].found = true;
        } else {
            const auto w = written.find(c->key);
            results[k].found = w != written.end() ? w->second : stored(key, before);
            if (results[k].found)
                writes.Delete(key);
            written[c->key] = false;
        }
    }
    std::string applied;
    detail::put_u64_be(applied, batch.back().index);
    writes.Put(detail::to_slice(applied_index_key), applied);

    ::leveldb::WriteOptions options;
    options.sync = opts_.sync;
    const ::leveldb::Status s = db_->Write(options, &writes);
    if (!s.ok())
        detail::fail(name_, "cannot apply entries " + std::to_string(batch.front().index) + " to " +
                                std::to_string(batch.back().index) + ": " + s.ToString());
    applied_ = batch.back().index;
}

inline std::optional<std::string> kv_state_machine::get(std::string_view key) const
{
    return read(user_key(key));
}

inline std::optional<std::string> kv_state_machine::get_meta(std::string_view name) const
{
    return read(meta_key(name));
}

inline std::optional<std::string> kv_state_machine::read(const std::string& key) const
{
    std::string value;
    const ::leveldb::Status s = db_->Get(detail::checked_reads(), key, &value);
    if (s.IsNotFound())
        return std::nullopt;
    detail::check(s, name_, "cannot read a key");
    return value;
}

inline std::string kv_state_machine::prefixed(char prefix, std::string_view key)
{
    std::string out;
    out.reserve(1 + key.size());
    out.push_back(prefix);
    out.append(key);
    return out;
}

inline void kv_state_machine::load_applied_index()
{
    std::string value;
    const ::leveldb::Status s =
        db_->Get(detail::checked_reads(), detail::to_slice(applied_index_key), &value);
    if (s.IsNotFound())
        return;
    detail::check(s, name_, "cannot read the applied index");
    if (value.size() != detail::u64_size)
        detail::fail(name_, "corrupt state machine: the applied index record is " +
                                std::to_string(value.size()) + " bytes long, not " +
                                std::to_string(detail::u64_size));
    applied_ = detail::get_u64_be(value);
}

inline bool kv_state_machine::stored(const std::string& key, std::unique_ptr<::leveldb::Iterator>& it) const
{
    if (!it)
        it.reset(db_->NewIterator(detail::checked_reads()));
    it->Seek(key);
    const bool found = it->Valid() && detail::to_view(it->key()) == key;
    detail::check(it->status(), name_, "cannot read a key");
    return found;
}

static_assert(raftkv::state_machine<kv_state_machine>);

} // namespace raftkv::leveldb

#endif
