#ifndef RAFTKV_KV_COMMAND_HPP
#define RAFTKV_KV_COMMAND_HPP

// The command format of raftkv's key-value state machines (the simulator's in-memory
// one and the LevelDB one): a put, a delete or a meta record, encoded into a log entry's
// data.
//
// Layout: one byte op ('P', 'D' or 'M'), the key length as 4 bytes big-endian, the key,
// and for a put or a meta record the value (the rest of the entry).
//
// A meta record sets a named value that lives beside the user's keys, never among them:
// raftkv-server uses it to replicate facts about the cluster, such as the HTTP address of
// each leader. A state machine that has no use for meta records ignores them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace raftkv {

enum class kv_command_op : std::uint8_t { put = 'P', del = 'D', meta = 'M' };

struct kv_command {
    kv_command_op op = kv_command_op::put;
    /// The user's key, or the name of a meta record.
    std::string_view key;
    /// The value of a put or a meta record; empty for a delete.
    std::string_view value;
};

/// The outcome of applying one entry to a key-value state machine.
/// For a delete, `found` says whether the key existed. For a put or a meta record it is true.
struct kv_result {
    bool found = false;
    friend bool operator==(const kv_result&, const kv_result&) = default;
};

namespace detail {
inline std::string encode_kv(kv_command_op op, std::string_view key, std::string_view value)
{
    std::string out;
    out.reserve(5 + key.size() + value.size());
    out.push_back(static_cast<char>(op));
    const auto n = static_cast<std::uint32_t>(key.size());
    for (int shift = 24; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((n >> shift) & 0xff));
    out.append(key);
    out.append(value);
    return out;
}
} // namespace detail

inline std::string encode_put(std::string_view key, std::string_view value)
{
    return detail::encode_kv(kv_command_op::put, key, value);
}

inline std::string encode_del(std::string_view key)
{
    return detail::encode_kv(kv_command_op::del, key, {});
}

/// A command that sets meta record `name` to `value` (see the top of this file).
inline std::string encode_meta(std::string_view name, std::string_view value)
{
    return detail::encode_kv(kv_command_op::meta, name, value);
}

/// Decodes `data`, whose lifetime the views in the result share. Returns nothing when
/// `data` is not a well-formed command.
inline std::optional<kv_command> decode_kv_command(std::string_view data)
{
    if (data.size() < 5)
        return std::nullopt;
    const auto op = static_cast<kv_command_op>(data[0]);
    if (op != kv_command_op::put && op != kv_command_op::del && op != kv_command_op::meta)
        return std::nullopt;
    std::uint32_t n = 0;
    for (int i = 1; i <= 4; ++i)
        n = (n << 8) | static_cast<unsigned char>(data[i]);
    if (n > data.size() - 5)
        return std::nullopt;
    kv_command c{op, data.substr(5, n), data.substr(5 + n)};
    if (op == kv_command_op::del && !c.value.empty())
        return std::nullopt;
    return c;
}

} // namespace raftkv

#endif
