#ifndef RAFTKV_KV_SESSIONS_HPP
#define RAFTKV_KV_SESSIONS_HPP

// The client-session table of raftkv's key-value state machines (the simulator's in-memory
// one and the LevelDB one), which makes a put or a delete carrying a session
// (<raftkv/kv_command.hpp>) apply at most once however often it is proposed.
//
// Rules, applied to each entry carrying session (client c, sequence s, expiry N, bound M)
// at log index i, identically on every replica:
//
//  1. Expiry. Every session whose last entry is at an index below i - N is dropped first:
//     once N entries (of any kind) followed its client's last entry, a session is gone
//     for the next entry.
//  2. A session of c exists and holds a result for s: the entry is not applied. Its result
//     is the one recorded, with `replayed` set; or kv_status::sequence_reused when the entry
//     asks for another request than the one recorded under s (their
//     kv_request_fingerprint()s differ; a result read from storage written before
//     fingerprints were recorded has none, and matches any request).
//  3. A session of c exists and s is at most the highest sequence it forgot (each session
//     keeps the results of its kv_session_window highest sequences): the entry is not
//     applied; its result is kv_status::stale_sequence.
//  4. Otherwise (no session of c, or a new sequence) the command is applied as it would
//     be without a session, and its result (whatever its status) and fingerprint recorded
//     under s; a missing session is created. Then, while the table holds more than M
//     sessions, the one whose last entry is the oldest is evicted.
//
// In each case the session's last entry becomes i. An expired or evicted session is
// indistinguishable from a client never seen: its next entry opens a new session (rule 4),
// whatever its sequence. So a request is applied once, however often it is retried,
// provided every copy of it reaches the log while its session lives: before N entries
// follow the client's previous entry applied, before M other clients' entries make it the
// least recently used session, and while its sequence is among the client's
// kv_session_window highest applied.
//
// Nothing here reads a clock or the node's configuration: the outcome depends on the log
// alone, so every replica holds the same table at the same index.

#include <raftkv/kv_command.hpp>
#include <raftkv/types.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace raftkv {

/// A result a session recorded: that of the entry that first applied `sequence`.
struct kv_session_result {
    std::uint64_t sequence = 0;
    kv_result result;
    /// The kv_request_fingerprint() of the entry's command; 0 when not known (recorded by a
    /// build that kept none).
    std::uint64_t request = 0;

    friend bool operator==(const kv_session_result&, const kv_session_result&) = default;
};

/// One client's session.
struct kv_session {
    /// The index of the client's last entry applied.
    index_t last_index = 0;
    /// The highest sequence whose result the session forgot (0: none).
    std::uint64_t forgotten = 0;
    /// The results of the client's highest sequences, by ascending sequence; at most
    /// kv_session_window.
    std::vector<kv_session_result> results;

    friend bool operator==(const kv_session&, const kv_session&) = default;
};

