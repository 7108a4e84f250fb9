#ifndef RAFTKV_SERVER_CONFIG_HPP
#define RAFTKV_SERVER_CONFIG_HPP

// raftkv-server's configuration: command-line flags (read with Boost.Program_options) and
// an optional YAML file (--config, read with yaml-cpp), validated into one plain struct.
// Flags override the file; the file overrides the defaults. Parsing never exits or throws
// for bad input: it returns the error message, and main() prints it and exits with code 2.
// docs/server.md describes every setting.
//
//     parse_result r = parse_command_line(argc, argv);
//     if (!r.ok()) { std::cerr << "raftkv-server: " << r.error << '\n'; return 2; }

#include "auth.hpp"
#include "log.hpp"

#include <raftkv/types.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace raftkv::server {

/// A TCP address as the operator wrote it, host unresolved.
struct host_port {
    /// A host name, an IPv4 address, or an IPv6 address (without its brackets).
    std::string host;
    /// 1 to 65535.
    std::uint16_t port = 0;

    /// "host:port", or "[v6 address]:port".
    std::string to_string() const;

    friend bool operator==(const host_port&, const host_port&) = default;
};

/// Everything raftkv-server needs to start. Each field's default is what the server
/// uses when neither a flag nor the config file sets it.
struct server_config {
    /// This node's id. Never 0; listed in `peers`.
    node_id id = 1;

    /// Holds log/ (the Raft log) and state/ (the key-value state machine).
    std::filesystem::path data_dir = "raftkv-data";

    /// Where the HTTP API listens.
    host_port http{"127.0.0.1", 8080};

    /// The HTTP address this node publishes: where other nodes forward requests while it
    /// leads, so it must be reachable from them. Default: `http`, which in a cluster must
    /// then not be a wildcard (0.0.0.0 or ::); check_advertise_http() says so.
    host_port advertise_http{"127.0.0.1", 8080};
    /// --advertise-http (or the key) was given.
    bool advertise_http_given = false;
    /// --http (or the key) was given. A restart without it listens where the node last
    /// did (its identity file).
    bool http_given = false;

    /// Where this node accepts Raft connections from its peers.
    /// Default: 127.0.0.1:9080, or this node's entry in `peers` when only that is given.
    host_port raft{"127.0.0.1", 9080};

    /// Every member's Raft address, this node included.
    /// Default: the list recorded in the data directory's identity file, else only this
    /// node, at `raft`.
    std::map<node_id, host_port> peers{{1, {"127.0.0.1", 9080}}};
    /// --peers (or the key) was given; otherwise `peers` is the default above.
    bool peers_given = false;
    /// --raft (or the key) was given.
    bool raft_given = false;

    /// Mixed into the cluster id of a new cluster, so that two clusters bootstrapped with
    /// the same member list do not accept each other's nodes. Unset on a restart: the
    /// token recorded in the data directory.
    std::optional<std::string> cluster_token;

    /// A member of a running cluster to join through (its HTTP address): this node was
    /// added to that cluster (POST /cluster/members) and starts with an empty data
    /// directory, learning the cluster's id and members from it. Ignored once the data
    /// directory records that it joined. Not with `peers`.
    std::optional<host_port> join;
    /// `join` was given as https://: the member list is fetched over TLS, trusting the
    /// CAs forwarding trusts (forward_ca, else client_ca, else the system's) and presenting
    /// tls_cert. Needs tls_cert (the members of an HTTPS cluster all serve HTTPS); an
    /// http:// `join` needs its absence.
    bool join_https = false;

    /// A backup file (backup.hpp) to start a new single-node cluster from: its key-value
    /// state, with the log starting after its index. Needs a data directory that holds no
    /// Raft data and no --join; --peers, if given, names this node alone.
    std::optional<std::filesystem::path> restore_backup;

