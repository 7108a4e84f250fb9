#ifndef RAFTKV_SERVER_PEER_INCARNATIONS_HPP
#define RAFTKV_SERVER_PEER_INCARNATIONS_HPP

// The incarnation (data directory) this node recorded for each peer, kept in DATA_DIR/peers
// so that a peer that comes back with a lost data directory is refused across restarts of
// this node too. Written on the node's strand each time the transport learns one; read at
// start into tcp_transport_options::known_incarnations. docs/server.md describes the file.
//
//     raftkv-peers 2
//     incarnation 1 0x9c41f0d2a7e35b18
//     incarnation 3 0x1d07e6b8c2f94a35 added 0x6a0c1f9e22d4b871
//     checksum 0x5f0e3a1c
//
// `added` is the tag the member had in the configuration when its incarnation was recorded
// (member_info::added, absent when 0): a configuration that shows another one for it means it
// was removed and added back since, and the record is dropped.
//
// The checksum (CRC-32C of every byte before its line) catches a damaged file that still
// parses: a wrong incarnation recorded for a peer would have this node refuse that peer,
// and tell it that its own data directory was replaced. Version 1 files (no checksum) are
// read as they are, and written again as version 2.

#include <raftkv/types.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace raftkv::server {

/// What this node recorded of one peer.
struct peer_record {
    /// The peer's data directory (tcp_transport_options::incarnation).
    std::uint64_t incarnation = 0;
    /// The peer's member_info::added when it was recorded.
    std::uint64_t added = 0;
    friend bool operator==(const peer_record&, const peer_record&) = default;
};

using peer_incarnations = std::map<node_id, peer_record>;

/// The incarnations alone, as tcp_transport_options::known_incarnations takes them.
std::map<node_id, std::uint64_t> incarnations_of(const peer_incarnations& peers);

/// The first line of a peers file: its format and version.
inline constexpr std::string_view peers_header = "raftkv-peers 2";
/// The first line of a peers file written before they had a checksum.
inline constexpr std::string_view peers_header_v1 = "raftkv-peers 1";

/// The peers file's text.
std::string format_peer_incarnations(const peer_incarnations& peers);

/// Parses a peers file's text; std::nullopt with the reason in `error` if malformed.
std::optional<peer_incarnations> parse_peer_incarnations(std::string_view text, std::string& error);

/// DATA_DIR/peers.
std::filesystem::path peers_path(const std::filesystem::path& data_dir);

/// The incarnations recorded in `data_dir`; none if there is no peers file. Throws
/// std::runtime_error if it cannot be read or is malformed.
peer_incarnations read_peer_incarnations(const std::filesystem::path& data_dir);

/// Replaces the peers file atomically (write_file_atomically). Throws std::runtime_error.
void write_peer_incarnations(const std::filesystem::path& data_dir, const peer_incarnations& peers);

} // namespace raftkv::server

#endif
