#ifndef RAFTKV_SIM_DETAIL_KV_EXPLAIN_HPP
#define RAFTKV_SIM_DETAIL_KV_EXPLAIN_HPP

// Human-readable descriptions of key-value operations and of where a linearizability
// search got stuck.

#include <raftkv/sim/history.hpp>

#include <cstddef>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace raftkv::sim::detail {

/// `value` in double quotes, with quotes, backslashes and unprintable bytes escaped, and
/// cut after 48 bytes.
inline std::string quote(std::string_view value)
{
    constexpr std::size_t max_shown = 48;
    std::string out = "\"";
    for (std::size_t i = 0; i < value.size() && i < max_shown; ++i) {
        const auto c = static_cast<unsigned char>(value[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        } else {
            out += static_cast<char>(c);
        }
    }
    out += value.size() > max_shown ? "\"..." : "\"";
    return out;
}

/// One line: `#<index> client <c>: <kind and outcome>, call <t>, ret <t>`.
inline std::string describe_op(const kv_op& op, std::size_t index)
{
    std::string s = "#" + std::to_string(index) + " client " + std::to_string(op.client) + ": ";
    switch (op.kind) {
    case kv_op_kind::get:
        s += op.indeterminate ? "get -> ?" : op.found ? "get -> " + quote(op.result) : "get -> not found";
        break;
    case kv_op_kind::put: s += "put " + quote(op.value); break;
    case kv_op_kind::del:
        s += op.indeterminate ? "del -> ?" : op.found ? "del -> found" : "del -> not found";
        break;
    case kv_op_kind::create:
        s += "create " + quote(op.value) +
             (op.indeterminate ? " -> ?"
              : op.found       ? " -> failed (key existed)"
                               : " -> created");
        break;
    }
    s += ", call " + std::to_string(op.call);
    s += op.indeterminate ? ", ret ? (indeterminate)" : ", ret " + std::to_string(op.ret);
    return s;
}

inline std::string describe_state(const std::optional<std::string>& state)
{
    return state ? "the key holds " + quote(*state) : "the key is absent";
}

/// The state of a key, initially absent, after `ops` of `history` take effect in order.
inline std::optional<std::string> replay(const kv_history& history, std::span<const std::size_t> ops)
{
    std::optional<std::string> state;
    for (std::size_t i : ops) {
        if (history[i].kind == kv_op_kind::put) {
            state = history[i].value;
        } else if (history[i].kind == kv_op_kind::del) {
            state.reset();
        } else if (history[i].kind == kv_op_kind::create && !state &&
                   (history[i].indeterminate || !history[i].found)) {
            state = history[i].value;
        }
    }
    return state;
}

/// Whether `op`'s recorded outcome is possible when it takes effect in `state`.
inline bool possible_in(const std::optional<std::string>& state, const kv_op& op)
{
    if (op.indeterminate || op.kind == kv_op_kind::put) {
        return true;
    }
    if (op.kind == kv_op_kind::del || op.kind == kv_op_kind::create || !op.found) {
        return op.found == state.has_value();
    }
    return state && *state == op.result;
}

/// Several lines describing a dead end of the search: the longest linearizable prefix
/// (its last operations when long), then each pending operation and why it cannot come
/// next. Operations are given as indexes into `history`.
inline std::string explain_dead_end(const kv_history& history, std::span<const std::size_t> prefix,
                                    std::span<const std::size_t> stuck, std::optional<std::size_t> due)
{
    constexpr std::size_t max_prefix_shown = 8;
    const std::optional<std::string> state = replay(history, prefix);
    std::string s;
    if (prefix.empty()) {
        s = "No operation can take effect first (" + describe_state(state) + ")";
    } else {
        s = "The longest linearizable prefix found has " + std::to_string(prefix.size()) +
            (prefix.size() == 1 ? " operation" : " operations") + ", after which " + describe_state(state) +
            ":\n";
        std::size_t shown_from = 0;
        if (prefix.size() > max_prefix_shown) {
            shown_from = prefix.size() - max_prefix_shown;
            s += "  ... " + std::to_string(shown_from) + " earlier operations\n";
        }
        for (std::size_t i = shown_from; i < prefix.size(); ++i) {
            s += "  " + describe_op(history[prefix[i]], prefix[i]) + "\n";
        }
        s += "None of the operations pending after it can take effect next";
    }
    if (due) {
        s += ", yet #" + std::to_string(*due) + " must, before it returns at " +
             std::to_string(history[*due].ret);
    }
    s += ":\n";
    for (std::size_t i : stuck) {
        s += "  " + describe_op(history[i], i) +
             (possible_in(state, history[i]) ? ": possible, but no linearization continues from it\n"
                                             : ": impossible, " + describe_state(state) + "\n");
    }
    return s;
}

} // namespace raftkv::sim::detail

#endif
