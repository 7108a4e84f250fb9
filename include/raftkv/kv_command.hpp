#ifndef RAFTKV_KV_COMMAND_HPP
#define RAFTKV_KV_COMMAND_HPP

// The command format of raftkv's key-value state machines (the simulator's in-memory
// one and the LevelDB one): a put, a delete or a meta record, encoded into a log entry's
// data.
//
// Layout: one byte op ('P', 'D' or 'M'), the key length as 4 bytes big-endian, the key,
// and for a put or a meta record the value (the rest of the entry).
//
// A put or a delete with a precondition or a client session is wrapped in an envelope:
//
//   'X', envelope version 0x01, flags (1 byte), then for each flag set, in this order:
//     0x01 "expect version": the expected version (8 bytes big-endian);
//     0x02 "expect absent": nothing;
//     0x04 "session": the client id (8 bytes big-endian, not 0), the sequence (8 bytes
//          big-endian, not 0), the expiry in log entries (8 bytes big-endian, not 0) and
//          the most sessions kept (4 bytes big-endian, 1 to kv_session_max_sessions_limit);
//   then the plain 'P' or 'D' command as above.
//
// At least one flag is set, never both 0x01 and 0x02, and no other bit: an entry that
// breaks a rule, or ends early, is malformed (a no-op).
//
// Plain commands are the same bytes as before the envelope existed, so entries already in
// a log decode as they always did; so do envelopes without the session flag. A build that
// predates the envelope (or the session flag) treats such an entry as malformed (a no-op)
// while newer members apply it: every member must run a build that knows it before any
// client sends a precondition (or a session).
//
// A session makes a put or a delete apply at most once however often it is proposed: the
// state machine keeps, for each client id, the results of its kv_session_window highest
// sequences applied, and answers a sequence it holds with the recorded result (marked
// kv_result::replayed) without applying it again, or, when the command is another request
// than the one recorded (kv_request_fingerprint()), with kv_status::sequence_reused. The
// expiry and the bound ride in the command, written by its proposer, so every replica
// applies the same limits to the same entry whatever its own configuration. The rules are
// in <raftkv/kv_sessions.hpp>.
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

/// The results a state machine keeps per client session: those of its highest sequences.
inline constexpr std::size_t kv_session_window = 32;
/// The largest kv_client_session::max_sessions a command may carry.
inline constexpr std::uint32_t kv_session_max_sessions_limit = 1u << 20;
/// What raftkv-server writes into its commands: a session expires once this many log
/// entries were applied after its client's last one...
inline constexpr std::uint64_t kv_session_default_expiry = 1'000'000;
/// ... and the table keeps at most this many sessions, evicting the least recently used.
inline constexpr std::uint32_t kv_session_default_max_sessions = 32'768;

/// The client session a put or a delete belongs to (see the top of this file).
struct kv_client_session {
    /// The client's id, chosen by the client (at random, so that clients do not collide). Not 0.
    std::uint64_t client = 0;
    /// The request's number among the client's requests: 1, 2, ...; a retry repeats it. Not 0.
    std::uint64_t sequence = 0;
    /// The session expires once this many entries were applied after its last one. Not 0.
    std::uint64_t expiry_entries = kv_session_default_expiry;
    /// Applying this entry leaves at most this many sessions. 1 to kv_session_max_sessions_limit.
    std::uint32_t max_sessions = kv_session_default_max_sessions;

    friend bool operator==(const kv_client_session&, const kv_client_session&) = default;
};

struct kv_command {
    kv_command_op op = kv_command_op::put;
    /// The user's key, or the name of a meta record.
    std::string_view key;
    /// The value of a put or a meta record; empty for a delete.
    std::string_view value;
    /// A put's or a delete's precondition; empty for a plain command and a meta record.
    kv_precondition precondition{};
    /// The client session of a put or a delete, if it has one.
    std::optional<kv_client_session> session{};
};

/// How applying an entry went.
enum class kv_status : std::uint8_t {
    /// Applied (for an entry that is no command: nothing to do).
    ok,
    /// The command's precondition did not hold; nothing changed.
    precondition_failed,
    /// The command's session remembers results of later sequences only, not this one's
    /// (it fell out of kv_session_window): whether it was applied before is unknown, and
    /// it was not applied now.
    stale_sequence,
    /// The command's session applied another request under this sequence (another op, key,
    /// value or precondition: kv_request_fingerprint() differs); it was not applied now.
    sequence_reused,
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
    /// The entry repeats a session's sequence already applied: it changed nothing, and the
    /// other members are the result recorded when that sequence was applied.
    bool replayed = false;
    friend bool operator==(const kv_result&, const kv_result&) = default;
};

