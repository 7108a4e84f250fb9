#ifndef RAFTKV_SIM_KV_STATE_MACHINE_HPP
#define RAFTKV_SIM_KV_STATE_MACHINE_HPP

// The simulator's default state machine: an in-memory key-value map driven by the
// commands of <raftkv/kv_command.hpp>.

#include <raftkv/concepts.hpp>
#include <raftkv/kv_command.hpp>
#include <raftkv/types.hpp>

#include <cassert>
#include <cstddef>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace raftkv::sim {

/** An in-memory key-value `state_machine` over `std::map<std::string, std::string>`.

    Entries carry commands made by `raftkv::encode_put` and `raftkv::encode_del`. An
    entry that does not decode as a command, and every noop or config entry, is applied
    as a no-op with a default `kv_result`: a malformed command is never undefined
    behaviour. Reads do not go through the log: after a ReadIndex read is confirmed, the
    caller reads with `get()`.

    The state is volatile: a new machine is empty with `applied_index() == 0`, so a
    restarted node replays its log from the start, as after a real crash.

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
public:
    using result_type = kv_result;

    /// Applies `batch` in order; `results[k]` receives the outcome of `batch[k]`: for a
    /// delete whether the key existed, for a put or a meta record true, for anything else
    /// false.
    /// REQUIRES: results.size() >= batch.size(); batch continues the applied log.
    void apply(std::span<const log_entry> batch, std::span<kv_result> results)
    {
        assert(results.size() >= batch.size());
        for (std::size_t k = 0; k < batch.size(); ++k) {
            assert(batch[k].index == applied_ + 1);
            results[k] = apply_one(batch[k]);
            applied_ = batch[k].index;
        }
    }

    /// The index of the last applied entry; 0 for a new machine.
    index_t applied_index() const noexcept { return applied_; }

    /// The value stored under `key`, if any.
    std::optional<std::string> get(std::string_view key) const
    {
        const auto it = data_.find(key);
        if (it == data_.end())
            return std::nullopt;
        return it->second;
    }

    /// Every key and value, for inspection by tests.
    const std::map<std::string, std::string, std::less<>>& data() const noexcept { return data_; }

    /// The meta record `name` (see <raftkv/kv_command.hpp>), kept apart from the keys.
    std::optional<std::string> meta(std::string_view name) const
    {
        const auto it = meta_.find(name);
        if (it == meta_.end())
            return std::nullopt;
        return it->second;
    }

private:
    kv_result apply_one(const log_entry& e)
    {
        if (e.type != entry_type::normal)
            return {};
        const std::optional<kv_command> cmd = decode_kv_command(e.data);
        if (!cmd)
            return {};
        if (cmd->op == kv_command_op::put) {
            data_.insert_or_assign(std::string(cmd->key), std::string(cmd->value));
            return {.found = true};
        }
        if (cmd->op == kv_command_op::meta) {
            meta_.insert_or_assign(std::string(cmd->key), std::string(cmd->value));
            return {.found = true};
        }
        const auto it = data_.find(cmd->key);
        if (it == data_.end())
            return {.found = false};
        data_.erase(it);
        return {.found = true};
    }

    std::map<std::string, std::string, std::less<>> data_;
    std::map<std::string, std::string, std::less<>> meta_;
    index_t applied_ = 0;
};

static_assert(state_machine<kv_state_machine>);

} // namespace raftkv::sim

#endif
