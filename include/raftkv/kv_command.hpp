#ifndef RAFTKV_KV_COMMAND_HPP
#define RAFTKV_KV_COMMAND_HPP

// The command format of raftkv's key-value state machines (the simulator's in-memory
// one and the LevelDB one): a put, a delete or a meta record, encoded into a log entry's
// data.
//
// Layout: one byte op ('P', 'D' or 'M'), the key length as 4 bytes big-endian, the key,
// and for a put or a meta record the value (the rest of the entry).
//
// A put or a delete with a precondition is wrapped in a conditional envelope:
//
//   'X', envelope version 0x01, flags (1 byte: 0x01 "expect version", 0x02 "expect
//   absent"; exactly one set), for 0x01 the expected version (8 bytes big-endian), then
//   the plain 'P' or 'D' command as above.
//
// Plain commands are the same bytes as before the envelope existed, so entries already in
// a log decode as they always did. A build that predates the envelope treats an 'X' entry
// as malformed (a no-op): every member must run a build that knows it before any client
// sends a precondition.
//
// A key's version is the index of the log entry that last wrote it (a put, conditional or
// not). A precondition is checked by the state machine when it applies the entry, against
// the state the log leaves before that entry, so every replica decides alike.
//
// A meta record sets a named value that lives beside the user's keys, never among them:
// raftkv-server uses it to replicate facts about the cluster, such as the HTTP address of
// each leader. A state machine that has no use for meta records ignores them.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace raftkv {

enum class kv_command_op : std::uint8_t { put = 'P', del = 'D', meta = 'M' };

/// What a put or a delete requires of its key's state when it is applied.
struct kv_precondition {
    /// The key exists and its version is this one.
    std::optional<std::uint64_t> expect_version;
    /// The key does not exist (a create-only put).
    bool expect_absent = false;

    bool empty() const noexcept { return !expect_version && !expect_absent; }
    friend bool operator==(const kv_precondition&, const kv_precondition&) = default;
};

struct kv_command {
    kv_command_op op = kv_command_op::put;
    /// The user's key, or the name of a meta record.
    std::string_view key;
    /// The value of a put or a meta record; empty for a delete.
    std::string_view value;
    /// A put's or a delete's precondition; empty for a plain command and a meta record.
    kv_precondition precondition{};
};

/// How applying an entry went.
enum class kv_status : std::uint8_t {
    /// Applied (for an entry that is no command: nothing to do).
    ok,
    /// The command's precondition did not hold; nothing changed.
    precondition_failed,
};

/// The outcome of applying one entry to a key-value state machine.
struct kv_result {
    /// For a delete, whether the key existed. For a put or a meta record: true. For a put
    /// whose precondition failed: whether the key exists.
    bool found = false;
    kv_status status = kv_status::ok;
    /// The key's version. A put that was applied: the new one (its entry's index). A delete:
    /// the version the key had (0 if absent). A precondition that failed: the current one
    /// (0 if absent). A meta record and an entry that is no command: 0.
    std::uint64_t version = 0;
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

inline constexpr char kv_envelope_op = 'X';
inline constexpr char kv_envelope_version = 1;
inline constexpr std::uint8_t kv_flag_expect_version = 0x01;
inline constexpr std::uint8_t kv_flag_expect_absent = 0x02;

inline std::string encode_conditional(kv_command_op op, std::string_view key, std::string_view value,
                                      const kv_precondition& pre)
{
    if (pre.empty())
        return encode_kv(op, key, value);
    std::string out;
    out.reserve(11 + 5 + key.size() + value.size());
    out.push_back(kv_envelope_op);
    out.push_back(kv_envelope_version);
    if (pre.expect_version) {
        out.push_back(static_cast<char>(kv_flag_expect_version));
        for (int shift = 56; shift >= 0; shift -= 8)
            out.push_back(static_cast<char>((*pre.expect_version >> shift) & 0xff));
    } else {
        out.push_back(static_cast<char>(kv_flag_expect_absent));
    }
    out.append(encode_kv(op, key, value));
    return out;
}

inline std::optional<kv_command> decode_plain(std::string_view data)
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
    kv_command c{op, data.substr(5, n), data.substr(5 + n), {}};
    if (op == kv_command_op::del && !c.value.empty())
        return std::nullopt;
    return c;
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

/// A put that is applied only if `pre` holds (kv_result::status says whether it did).
/// With an empty `pre`, the same bytes as encode_put().
/// REQUIRES: not both expect_version and expect_absent.
inline std::string encode_put(std::string_view key, std::string_view value, const kv_precondition& pre)
{
    return detail::encode_conditional(kv_command_op::put, key, value, pre);
}

/// A delete that is applied only if `pre` holds. With an empty `pre`, encode_del().
/// REQUIRES: not both expect_version and expect_absent.
inline std::string encode_del(std::string_view key, const kv_precondition& pre)
{
    return detail::encode_conditional(kv_command_op::del, key, {}, pre);
}

/// A command that sets meta record `name` to `value` (see the top of this file).
inline std::string encode_meta(std::string_view name, std::string_view value)
{
    return detail::encode_kv(kv_command_op::meta, name, value);
}

/// Decodes `data`, whose lifetime the views in the result share. Returns nothing when
/// `data` is not a well-formed command: an unknown op, envelope version or flag, lengths
/// that do not fit, or an envelope around anything but a put or a delete.
inline std::optional<kv_command> decode_kv_command(std::string_view data)
{
    if (data.empty() || data[0] != detail::kv_envelope_op)
        return detail::decode_plain(data);
    if (data.size() < 3 || data[1] != detail::kv_envelope_version)
        return std::nullopt;
    const auto flags = static_cast<std::uint8_t>(data[2]);
    kv_precondition pre;
    std::size_t at = 3;
    if (flags == detail::kv_flag_expect_version) {
        if (data.size() < at + 8)
            return std::nullopt;
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < 8; ++i)
            v = (v << 8) | static_cast<unsigned char>(data[at + i]);
        pre.expect_version = v;
        at += 8;
    } else if (flags == detail::kv_flag_expect_absent) {
        pre.expect_absent = true;
    } else {
        return std::nullopt;
    }
    std::optional<kv_command> c = detail::decode_plain(data.substr(at));
    if (!c || c->op == kv_command_op::meta)
        return std::nullopt;
    c->precondition = pre;
    return c;
}

} // namespace raftkv

#endif
