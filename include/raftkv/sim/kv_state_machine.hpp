#ifndef RAFTKV_SIM_KV_STATE_MACHINE_HPP
#define RAFTKV_SIM_KV_STATE_MACHINE_HPP

// The simulator's default state machine: an in-memory key-value map driven by the
// commands of <raftkv/kv_command.hpp>.

#include <raftkv/concepts.hpp>
#include <raftkv/kv_command.hpp>
#include <raftkv/kv_sessions.hpp>
#include <raftkv/types.hpp>

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace raftkv::sim {

/** An in-memory key-value `state_machine` over `std::map<std::string, std::string>`.

    Entries carry commands made by `raftkv::encode_put` and `raftkv::encode_del`. An
    entry that does not decode as a command, and every noop or config entry, is applied
    as a no-op with a default `kv_result`: a malformed command is never undefined
    behaviour. A command carrying a client session goes through a kv_session_table (rules
    in <raftkv/kv_sessions.hpp>), which is part of the state and of its snapshots. Reads do not go through the
   log: after a ReadIndex read is confirmed, the caller reads with `get()`.

    The applied state is volatile; what survives a crash is the last snapshot, kept on a
    `disk` that the caller may share between incarnations of a node (the simulator's
    cluster gives each node one). A machine built on a disk starts from its snapshot. The
    state is copy-on-write: a snapshot or a reader shares it, and the next apply copies
    the maps (cheap for the simulator's few keys; a real machine would use its storage
    engine's snapshots instead).

    @par Example
    @code
    raftkv::sim::kv_state_machine m;
    raftkv::log_entry e{.term = 1, .index = 1, .data = raftkv::encode_put("k", "v")};
    raftkv::kv_result r;
    m.apply(std::span(&e, 1), std::span(&r, 1));
    assert(m.get("k") == "v");
    @endcode

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
class kv_state_machine {
    struct state {
        std::map<std::string, std::string, std::less<>> data;
        std::map<std::string, std::string, std::less<>> meta;
        /// The version of each key of `data`: the index of the entry that last wrote it.
        std::map<std::string, index_t, std::less<>> versions;
        kv_session_table sessions;
        index_t applied = 0;
    };

public:
    using result_type = kv_result;

    /// What survives a crash: the last snapshot taken or restored.
    struct disk {
        std::shared_ptr<const state> snapshot;
    };

    /// Reads a snapshot as records: a kind byte ('v' for a key, 'm' for a meta record, 's'
    /// for a client session), the name's and the value's lengths as 4 bytes big-endian
    /// each, the name, the value; a key's value starts with its version (8 bytes
    /// big-endian); a session's name and value are kv_session_table::encode_id() and
    /// encode(). A restore also takes 'k' records, keys without a version (version 0).
    class snapshot_reader {
    public:
        index_t index() const noexcept { return state_->applied; }

        bool read(std::string& out, std::size_t max_bytes)
        {
            out.clear();
            while (out.size() < max_bytes || out.empty()) {
                if (part_ == part::data) {
                    if (at_ == state_->data.end()) {
                        part_ = part::meta;
                        at_ = state_->meta.begin();
                        continue;
                    }
                    const auto v = state_->versions.find(at_->first);
                    std::string versioned;
                    put_u64(versioned, v == state_->versions.end() ? 0 : v->second);
                    versioned.append(at_->second);
                    append_record(out, 'v', at_->first, versioned);
                    ++at_;
                } else if (part_ == part::meta) {
                    if (at_ == state_->meta.end()) {
                        part_ = part::sessions;
                        session_at_ = state_->sessions.sessions().begin();
                        continue;
                    }
                    append_record(out, 'm', at_->first, at_->second);
                    ++at_;
                } else {
                    if (session_at_ == state_->sessions.sessions().end())
                        return true;
                    append_record(out, 's', kv_session_table::encode_id(session_at_->first),
                                  kv_session_table::encode(session_at_->second));
                    ++session_at_;
                }
            }
            return part_ == part::sessions && session_at_ == state_->sessions.sessions().end();
        }

    private:
        friend class kv_state_machine;
        enum class part { data, meta, sessions };

        explicit snapshot_reader(std::shared_ptr<const state> s)
            : state_(std::move(s)), at_(state_->data.begin())
        {
        }

        std::shared_ptr<const state> state_;
        std::map<std::string, std::string, std::less<>>::const_iterator at_;
        std::map<std::uint64_t, kv_session>::const_iterator session_at_;
        part part_ = part::data;
    };

    /// A machine whose snapshots are lost with it.
    kv_state_machine() : disk_(std::make_shared<disk>()) {}

    /// A machine that starts from `d`'s snapshot, if any, and takes its snapshots there.
    explicit kv_state_machine(std::shared_ptr<disk> d) : disk_(std::move(d))
    {
        if (disk_->snapshot)
            state_ = std::make_shared<state>(*disk_->snapshot);
    }

    /// Applies `batch` in order; `results[k]` receives the outcome of `batch[k]`: for a
    /// delete whether the key existed, for a put or a meta record true, for anything else
    /// false.
    /// REQUIRES: results.size() >= batch.size(); batch continues the applied log.
    void apply(std::span<const log_entry> batch, std::span<kv_result> results)
    {
        assert(results.size() >= batch.size());
        state& s = writable();
        for (std::size_t k = 0; k < batch.size(); ++k) {
            assert(batch[k].index == s.applied + 1);
            results[k] = apply_one(s, batch[k]);
            s.applied = batch[k].index;
        }
    }

    /// The index of the last applied entry; for a new machine, that of its disk's snapshot.
    index_t applied_index() const noexcept { return state_->applied; }

    /// The index of the snapshot on the disk; 0 if none.
    index_t snapshot_index() const noexcept { return disk_->snapshot ? disk_->snapshot->applied : 0; }

    /// Puts the applied state on the disk (shared, copied on the next apply).
    void take_snapshot() { disk_->snapshot = state_; }

    snapshot_reader snapshot() const { return snapshot_reader(state_); }

    void begin_restore(const snapshot_meta& meta)
    {
        restoring_ = std::make_shared<state>();
        restoring_->applied = meta.index;
        partial_.clear();
    }

    /// Decodes the records of `data`; a record may span chunks. Throws
    /// std::invalid_argument on a malformed record.
    void restore_chunk(std::string_view data)
    {
        if (!restoring_)
            throw std::logic_error("raftkv::sim::kv_state_machine: restore_chunk without begin_restore");
        partial_.append(data);
        std::size_t at = 0;
        while (partial_.size() - at >= record_header) {
            const char kind = partial_[at];
            const std::size_t name_size = get_u32(partial_, at + 1);
            const std::size_t value_size = get_u32(partial_, at + 5);
            if (kind != 'k' && kind != 'm' && kind != 'v' && kind != 's')
                throw std::invalid_argument("raftkv::sim::kv_state_machine: malformed snapshot record");
            if (partial_.size() - at - record_header < name_size + value_size)
                break;
            std::string name = partial_.substr(at + record_header, name_size);
            std::string value = partial_.substr(at + record_header + name_size, value_size);
            if (kind == 'm') {
                restoring_->meta.insert_or_assign(std::move(name), std::move(value));
            } else if (kind == 's') {
                const std::optional<std::uint64_t> client = kv_session_table::decode_id(name);
                std::optional<kv_session> session = kv_session_table::decode(value);
                if (!client || !session)
                    throw std::invalid_argument("raftkv::sim::kv_state_machine: malformed session record");
                restoring_->sessions.load(*client, std::move(*session));
            } else {
                index_t version = 0;
                if (kind == 'v') {
                    if (value.size() < 8)
                        throw std::invalid_argument(
                            "raftkv::sim::kv_state_machine: malformed snapshot record");
                    version = get_u64(value);
                    value.erase(0, 8);
                }
                restoring_->versions.insert_or_assign(name, version);
                restoring_->data.insert_or_assign(std::move(name), std::move(value));
            }
            at += record_header + name_size + value_size;
        }
        partial_.erase(0, at);
    }

    void finish_restore()
    {
        if (!restoring_ || !partial_.empty())
            throw std::invalid_argument("raftkv::sim::kv_state_machine: snapshot ends inside a record");
        state_ = std::move(restoring_);
        disk_->snapshot = state_;
    }

    void abort_restore()
    {
        restoring_.reset();
        partial_.clear();
    }

    /// The value stored under `key`, if any.
    std::optional<std::string> get(std::string_view key) const
    {
        const auto it = state_->data.find(key);
        if (it == state_->data.end())
            return std::nullopt;
        return it->second;
    }

    /// The version of `key` (the index of the entry that last wrote it), if it exists.
    std::optional<index_t> version(std::string_view key) const
    {
        const auto it = state_->versions.find(key);
        if (it == state_->versions.end())
            return std::nullopt;
        return it->second;
    }

    /// The client sessions, for inspection by tests.
    const kv_session_table& sessions() const noexcept { return state_->sessions; }

    /// Every key and value, for inspection by tests.
    const std::map<std::string, std::string, std::less<>>& data() const noexcept { return state_->data; }

    /// The meta record `name` (see <raftkv/kv_command.hpp>), kept apart from the keys.
    std::optional<std::string> meta(std::string_view name) const
    {
        const auto it = state_->meta.find(name);
        if (it == state_->meta.end())
            return std::nullopt;
        return it->second;
    }

private:
    static constexpr std::size_t record_header = 9;

    static void append_record(std::string& out, char kind, std::string_view name, std::string_view value)
    {
        out.push_back(kind);
        put_u32(out, name.size());
        put_u32(out, value.size());
        out.append(name);
        out.append(value);
    }
    static void put_u32(std::string& out, std::size_t n)
    {
        for (int shift = 24; shift >= 0; shift -= 8)
            out.push_back(static_cast<char>((n >> shift) & 0xff));
    }
    static void put_u64(std::string& out, std::uint64_t n)
    {
        for (int shift = 56; shift >= 0; shift -= 8)
            out.push_back(static_cast<char>((n >> shift) & 0xff));
    }
    static std::uint64_t get_u64(std::string_view in)
    {
        std::uint64_t n = 0;
        for (std::size_t k = 0; k < 8; ++k)
            n = (n << 8) | static_cast<unsigned char>(in[k]);
        return n;
    }
    static std::size_t get_u32(std::string_view in, std::size_t at)
    {
        std::size_t n = 0;
        for (std::size_t k = 0; k < 4; ++k)
            n = (n << 8) | static_cast<unsigned char>(in[at + k]);
        return n;
    }

    // Copy on write: the state may be shared with the disk or a reader.
    state& writable()
    {
        if (state_.use_count() > 1)
            state_ = std::make_shared<state>(*state_);
        return *state_;
    }

    static kv_result apply_one(state& s, const log_entry& e)
    {
        if (e.type != entry_type::normal)
            return {};
        const std::optional<kv_command> cmd = decode_kv_command(e.data);
        if (!cmd)
            return {};
        if (cmd->op == kv_command_op::meta) {
            s.meta.insert_or_assign(std::string(cmd->key), std::string(cmd->value));
            return {.found = true};
        }
        return apply_with_session(s.sessions, *cmd, e.index, [&] { return apply_command(s, *cmd, e.index); });
    }

    static kv_result apply_command(state& s, const kv_command& c, index_t index)
    {
        const kv_command* cmd = &c;
        const auto v = s.versions.find(cmd->key);
        const bool exists = v != s.versions.end();
        const index_t version = exists ? v->second : 0;
        const kv_precondition& pre = cmd->precondition;
        if ((pre.expect_absent && exists) ||
            (pre.expect_version && !(exists && version == *pre.expect_version)))
            return {.found = exists, .status = kv_status::precondition_failed, .version = version};
        if (cmd->op == kv_command_op::put) {
            s.data.insert_or_assign(std::string(cmd->key), std::string(cmd->value));
            s.versions.insert_or_assign(std::string(cmd->key), index);
            return {.found = true, .status = kv_status::ok, .version = index};
        }
        if (!exists)
            return {.found = false};
        s.data.erase(s.data.find(cmd->key));
        s.versions.erase(v);
        return {.found = true, .status = kv_status::ok, .version = version};
    }

    std::shared_ptr<disk> disk_;
    std::shared_ptr<state> state_ = std::make_shared<state>();
    std::shared_ptr<state> restoring_;
    std::string partial_;
};

static_assert(state_machine<kv_state_machine>);

} // namespace raftkv::sim

#endif
