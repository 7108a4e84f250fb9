#ifndef RAFTKV_MEMBERSHIP_HPP
#define RAFTKV_MEMBERSHIP_HPP

// The byte encoding of a membership: the data of config entries, and what log stores
// keep as the configuration at the start of their log. Little-endian, versioned, with
// every length checked on decode, since it is read back from disk and from peers.

#include <raftkv/types.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace raftkv {

namespace detail {

inline void put_u32(std::string& out, std::uint32_t v)
{
    for (int k = 0; k < 4; ++k)
        out.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}

inline void put_u64(std::string& out, std::uint64_t v)
{
    for (int k = 0; k < 8; ++k)
        out.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}

/// Reads fixed-width little-endian integers from a byte string, failing (and staying
/// failed) rather than reading past its end.
class membership_reader {
public:
    explicit membership_reader(std::string_view in) : in_(in) {}

    bool u8(std::uint8_t& v) { return fixed(v, 1); }
    bool u32(std::uint32_t& v) { return fixed(v, 4); }
    bool u64(std::uint64_t& v) { return fixed(v, 8); }
    bool bytes(std::string& v, std::size_t n)
    {
        if (n > in_.size() - pos_)
            return false;
        v.assign(in_.substr(pos_, n));
        pos_ += n;
        return true;
    }
    bool ids(std::vector<node_id>& out)
    {
        std::uint32_t n = 0;
        if (!u32(n) || n > (in_.size() - pos_) / 8)
            return false;
        out.resize(n);
        for (auto& id : out) {
            if (!u64(id) || id == no_node)
                return false;
        }
        return true;
    }
    bool at_end() const noexcept { return pos_ == in_.size(); }

private:
    template <class T>
    bool fixed(T& v, std::size_t n)
    {
        if (n > in_.size() - pos_)
            return false;
        v = 0;
        for (std::size_t k = 0; k < n; ++k)
            v |= static_cast<T>(static_cast<T>(static_cast<unsigned char>(in_[pos_ + k])) << (8 * k));
        pos_ += n;
        return true;
    }

    std::string_view in_;
    std::size_t pos_ = 0;
};

} // namespace detail

/// The version byte that starts every encoded membership.
inline constexpr std::uint8_t membership_encoding_version = 1;

/// Encodes `m`: a version byte, then voters, outgoing and learners (a u32 count and u64
/// ids each), then info (a u32 count and, for each, a u64 id, a u32 length and the bytes).
inline std::string encode_membership(const membership& m)
{
    std::string out;
    out.push_back(static_cast<char>(membership_encoding_version));
    for (const auto* ids : {&m.voters, &m.outgoing, &m.learners}) {
        detail::put_u32(out, static_cast<std::uint32_t>(ids->size()));
        for (node_id id : *ids)
            detail::put_u64(out, id);
    }
    detail::put_u32(out, static_cast<std::uint32_t>(m.info.size()));
    for (const auto& [id, data] : m.info) {
        detail::put_u64(out, id);
        detail::put_u32(out, static_cast<std::uint32_t>(data.size()));
        out += data;
    }
    return out;
}

/// Decodes what encode_membership() produced; nullopt for anything else (another version,
/// a truncated or padded string, an id of 0, info not in increasing id order).
inline std::optional<membership> decode_membership(std::string_view in)
{
    detail::membership_reader r{in};
    membership m;
    std::uint8_t version = 0;
    if (!r.u8(version) || version != membership_encoding_version)
        return std::nullopt;
    if (!r.ids(m.voters) || !r.ids(m.outgoing) || !r.ids(m.learners))
        return std::nullopt;
    // A member counted twice would change a quorum's size, and a learner cannot also vote:
    // no configuration the node makes looks like that, so no peer may send one.
    const auto repeats = [](std::vector<node_id> ids) {
        std::sort(ids.begin(), ids.end());
        return std::adjacent_find(ids.begin(), ids.end()) != ids.end();
    };
    if (repeats(m.voters) || repeats(m.outgoing) || repeats(m.learners))
        return std::nullopt;
    for (node_id id : m.learners)
        if (std::find(m.voters.begin(), m.voters.end(), id) != m.voters.end())
            return std::nullopt;
    std::uint32_t n = 0;
    if (!r.u32(n))
        return std::nullopt;
    for (std::uint32_t k = 0; k < n; ++k) {
        node_id id = 0;
        std::uint32_t size = 0;
        std::string data;
        if (!r.u64(id) || id == no_node)
            return std::nullopt;
        // encode_membership() writes the info in increasing id order, once each: accepting
        // another order or a repeated id would give one configuration several encodings,
        // and a repeated id would silently keep only its last info.
        if (!m.info.empty() && id <= m.info.rbegin()->first)
            return std::nullopt;
        if (!r.u32(size) || !r.bytes(data, size))
            return std::nullopt;
        m.info.emplace_hint(m.info.end(), id, std::move(data));
    }
    if (!r.at_end())
        return std::nullopt;
    return m;
}

/// The configuration a config entry's data holds, if a node can use it: it decodes, and has
/// at least one voter; nullopt otherwise.
inline std::optional<membership> decode_config_entry(std::string_view data)
{
    auto m = decode_membership(data);
    if (!m || m->voters.empty())
        return std::nullopt;
    return m;
}

/// Calls `f(entry)` for each config entry in the log of `store` (a log_store), in index
/// order, reading the log in chunks of about 1 MiB.
template <class LogStore, class F>
void for_each_config_entry(const LogStore& store, F&& f)
{
    const index_t last = store.last_index();
    for (index_t lo = store.first_index(); lo <= last;) {
        const std::vector<log_entry> es = store.entries(lo, last + 1, 1024 * 1024);
        if (es.empty())
            return;
        for (const log_entry& e : es)
            if (e.type == entry_type::config)
                f(e);
        lo = es.back().index + 1;
    }
}

} // namespace raftkv

#endif
