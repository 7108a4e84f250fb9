#ifndef RAFTKV_SIM_DETAIL_KV_REGISTER_MODEL_HPP
#define RAFTKV_SIM_DETAIL_KV_REGISTER_MODEL_HPP

// The key-value model of the linearizability checker: a history split into independent
// keys, and each key modelled as a register whose values are interned as small integers.

#include <raftkv/sim/history.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace raftkv::sim::detail {

/// The operations on one key, as indexes into the history, in history order.
struct key_ops {
    std::string_view key;
    std::vector<std::size_t> ops;
};

/// Splits `history` by key, leaving out indeterminate gets: they observed nothing, so they
/// constrain nothing. The smallest groups come first (ties by key), so a time budget is
/// spent on the cheap keys before the expensive ones. The views point into `history`.
inline std::vector<key_ops> partition_by_key(const kv_history& history)
{
    std::map<std::string_view, std::vector<std::size_t>> by_key;
    for (std::size_t i = 0; i < history.size(); ++i) {
        const kv_op& op = history[i];
        if (!(op.indeterminate && op.kind == kv_op_kind::get)) {
            by_key[op.key].push_back(i);
        }
    }
    std::vector<key_ops> groups;
    groups.reserve(by_key.size());
    for (auto& [key, ops] : by_key) {
        groups.push_back(key_ops{key, std::move(ops)});
    }
    std::stable_sort(groups.begin(), groups.end(),
                     [](const key_ops& a, const key_ops& b) { return a.ops.size() < b.ops.size(); });
    return groups;
}

/// One key as a register that starts absent: put sets it, del erases it and reports
/// whether it existed, get reports whether it exists and its value, create sets it only if
/// it is absent and reports whether it existed.
///
/// A state is `absent` or a value id. Values read by some get have ids of their own; all
/// others share one id, since no get can tell them apart, which lets the memo merge
/// states that differ only in a value nobody read.
class kv_register_model {
public:
    static constexpr std::int32_t absent = -1;

    /// The model of the operations `history[ops[i]]`, known to it as operation i.
    /// REQUIRES: no indeterminate get among them. `history` must outlive the model.
    kv_register_model(const kv_history& history, std::span<const std::size_t> ops)
    {
        std::unordered_map<std::string_view, std::int32_t> ids;
        for (std::size_t i : ops) {
            const kv_op& op = history[i];
            if (op.kind == kv_op_kind::get && op.found) {
                ids.try_emplace(op.result, static_cast<std::int32_t>(ids.size()));
            }
        }
        const auto unread = static_cast<std::int32_t>(ids.size());
        ops_.reserve(ops.size());
        for (std::size_t i : ops) {
            const kv_op& op = history[i];
            std::int32_t value = unread;
            if (op.kind != kv_op_kind::del) {
                const auto it = ids.find(op.kind == kv_op_kind::get ? op.result : op.value);
                value = it == ids.end() ? unread : it->second;
            }
            ops_.push_back(interned_op{op.kind, op.found, op.indeterminate, value});
        }
    }

    /// The state after operation `op` takes effect in `state`, or nothing when its
    /// recorded outcome is impossible there. REQUIRES: op < the number of operations.
    std::optional<std::int32_t> step(std::int32_t state, std::uint32_t op) const noexcept
    {
        const interned_op& o = ops_[op];
        switch (o.kind) {
        case kv_op_kind::get:
            if (o.found ? state == o.value : state == absent) {
                return state;
            }
            return std::nullopt;
        case kv_op_kind::put: return o.value;
        case kv_op_kind::create:
            // Decided by the state alone: an indeterminate create either took effect this
            // way or never did.
            if (state == absent) {
                return o.indeterminate || !o.found ? std::optional<std::int32_t>(o.value) : std::nullopt;
            }
            return o.indeterminate || o.found ? std::optional<std::int32_t>(state) : std::nullopt;
        case kv_op_kind::del:
            if (o.indeterminate || o.found == (state != absent)) {
                return absent;
            }
            return std::nullopt;
        }
        return std::nullopt;
    }

private:
    struct interned_op {
        kv_op_kind kind;
        bool found;
        bool indeterminate;
        // The value a get read or a put wrote.
        std::int32_t value;
    };

    std::vector<interned_op> ops_;
};

} // namespace raftkv::sim::detail

#endif
