#ifndef RAFTKV_SERVER_IDENTITY_HPP
#define RAFTKV_SERVER_IDENTITY_HPP

// The identity a data directory belongs to: its cluster, its node id and the members the
// cluster was bootstrapped with, kept in DATA_DIR/identity. Written once, on the first
// start; on every later start the flags are checked against it, so that a data directory
// never serves under another id or in another cluster. docs/server.md describes the file.
//
//     identity_plan plan = plan_identity(config);  // throws config_error on a conflict
//     ...                                          // open the node
//     if (plan.write) write_identity(config.data_dir, plan.id);

#include "config.hpp"

#include <raftkv/types.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace raftkv::server {

/// The contents of an identity file.
struct identity {
    /// Derived from the bootstrap members and the token: derive_cluster_id().
    std::uint64_t cluster_id = 0;
    /// --cluster-token at bootstrap; empty when none was given.
    std::string cluster_token;
    node_id id = no_node;
    /// This node's advertised HTTP address, as it was last started with.
    host_port http;
    /// Where it last listened for HTTP (--http), when other than `http` (a wildcard, say,
    /// with --advertise-http). A restart without --http listens there again.
    std::optional<host_port> listen_http;
    /// The bootstrap members' Raft addresses, this node included; for a node that joined,
    /// the members' addresses when it joined.
    std::map<node_id, host_port> members;
    /// Names this data directory: drawn at random when the file is first written, never 0
    /// once written (0 in a file of a release without it). Peers record it and refuse this
    /// id with another one: see tcp_transport_options::incarnation.
    std::uint64_t incarnation = 0;
    /// The node joined a running cluster (--join): the cluster id is that cluster's, and
    /// the node's configuration comes only from the cluster.
    bool joined = false;
    /// The cluster this data directory's member left with --force-new-cluster to become
    /// the only member of this one; 0 if it never did. See expected_cluster_id().
    std::uint64_t forced_from = 0;
    /// A cluster started with --restore-backup: the cluster the backup was taken from and
    /// the backup's index (0 and 0 otherwise), mixed into the cluster id so that members
    /// restored from different backups refuse each other. See expected_cluster_id().
    std::uint64_t restored_from_cluster = 0;
    index_t restored_from_index = 0;

    friend bool operator==(const identity&, const identity&) = default;
};

/// The first line of an identity file: its format and version. Version 2 ends with a
/// checksum line (with_checksum()); version 1 files, written before, are read as they are.
inline constexpr std::string_view identity_header = "raftkv-identity 2";
inline constexpr std::string_view identity_header_v1 = "raftkv-identity 1";

/// A 64-bit FNV-1a hash of the token and the sorted "id=host:port" members, never 0: every
/// node given the same --peers and --cluster-token computes the same id without talking.
std::uint64_t derive_cluster_id(const std::map<node_id, host_port>& members, std::string_view token);

/// The cluster id `id` must have unless it joined: derive_cluster_id() of its members and
/// token, with its restored_from (when the cluster started from a backup) and its forced_from
/// (when it is not 0) mixed into the token.
std::uint64_t expected_cluster_id(const identity& id);

/// "0x<cluster> <index>": the restored-from line's value.
std::string restored_from_text(const identity& id);

/// A random nonzero incarnation, from std::random_device.
std::uint64_t new_incarnation();

/// Sets the HTTP addresses of `id` to those `c` listens and advertises at: `http` to
/// c.advertise_http, `listen_http` to c.http unless the same. Whether anything changed.
bool record_addresses(identity& id, const server_config& c);

/// The identity a node bootstrapping with `c` records, with a new incarnation.
identity identity_from(const server_config& c);

/// The identity file's text.
std::string format_identity(const identity& id);

/// Parses an identity file's text; std::nullopt with the reason in `error` if malformed.
std::optional<identity> parse_identity(std::string_view text, std::string& error);

/// DATA_DIR/identity.
std::filesystem::path identity_path(const std::filesystem::path& data_dir);

/// Reads the identity file of `data_dir`: std::nullopt if there is none. Throws
/// std::runtime_error if it cannot be read or is malformed.
std::optional<identity> read_identity(const std::filesystem::path& data_dir);

/// Writes the identity file atomically: a temporary file, fsync, rename, fsync of the
/// directory (created if missing). Throws std::runtime_error on failure.
void write_identity(const std::filesystem::path& data_dir, const identity& id);

/// What start-up does with the identity.
struct identity_plan {
    identity id;
    /// The file does not exist yet, or lacks an incarnation: write `id` once the node
    /// opened its storage.
    bool write = false;
    /// The file exists and stays this data directory's, but the flags moved the node's
    /// addresses: write `id`, which records them, once the node opened its storage.
    bool rewrite = false;
    /// The data directory holds Raft data from a release without identity files.
    bool adopted = false;
    /// --force-new-cluster: the cluster the member leaves (0 otherwise). `id` is then the
    /// new cluster's, with this node its only member, written once its log was rewritten.
    std::uint64_t forced_from = 0;
};

/// Reconciles `c` with the identity of its data directory. A node with --join and no
/// identity asks the member for the cluster (fetch_cluster()) and plans to record that it
/// joined: it must be a member already, at its --raft address, and its data directory must
/// hold no Raft data (config_error otherwise; std::runtime_error if the member cannot be
/// asked). With a recorded identity: the
/// recorded members replace `c.peers` when --peers was not given (and this node's member
/// address `c.raft` when --raft was not given), the HTTP addresses the node last listened
/// and advertised at replace `c.http` and `c.advertise_http` when --http and
/// --advertise-http were not given (others given are planned to be recorded: `rewrite`),
/// and a conflict — another --id, another
/// --cluster-token, or a --peers list other than the recorded one — throws config_error
/// with one line naming it and what to do; a file without an incarnation gets one and is
/// planned to be rewritten. Without one, plans to record identity_from(c). Sets
/// c.cluster_id and c.incarnation either way. With --force-new-cluster the data directory
/// must hold a member of the cluster it names (config_error otherwise), and the plan is a
/// new identity: a new cluster id (expected_cluster_id(), forced_from the old one), this
/// node its only member (c.peers too), a new incarnation. Throws std::runtime_error if the
/// file is unreadable.
identity_plan plan_identity(server_config& c);

} // namespace raftkv::server

#endif