/** The session table of a key-value state machine (rules at the top of this file).

    A machine calls begin() before it applies an entry carrying a session, and, when
    begin() returned nothing, applies the command and calls finish() with its result. A
    machine that writes the table elsewhere (the LevelDB one) brackets each apply batch with
    start_batch() and then commit() or rollback(): the table tracks which sessions the batch
    changed, to write them, and their state before it, to undo them.

    Sessions are encoded, for storage and snapshots, by encode_id() / encode() and decoded
    by decode_id() / decode().

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
class kv_session_table {
public:
    /// Applies rules 1 to 3 to an entry of `s` at `index` whose command has fingerprint
    /// `request` (kv_request_fingerprint()): the result of an entry that must not be
    /// applied, or nothing when the command is to be applied and finish() called.
    std::optional<kv_result> begin(const kv_client_session& s, index_t index, std::uint64_t request)
    {
        expire(index, s.expiry_entries);
        const auto it = sessions_.find(s.client);
        if (it == sessions_.end())
            return std::nullopt;
        touch(it, index);
        const auto& results = it->second.results;
        const auto r = std::lower_bound(results.begin(), results.end(), s.sequence,
                                        [](const auto& p, std::uint64_t seq) { return p.sequence < seq; });
        if (r != results.end() && r->sequence == s.sequence) {
            if (r->request != 0 && r->request != request)
                return kv_result{.found = false, .status = kv_status::sequence_reused, .version = 0};
            kv_result replay = r->result;
            replay.replayed = true;
            return replay;
        }
        if (s.sequence <= it->second.forgotten)
            return kv_result{.found = false, .status = kv_status::stale_sequence, .version = 0};
        return std::nullopt;
    }

    /// Rule 4: records `result`, the outcome of applying the entry of `s` at `index`, with
    /// fingerprint `request`, for which begin() returned nothing.
    void finish(const kv_client_session& s, index_t index, std::uint64_t request, const kv_result& result)
    {
        auto it = sessions_.find(s.client);
        if (it == sessions_.end()) {
            save(s.client);
            it = sessions_.emplace(s.client, kv_session{}).first;
            it->second.last_index = index;
            by_last_.emplace(index, s.client);
        } else {
            touch(it, index);
        }
        auto& results = it->second.results;
        const auto at = std::lower_bound(results.begin(), results.end(), s.sequence,
                                         [](const auto& p, std::uint64_t seq) { return p.sequence < seq; });
        kv_result recorded = result;
        recorded.replayed = false;
        results.insert(at, kv_session_result{s.sequence, recorded, request});
        if (results.size() > kv_session_window) {
            it->second.forgotten = std::max(it->second.forgotten, results.front().sequence);
            results.erase(results.begin());
        }
        while (sessions_.size() > s.max_sessions)
            erase(by_last_.begin()->second);
    }

    /// The number of sessions.
    std::size_t size() const noexcept { return sessions_.size(); }

    /// The session of `client`, if any.
    const kv_session* find(std::uint64_t client) const
    {
        const auto it = sessions_.find(client);
        return it == sessions_.end() ? nullptr : &it->second;
    }

    /// Every session, by client id.
    const std::map<std::uint64_t, kv_session>& sessions() const noexcept { return sessions_; }

    /// Replaces the table with nothing.
    void clear()
    {
        sessions_.clear();
        by_last_.clear();
        undo_.clear();
    }

    /// Adds (or replaces) the session of `client`, as read from storage or a snapshot.
    void load(std::uint64_t client, kv_session session)
    {
        if (const auto it = sessions_.find(client); it != sessions_.end())
            by_last_.erase({it->second.last_index, client});
        by_last_.emplace(session.last_index, client);
        sessions_.insert_or_assign(client, std::move(session));
    }

    /// Starts tracking the changes of an apply batch.
    void start_batch() { undo_.clear(); }

    /// The clients whose session the batch changed (created, updated or removed).
    std::vector<std::uint64_t> changed() const
    {
        std::vector<std::uint64_t> out;
        out.reserve(undo_.size());
        for (const auto& [client, before] : undo_)
            out.push_back(client);
        return out;
    }

    /// Forgets the batch's changes: they stay.
    void commit() { undo_.clear(); }

    /// Undoes the batch's changes.
    void rollback()
    {
        for (auto& [client, before] : undo_) {
            if (const auto it = sessions_.find(client); it != sessions_.end()) {
                by_last_.erase({it->second.last_index, client});
                sessions_.erase(it);
            }
            if (before)
                load(client, std::move(*before));
        }
        undo_.clear();
    }

    /// A client id as a storage key: 8 bytes big-endian, so keys sort by id.
    static std::string encode_id(std::uint64_t client)
    {
        std::string out;
        for (int shift = 56; shift >= 0; shift -= 8)
            out.push_back(static_cast<char>((client >> shift) & 0xff));
        return out;
    }

    static std::optional<std::uint64_t> decode_id(std::string_view in)
    {
        if (in.size() != 8)
            return std::nullopt;
        std::uint64_t v = 0;
        for (const char c : in)
            v = (v << 8) | static_cast<unsigned char>(c);
        if (v == 0)
            return std::nullopt;
        return v;
    }

    /// A session as a storage value: varints of the last index, the highest forgotten
    /// sequence and the number of results, then for each result a varint of its sequence, a
    /// byte of flags (result_found, result_request), a byte of status, a varint of version
    /// and, with result_request, the fingerprint (8 bytes big-endian, not 0). Values written
    /// before fingerprints were recorded never set result_request, and decode as results
    /// without one.
    static std::string encode(const kv_session& s)
    {
        std::string out;
        put_varint(out, s.last_index);
        put_varint(out, s.forgotten);
        put_varint(out, s.results.size());
        for (const kv_session_result& e : s.results) {
            put_varint(out, e.sequence);
            out.push_back(static_cast<char>((e.result.found ? result_found : 0) |
                                            (e.request != 0 ? result_request : 0)));
            out.push_back(static_cast<char>(e.result.status));
            put_varint(out, e.result.version);
            if (e.request != 0)
                detail::put_be(out, e.request, 8);
        }
        return out;
    }

    /// Decodes what encode() wrote; nothing when `in` is not such a value.
    static std::optional<kv_session> decode(std::string_view in)
    {
        std::size_t pos = 0;
        kv_session s;
        std::uint64_t n = 0;
        if (!get_varint(in, pos, s.last_index) || !get_varint(in, pos, s.forgotten) ||
            !get_varint(in, pos, n) || n > kv_session_window)
            return std::nullopt;
        s.results.reserve(static_cast<std::size_t>(n));
        for (std::uint64_t k = 0; k < n; ++k) {
            kv_session_result e;
            if (!get_varint(in, pos, e.sequence) || in.size() - pos < 2)
                return std::nullopt;
            const auto flags = static_cast<unsigned char>(in[pos]);
            const auto status = static_cast<unsigned char>(in[pos + 1]);
            pos += 2;
            // A recorded result is never sequence_reused: such an entry records nothing.
            if ((flags & ~(result_found | result_request)) != 0 ||
                status > static_cast<unsigned char>(kv_status::stale_sequence) ||
                !get_varint(in, pos, e.result.version))
                return std::nullopt;
            if ((flags & result_request) != 0) {
                if (in.size() - pos < 8)
                    return std::nullopt;
                e.request = detail::get_be(in, pos, 8);
                pos += 8;
                if (e.request == 0)
                    return std::nullopt;
            }
            if (!s.results.empty() && e.sequence <= s.results.back().sequence)
                return std::nullopt;
            e.result.found = (flags & result_found) != 0;
            e.result.status = static_cast<kv_status>(status);
            s.results.push_back(e);
        }
        if (pos != in.size())
            return std::nullopt;
        return s;
    }

private:
    using iterator = std::map<std::uint64_t, kv_session>::iterator;

    // The flags byte of a stored result.
    static constexpr unsigned char result_found = 0x01;
    static constexpr unsigned char result_request = 0x02;

    // Rule 1: drops the sessions whose last entry is below index - expiry.
    void expire(index_t index, std::uint64_t expiry)
    {
        if (index <= expiry)
            return;
        const index_t oldest_alive = index - expiry;
        while (!by_last_.empty() && by_last_.begin()->first < oldest_alive)
            erase(by_last_.begin()->second);
    }

    void touch(iterator it, index_t index)
    {
        save(it->first);
        by_last_.erase({it->second.last_index, it->first});
        it->second.last_index = index;
        by_last_.emplace(index, it->first);
    }

    void erase(std::uint64_t client)
    {
        save(client);
        const auto it = sessions_.find(client);
        by_last_.erase({it->second.last_index, client});
        sessions_.erase(it);
    }

    // Keeps the state of `client`'s session before the batch's first change to it.
    void save(std::uint64_t client)
    {
        if (undo_.contains(client))
            return;
        const auto it = sessions_.find(client);
        undo_.emplace(client, it == sessions_.end() ? std::nullopt : std::optional<kv_session>(it->second));
    }

    static void put_varint(std::string& out, std::uint64_t v)
    {
        while (v >= 0x80) {
            out.push_back(static_cast<char>((v & 0x7f) | 0x80));
            v >>= 7;
        }
        out.push_back(static_cast<char>(v));
    }

    static bool get_varint(std::string_view in, std::size_t& pos, std::uint64_t& v)
    {
        v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (pos >= in.size())
                return false;
            const auto b = static_cast<unsigned char>(in[pos++]);
            if (shift == 63 && b > 1)
                return false;
            v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
            if ((b & 0x80) == 0)
                return true;
        }
        return false;
    }

    std::map<std::uint64_t, kv_session> sessions_;
    /// Each session's last index and client: the order of expiry and eviction.
    std::set<std::pair<index_t, std::uint64_t>> by_last_;
    /// During a batch: each changed session's state before it (nothing: it did not exist).
    std::map<std::uint64_t, std::optional<kv_session>> undo_;
};

/// Applies the entry at `index`, command `c`, through `table` when it carries a session:
/// returns the result of `apply_command()` (called only if the entry is to be applied),
/// or the one the table answers instead.
template <class ApplyCommand>
kv_result apply_with_session(kv_session_table& table, const kv_command& c, index_t index,
                             ApplyCommand&& apply_command)
{
    if (!c.session)
        return apply_command();
    const std::uint64_t request = kv_request_fingerprint(c);
    if (std::optional<kv_result> answered = table.begin(*c.session, index, request))
        return *answered;
    const kv_result r = apply_command();
    table.finish(*c.session, index, request, r);
    return r;
}

} // namespace raftkv

#endif