    /// The id of the cluster this member leaves to become the only member of a new one,
    /// with its data (a disaster recovery: a majority of the voters is lost for good). The
    /// data directory must hold a member of that cluster; see force_new_cluster() in main.cpp
    /// and docs/server.md, "Losing a majority". Not with `join` or `restore_backup`; `peers`,
    /// if given, names this node alone.
    std::optional<std::uint64_t> force_new_cluster;

    /// Not a setting: the cluster id, from the data directory's identity (identity.hpp),
    /// set before the node starts. 0 until then.
    std::uint64_t cluster_id = 0;
    /// Not a setting: this node joined a running cluster (--join) rather than
    /// bootstrapping one, so `peers` only tells where the members were when it joined; the
    /// configuration comes from the cluster.
    bool joined = false;

    /// Not a setting: this data directory's incarnation, from its identity file, set
    /// before the node starts. 0 until then.
    std::uint64_t incarnation = 0;
    /// Not a setting: `incarnation` was drawn at this start (a new data directory, or one
    /// whose identity file was written now), rather than read from an identity file, and
    /// not by --join (which the cluster asked for).
    bool incarnation_new = false;
    /// Not a setting: the node joined the cluster at this start (--join on an empty data
    /// directory), so a peer that knows its id by another directory missed its addition.
    bool joined_now = false;

    /// The Raft clock's tick. Default: 10 ms.
    std::uint32_t tick_ms = 10;
    /// Threads running the io_context (HTTP, Raft connections, the node's strand).
    std::uint32_t threads = 2;

    /// Followers start an election after a random timeout in [election_ticks,
    /// 2 * election_ticks) ticks without a leader. Greater than heartbeat_ticks.
    /// Default: 30 (300-600 ms).
    std::uint32_t election_ticks = 30;

    /// The leader's heartbeat interval, in ticks. Default: 5 (50 ms).
    std::uint32_t heartbeat_ticks = 5;

    /// How long a write or a read may wait for the cluster before answering 503.
    /// Default: 5000 ms.
    std::uint32_t request_timeout_ms = 5000;

    /// How long GET /health waits for a linearizable read through the cluster, when the
    /// request names no ?timeout=, before answering 503. 1 to 30000. Default: 1000 ms.
    std::uint32_t health_timeout_ms = 1000;

    /// How long the result of a health check's read answers the checks that follow, so
    /// that many probes cost one ReadIndex round. 0 to 60000. Default: 100 ms.
    std::uint32_t health_reuse_ms = 100;

    /// Take a snapshot of the state machine once this many entries were applied since the
    /// last one (or 64 MiB of commands, whichever comes first), and drop the log behind it.
    /// 0: never; the log then grows without bound. Default: 10000.
    std::uint64_t snapshot_entries = 10000;

    /// Entries kept in the log behind a snapshot, so that a follower a little behind
    /// catches up from the log rather than with a whole snapshot. Default: 5000.
    std::uint64_t snapshot_catchup_entries = 5000;

    /// The most command bytes kept in the log behind a snapshot, whatever
    /// snapshot_catchup_entries says: large values would otherwise keep (and hold in
    /// memory) gigabytes of log. 0: no limit by size. Default: 64 MiB.
    std::uint64_t snapshot_catchup_bytes = std::uint64_t{64} << 20;

    /// The most command bytes of log a leader keeps for a follower it sends a snapshot to,
    /// or that catches up after one (raftkv::options::snapshot_hold_bytes): the log is held
    /// in memory too. 0: no limit. Default: 512 MiB.
    std::uint64_t snapshot_hold_bytes = std::uint64_t{512} << 20;

    /// The most bytes the key-value state's tables (DATA_DIR/state) may take: past it, writes
    /// other than deletes are refused until deletes bring it back under. 0: no quota.
    /// Default: 8 GiB.
    std::uint64_t quota_bytes = std::uint64_t{8} << 30;

    /// The most HTTP connections open at once; one more closes the longest-idle connection,
    /// or is answered 503 and closed when none is idle.
    /// Default: 4096.
    std::uint32_t max_connections = 4096;