namespace detail {
/// A portable 64-bit hash of a sequence of byte strings and numbers: each is mixed in 8
/// bytes (little-endian) at a time by MurmurHash3's x64 body, a string's length before its
/// bytes, and the result finished by splitmix64's finalizer. Unlike std::hash, every build
/// and platform computes the same value, so replicas (and builds) can compare it.
class request_hasher {
public:
    request_hasher& add(std::uint64_t v) noexcept
    {
        mix(v);
        return *this;
    }

    request_hasher& add(std::string_view bytes) noexcept
    {
        mix(bytes.size());
        std::size_t at = 0;
        for (; bytes.size() - at >= 8; at += 8)
            mix(load(bytes.substr(at, 8)));
        if (at < bytes.size())
            mix(load(bytes.substr(at)));
        return *this;
    }

    std::uint64_t value() const noexcept
    {
        std::uint64_t x = h_ ^ words_;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        return x ^ (x >> 31);
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int r) noexcept { return (x << r) | (x >> (64 - r)); }

    // Up to 8 bytes as a little-endian number (missing high bytes 0).
    static std::uint64_t load(std::string_view b) noexcept
    {
        std::uint64_t v = 0;
        for (std::size_t i = b.size(); i-- > 0;)
            v = (v << 8) | static_cast<unsigned char>(b[i]);
        return v;
    }

    void mix(std::uint64_t k) noexcept
    {
        k *= 0x87c37b91114253d5ULL;
        k = rotl(k, 31);
        k *= 0x4cf5ad432745937fULL;
        h_ ^= k;
        h_ = rotl(h_, 27) * 5 + 0x52dce729;
        ++words_;
    }

    std::uint64_t h_ = 0x9e3779b97f4a7c15ULL;
    std::uint64_t words_ = 0;
};
} // namespace detail

/// A fingerprint of what a put or a delete asks for: its op, key, value and precondition,
/// not its session. A session records it with each sequence's result, so that a sequence
/// reused for another request is told from a retry (kv_status::sequence_reused). The same
/// command has the same fingerprint on every replica and in every build; never 0 (which
/// stands for "not recorded"). It catches mistakes, not adversaries: it is no cryptographic
/// hash, so requests can be crafted to collide with another, and such a request is answered
/// as a retry of it. Only its sender is misled, and only a client that knows the session's
/// id and sequence can send one.
inline std::uint64_t kv_request_fingerprint(const kv_command& c) noexcept
{
    detail::request_hasher h;
    h.add(static_cast<std::uint64_t>(c.op)).add(c.key).add(c.value);
    if (c.precondition.expect_version)
        h.add(1).add(*c.precondition.expect_version);
    else
        h.add(c.precondition.expect_absent ? 2 : 0);
    const std::uint64_t v = h.value();
    return v == 0 ? 1 : v;
}

/// Whether applying `command` with outcome `result` changed a user key: a put always does; a
/// delete only when the key existed; neither when its precondition failed, nor when it
/// repeated a client session's sequence (kv_result::replayed), reused one, or came too late
/// for it. A meta record changes no user key.
inline bool changed_user_key(const kv_command& command, const kv_result& result) noexcept
{
    if (result.status != kv_status::ok || result.replayed)
        return false;
    return command.op == kv_command_op::put || (command.op == kv_command_op::del && result.found);
}

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
inline constexpr std::uint8_t kv_flag_session = 0x04;
inline constexpr std::size_t kv_session_bytes = 8 + 8 + 8 + 4;

inline void put_be(std::string& out, std::uint64_t v, int bytes)
{
    for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((v >> shift) & 0xff));
}

inline std::uint64_t get_be(std::string_view in, std::size_t at, std::size_t bytes)
{
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < bytes; ++i)
        v = (v << 8) | static_cast<unsigned char>(in[at + i]);
    return v;
}

