#ifndef RAFTKV_ASIO_DETAIL_GREETING_HPP
#define RAFTKV_ASIO_DETAIL_GREETING_HPP

// The greeting: the first bytes a peer link sends on every connection it dials, before any
// frame. It says which cluster and which node the connection comes from, which node it
// expects to reach, which protocol it speaks, and which data directories (incarnations)
// both ends have, so that the listener refuses a peer of another cluster, a duplicate id,
// a misdirected link or a member that came back with a new data directory before trusting
// a single frame. docs/transport.md describes the layout. Every function here is a pure
// function of its arguments.
//
//     [magic u32 = 0x52464B48 "RFKH"][greeting version u16 = 2][frame version u16]
//     [cluster id u64][sender id u64][receiver id u64]
//     [sender incarnation u64][receiver incarnation u64]             (48 bytes, big-endian)

#include <raftkv/asio/codec.hpp>
#include <raftkv/types.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <ios>
#include <sstream>
#include <string>

namespace raftkv::asio::detail {

/// "RFKH" in ASCII: the first four bytes of a greeting.
inline constexpr std::uint32_t greeting_magic = 0x52464B48;

/// The greeting layout this build writes and reads.
inline constexpr std::uint16_t greeting_version = 2;

inline constexpr std::size_t greeting_size = 48;

using greeting_bytes = std::array<char, greeting_size>;

struct greeting {
    std::uint16_t version = greeting_version;
    /// The payload format of the frames that follow (codec.hpp's frame_version).
    std::uint16_t frame_version = raftkv::asio::frame_version;
    /// 0: the sender does not name a cluster.
    std::uint64_t cluster_id = 0;
    node_id from = no_node;
    node_id to = no_node;
    /// The sender's data directory; 0: the sender does not track incarnations.
    std::uint64_t from_incarnation = 0;
    /// The receiver's data directory as the sender last saw it; 0: unknown.
    std::uint64_t to_incarnation = 0;
};

namespace greeting_io {

inline void put(char*& p, std::uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; --i)
        *p++ = static_cast<char>((v >> (8 * i)) & 0xff);
}

inline std::uint64_t get(const char*& p, int bytes)
{
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
        v = (v << 8) | static_cast<unsigned char>(*p++);
    return v;
}

} // namespace greeting_io

inline greeting_bytes encode_greeting(const greeting& g)
{
    greeting_bytes out{};
    char* p = out.data();
    greeting_io::put(p, greeting_magic, 4);
    greeting_io::put(p, g.version, 2);
    greeting_io::put(p, g.frame_version, 2);
    greeting_io::put(p, g.cluster_id, 8);
    greeting_io::put(p, g.from, 8);
    greeting_io::put(p, g.to, 8);
    greeting_io::put(p, g.from_incarnation, 8);
    greeting_io::put(p, g.to_incarnation, 8);
    return out;
}

/// "0x" and 16 hex digits, the form cluster ids and incarnations take in logs and in the
/// server's files.
inline std::string cluster_id_name(std::uint64_t id)
{
    std::ostringstream os;
    os << "0x" << std::hex;
    os.width(16);
    os.fill('0');
    os << id;
    return os.str();
}

inline constexpr const char* no_greeting_reason =
    "no raftkv greeting (not a raftkv peer, or one older than greetings)";

/// Whether the first four bytes of `bytes` are the greeting magic.
inline bool has_greeting_magic(const greeting_bytes& bytes)
{
    const char* p = bytes.data();
    return greeting_io::get(p, 4) == greeting_magic;
}