    /// The most bytes of HTTP request bodies being received at once, over all connections;
    /// a request whose body does not fit is answered 503. At least the largest request
    /// body (6 MiB + 64 KiB). Default: 64 MiB.
    std::uint64_t max_pending_body_bytes = std::uint64_t{64} << 20;

    /// The changes each node keeps in memory for GET /watch to replay (change_journal):
    /// at most this many, and at most watch_history_bytes of keys and values.
    /// Defaults: 100000 and 64 MiB.
    std::uint64_t watch_history_entries = 100'000;
    std::uint64_t watch_history_bytes = std::uint64_t{64} << 20;

    /// The most GET /watch streams open at once; one more is answered 503. Default: 1024.
    std::uint32_t max_watchers = 1024;

    /// How far, in bytes of changes, a watch may fall behind the node before it is ended
    /// with the index to resume from. Default: 8 MiB.
    std::uint64_t watch_buffer_bytes = std::uint64_t{8} << 20;

    /// A request's HTTP header must arrive whole within this long of its first byte, else
    /// the connection is closed (http_server_options::header_timeout). 100 to 3600000.
    /// Default: 10000 ms.
    std::uint32_t http_header_timeout_ms = 10'000;

    /// A request's HTTP body must arrive whole within this long of the end of its header
    /// (http_server_options::body_timeout). 100 to 3600000. Default: 60000 ms.
    std::uint32_t http_body_timeout_ms = 60'000;

    /// An HTTP connection with every request answered is closed after this long without
    /// the first byte of a next one; also the limit on writing one response
    /// (http_server_options::idle_timeout). 100 to 3600000. Default: 60000 ms.
    std::uint32_t http_idle_timeout_ms = 60'000;

    /// With tls_cert: a TLS handshake must complete within this long
    /// (http_server_options::handshake_timeout). 100 to 3600000. Default: 10000 ms.
    std::uint32_t http_handshake_timeout_ms = 10'000;

    /// The rest of a Raft frame must arrive within this long of its header, else the peer is
    /// disconnected (tcp_transport_options::frame_timeout). 100 to 3600000.
    /// Default: 30000 ms.
    std::uint32_t raft_frame_timeout_ms = 30'000;

    /// An accepted Raft connection must send its greeting within this long
    /// (tcp_transport_options::greeting_timeout). 100 to 3600000. Default: 5000 ms.
    std::uint32_t raft_greeting_timeout_ms = 5'000;

    /// The most accepted Raft connections waiting for their greeting at once
    /// (tcp_transport_options::max_ungreeted_connections). 1 to 65536. Default: 32.
    std::uint32_t raft_max_ungreeted = 32;

    /// Serve the HTTP API over TLS only, with this PEM certificate chain and private key;
    /// both or neither. Default: none, plain HTTP.
    std::string tls_cert;
    std::string tls_key;

    /// With tls_cert: HTTPS clients must present a certificate signed by a CA in this PEM
    /// file. Default: none, no client certificate asked for.
    std::string client_ca;

    /// With tls_cert: the CAs (PEM) that forwarding to the leader trusts for the leader's
    /// HTTPS certificate. Default: client_ca, else the system's CAs.
    std::string forward_ca;

    /// Default: info.
    server::log_level log_level = log_level::info;

    /// Default: text.
    server::log_format log_format = log_format::text;

    /// Peer TLS: this node's certificate and private key, and the CA its peers'
    /// certificates must chain to (PEM files, readable at start). All three or none.
    /// Default: none (Raft connections are plain TCP).
    std::string peer_cert, peer_key, peer_ca;
    bool peer_tls() const { return !peer_cert.empty(); }