inline std::string encode_conditional(kv_command_op op, std::string_view key, std::string_view value,
                                      const kv_precondition& pre, const kv_client_session* session)
{
    if (pre.empty() && !session)
        return encode_kv(op, key, value);
    std::string out;
    out.reserve(11 + kv_session_bytes + 5 + key.size() + value.size());
    out.push_back(kv_envelope_op);
    out.push_back(kv_envelope_version);
    std::uint8_t flags = session ? kv_flag_session : 0;
    if (pre.expect_version)
        flags |= kv_flag_expect_version;
    else if (pre.expect_absent)
        flags |= kv_flag_expect_absent;
    out.push_back(static_cast<char>(flags));
    if (pre.expect_version)
        put_be(out, *pre.expect_version, 8);
    if (session) {
        put_be(out, session->client, 8);
        put_be(out, session->sequence, 8);
        put_be(out, session->expiry_entries, 8);
        put_be(out, session->max_sessions, 4);
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
    return detail::encode_conditional(kv_command_op::put, key, value, pre, nullptr);
}

/// A delete that is applied only if `pre` holds. With an empty `pre`, encode_del().
/// REQUIRES: not both expect_version and expect_absent.
inline std::string encode_del(std::string_view key, const kv_precondition& pre)
{
    return detail::encode_conditional(kv_command_op::del, key, {}, pre, nullptr);
}

/// A put of client session `session`, applied at most once per sequence, and only if `pre`
/// holds (which may be empty).
/// REQUIRES: not both expect_version and expect_absent; session.client, session.sequence
/// and session.expiry_entries not 0; session.max_sessions within 1 to
/// kv_session_max_sessions_limit (else the entry decodes as malformed).
inline std::string encode_put(std::string_view key, std::string_view value, const kv_precondition& pre,
                              const kv_client_session& session)
{
    return detail::encode_conditional(kv_command_op::put, key, value, pre, &session);
}

/// A delete of client session `session`; as the put above.
inline std::string encode_del(std::string_view key, const kv_precondition& pre,
                              const kv_client_session& session)
{
    return detail::encode_conditional(kv_command_op::del, key, {}, pre, &session);
}

/// A command that sets meta record `name` to `value` (see the top of this file).
inline std::string encode_meta(std::string_view name, std::string_view value)
{
    return detail::encode_kv(kv_command_op::meta, name, value);
}

/// Decodes `data`, whose lifetime the views in the result share. Returns nothing when
/// `data` is not a well-formed command: an unknown op, envelope version or flag, lengths
/// that do not fit, a session field out of range, or an envelope around anything but a put
/// or a delete.
inline std::optional<kv_command> decode_kv_command(std::string_view data)
{
    if (data.empty() || data[0] != detail::kv_envelope_op)
        return detail::decode_plain(data);
    if (data.size() < 3 || data[1] != detail::kv_envelope_version)
        return std::nullopt;
    const auto flags = static_cast<std::uint8_t>(data[2]);
    constexpr std::uint8_t known =
        detail::kv_flag_expect_version | detail::kv_flag_expect_absent | detail::kv_flag_session;
    const bool expect_version = (flags & detail::kv_flag_expect_version) != 0;
    const bool expect_absent = (flags & detail::kv_flag_expect_absent) != 0;
    if (flags == 0 || (flags & ~known) != 0 || (expect_version && expect_absent))
        return std::nullopt;
    kv_precondition pre;
    std::size_t at = 3;
    if (expect_version) {
        if (data.size() - at < 8)
            return std::nullopt;
        pre.expect_version = detail::get_be(data, at, 8);
        at += 8;
    }
    pre.expect_absent = expect_absent;
    std::optional<kv_client_session> session;
    if ((flags & detail::kv_flag_session) != 0) {
        if (data.size() - at < detail::kv_session_bytes)
            return std::nullopt;
        kv_client_session s;
        s.client = detail::get_be(data, at, 8);
        s.sequence = detail::get_be(data, at + 8, 8);
        s.expiry_entries = detail::get_be(data, at + 16, 8);
        s.max_sessions = static_cast<std::uint32_t>(detail::get_be(data, at + 24, 4));
        if (s.client == 0 || s.sequence == 0 || s.expiry_entries == 0 || s.max_sessions == 0 ||
            s.max_sessions > kv_session_max_sessions_limit)
            return std::nullopt;
        session = s;
        at += detail::kv_session_bytes;
    }
    std::optional<kv_command> c = detail::decode_plain(data.substr(at));
    if (!c || c->op == kv_command_op::meta)
        return std::nullopt;
    c->precondition = pre;
    c->session = session;
    return c;
}

} // namespace raftkv

#endif