/// Checks a greeting received by node `self` of cluster `cluster_id` (0: any cluster).
/// Returns the empty string and sets `out` when the connection may proceed; otherwise
/// the reason to refuse it, for a log line.
inline std::string check_greeting(const greeting_bytes& bytes, std::uint64_t cluster_id, node_id self,
                                  greeting& out)
{
    if (!has_greeting_magic(bytes))
        return no_greeting_reason;
    const char* p = bytes.data() + 4;
    greeting g;
    g.version = static_cast<std::uint16_t>(greeting_io::get(p, 2));
    g.frame_version = static_cast<std::uint16_t>(greeting_io::get(p, 2));
    g.cluster_id = greeting_io::get(p, 8);
    g.from = greeting_io::get(p, 8);
    g.to = greeting_io::get(p, 8);
    g.from_incarnation = greeting_io::get(p, 8);
    g.to_incarnation = greeting_io::get(p, 8);
    if (g.version != greeting_version)
        return "greeting version " + std::to_string(g.version) + ", this node speaks " +
               std::to_string(greeting_version);
    if (g.frame_version != raftkv::asio::frame_version)
        return "protocol version " + std::to_string(g.frame_version) + ", this node speaks " +
               std::to_string(raftkv::asio::frame_version);
    if (cluster_id != 0 && g.cluster_id != cluster_id)
        return "node " + std::to_string(g.from) + " of cluster " + cluster_id_name(g.cluster_id) +
               ", this node is in cluster " + cluster_id_name(cluster_id);
    if (g.from == no_node)
        return "the peer gives no node id";
    if (g.from == self)
        return "the peer claims this node's own id " + std::to_string(self) +
               " (two nodes started with the same id?)";
    if (g.to != self)
        return "node " + std::to_string(g.from) + " expects node " + std::to_string(g.to) +
               " at this address, this is node " + std::to_string(self);
    out = g;
    return {};
}

/// What a listener that tracks incarnations does with a greeting check_greeting() accepted.
enum class incarnation_verdict {
    accept,
    /// Accept, and record the sender's incarnation: none was recorded for it.
    learn,
    /// Refuse: the sender's data directory is not the one recorded for its id.
    new_sender_directory,
    /// Refuse: the sender's data directory is one its id had before it was removed and
    /// added back (incarnation_book::retire()).
    retired_sender_directory,
    /// Refuse, and stop this node: the sender knows this node by another data directory,
    /// so this node's own was replaced.
    replaced_receiver_directory,
};

/// Checks the incarnations of greeting `g` received by a node whose own incarnation is
/// `self` (0: incarnations are not tracked, accept) and which recorded `recorded` for the
/// sender (0: nothing recorded). A sender that does not track incarnations is accepted.
inline incarnation_verdict check_incarnations(const greeting& g, std::uint64_t self, std::uint64_t recorded)
{
    if (self == 0)
        return incarnation_verdict::accept;
    if (g.to_incarnation != 0 && g.to_incarnation != self)
        return incarnation_verdict::replaced_receiver_directory;
    if (g.from_incarnation == 0 || g.from_incarnation == recorded)
        return incarnation_verdict::accept;
    return recorded == 0 ? incarnation_verdict::learn : incarnation_verdict::new_sender_directory;
}

/// The reason a listener gives for refusing a sender that came back with a new data directory.
inline std::string new_directory_reason(const greeting& g, std::uint64_t recorded)
{
    const std::string n = std::to_string(g.from);
    return "node " + n + " came back with a new data directory, or a second process runs as node " + n +
           " (incarnation " + cluster_id_name(g.from_incarnation) + ", known as " +
           cluster_id_name(recorded) + "): if its data was lost, remove it (DELETE /cluster/members/" + n +
           ") and add it back with --join; if an old process of node " + n +
           " still runs (a removed member runs until it is stopped), stop that one";
}

/// The reason a listener gives for refusing a sender on the data directory its id had
/// before it was removed and added back.
inline std::string retired_directory_reason(const greeting& g)
{
    const std::string n = std::to_string(g.from);
    return "node " + n + " greets from data directory " + cluster_id_name(g.from_incarnation) +
           ", which node " + n + " had before it was removed and added back: an old process of node " + n +
           " still runs (a removed member runs until it is stopped); stop it";
}

/// The reason a node gives when a peer knows it by another data directory.
inline std::string replaced_directory_reason(const greeting& g, std::uint64_t self)
{
    return "peer " + std::to_string(g.from) + " knows node " + std::to_string(g.to) +
           " by another data directory (incarnation " + cluster_id_name(g.to_incarnation) + ", this one is " +
           cluster_id_name(self) + ")";
}

} // namespace raftkv::asio::detail

#endif