    /// The tokens file (--auth-tokens): every HTTP request but GET /health, /livez and
    /// /readyz must then carry
    /// one of its tokens, "Authorization: Bearer <token>" (auth.hpp). Unset: no
    /// authorization, every client may make every request.
    std::optional<std::filesystem::path> auth_tokens_file;
    /// The tokens of that file, read and checked while parsing the configuration.
    std::vector<auth_token> auth_tokens;
};

/// What the command line asks for, or why it cannot be followed.
struct parse_result {
    /// Set when the arguments are bad: one line, without the "raftkv-server: " prefix.
    std::string error;
    /// --help (or -h) was given: print help_text() and exit 0. Wins over every error.
    bool help = false;
    /// --version was given: print the version line and exit 0. Wins over every error
    /// but --help.
    bool version = false;
    /// --inspect was given: report what config.data_dir holds and exit, without starting.
    bool inspect = false;
    /// The configuration to run with, valid when ok() and neither help nor version.
    server_config config;

    bool ok() const { return error.empty(); }
};

/// Thrown by start-up steps after parsing (e.g. resolving a host name) when the
/// configuration cannot be followed; main() reports it like a parse error (exit code 2).
class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Parses argv[1..argc) and reads the --config file if one is named.
parse_result parse_command_line(int argc, const char* const* argv);

/// Parses `args` (without the program name) and reads the --config file if one is named.
parse_result parse_arguments(const std::vector<std::string>& args);

/// Parses `contents` as the text of a config file named `file_name` (the name only
/// appears in error messages), with no flags: what parse_arguments() does for
/// `--config file_name` once it has read the file.
parse_result parse_config_text(std::string_view contents, const std::string& file_name);

/// The --help text: every flag and config-file key.
std::string help_text();

/// Parses "host:port" or "[v6]:port": a non-empty host of letters, digits, '.', '-' and
/// '_' (or an IPv6 address in brackets) and a decimal port in 1-65535.
std::optional<host_port> parse_host_port(std::string_view text);

/// Why `c` cannot run as configured, when it is a cluster (more than one peer, or more
/// than one of `members`: the configuration in force, which a node bootstrapped alone may
/// have grown to) whose advertised HTTP address is a wildcard other nodes cannot forward
/// requests to; else "".
std::string advertise_http_problem(const server_config& c, std::size_t members = 0);

/// True for 0.0.0.0 and ::, the addresses that mean "every interface".
bool is_wildcard(const host_port& address);

/// Whether a node listening at `listen` may be reached at `dialed`, as far as can be told
/// without resolving names: the same port, and, when both hosts are IP addresses, the same
/// address or a wildcard `listen` (a name may resolve to anything).
bool listens_where_dialed(const host_port& listen, const host_port& dialed);

/// True for localhost and the loopback addresses (127.0.0.0/8, ::1).
bool is_loopback(const host_port& address);

/// A --join address: a member's HTTP API, and whether it serves HTTPS.
struct join_url {
    host_port address;
    bool https = false;
};

/// Parses "http://host:port" or "https://host:port" (a trailing '/' allowed), the --join
/// address; nullopt otherwise.
std::optional<join_url> parse_join_url(std::string_view url);

/// Parses a node id: a decimal number, 1 to 2^64 - 1.
std::optional<node_id> parse_node_id(std::string_view text);

/// Parses "0x" and 16 hexadecimal digits, not all 0: how identity and peers files write
/// cluster ids and incarnations (raftkv::asio::detail::cluster_id_name()), and how
/// --force-new-cluster takes a cluster id.
std::optional<std::uint64_t> parse_hex_id(std::string_view text);

/// Parses "1=host:port,2=host:port,...". Returns the peers, or sets `error` (the message
/// names `where`, e.g. "--peers").
std::optional<std::map<node_id, host_port>> parse_peers(std::string_view text, std::string_view where,
                                                        std::string& error);

/// "1=127.0.0.1:9081,2=127.0.0.1:9082" (the form parse_peers reads).
std::string peers_to_string(const std::map<node_id, host_port>& peers);

} // namespace raftkv::server

#endif
