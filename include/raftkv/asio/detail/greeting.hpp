#ifndef RAFTKV_ASIO_DETAIL_GREETING_HPP
#define RAFTKV_ASIO_DETAIL_GREETING_HPP

// The greeting: the first bytes a peer link sends on every connection it dials, before any
// frame. It says which cluster and which node the connection comes from, which node it
// expects to reach, and which protocol it speaks, so that the listener refuses a peer of
// another cluster, a duplicate id or a misdirected link before trusting a single frame.
// docs/transport.md describes the layout. Every function here is a pure function of its
// arguments.
//
//     [magic u32 = 0x52464B48 "RFKH"][greeting version u16 = 1][frame version u16]
//     [cluster id u64][sender id u64][receiver id u64]              (32 bytes, big-endian)

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
inline constexpr std::uint16_t greeting_version = 1;

inline constexpr std::size_t greeting_size = 32;

using greeting_bytes = std::array<char, greeting_size>;

struct greeting {
    std::uint16_t version = greeting_version;
    /// The payload format of the frames that follow (codec.hpp's frame_version).
    std::uint16_t frame_version = raftkv::asio::frame_version;
    /// 0: the sender does not name a cluster.
    std::uint64_t cluster_id = 0;
    node_id from = no_node;
    node_id to = no_node;
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
    return out;
}

/// "0x" and 16 hex digits, the form cluster ids take in logs and in the server's identity file.
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

} // namespace raftkv::asio::detail

#endif
