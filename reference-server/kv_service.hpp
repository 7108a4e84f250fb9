#ifndef RAFTKV_SERVER_KV_SERVICE_HPP
#define RAFTKV_SERVER_KV_SERVICE_HPP

// The replicated key-value store behind raftkv-server's HTTP API: a raftkv::asio::driver
// running a node over the TCP transport, with the LevelDB log store and state machine in
// the data directory. It knows nothing of HTTP.
//
// Besides serving puts, deletes and reads, it changes the cluster's membership, keeps the
// transport's peers in step with the configuration in force (each member's addresses are in
// its membership::info, member_info.hpp), and publishes this node's HTTP address in the
// replicated log once it follows a leader if the log does not hold it yet, and each time the
// node becomes leader (a kv_command_op::meta record named
// "node.<id>.http"), so every node can tell where to forward requests even to a member
// whose info has no HTTP address (the bootstrap members): http_address().
//
//     kv_service service{io.get_executor(), config};
//     service.start();
//     write_result r = co_await service.put("k", "v");  // r.ec == raftkv::errc::not_leader ...

#include "config.hpp"
#include "metrics.hpp"
#include "request_parsing.hpp"

#include <raftkv/kv_command.hpp>
#include <raftkv/membership.hpp>
#include <raftkv/types.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace raftkv::server {

class change_journal;

/// A consistent copy of a node's state machine (kv_service::backup()), read in chunks of
/// its snapshot stream (docs/leveldb.md, "Snapshot stream"): the bytes a restore reads.
/// Used by one thread at a time; its reads block on LevelDB.
class backup_source {
public:
    struct impl;
    explicit backup_source(std::unique_ptr<impl> i);
    ~backup_source();
    backup_source(const backup_source&) = delete;
    backup_source& operator=(const backup_source&) = delete;

    /// The applied index of the state it yields.
    index_t index() const noexcept;

    /// Replaces `out` with the next chunk, of about `max_bytes`; true when it was the last.
    /// Throws raftkv::storage_error if LevelDB fails to read.
    bool read(std::string& out, std::size_t max_bytes);

private:
    std::unique_ptr<impl> impl_;
};

/// What a stopped node's storage holds: what `raftkv-server --inspect` reports.
struct storage_report {
    hard_state hard;
    /// The log holds first_index to last_index (none when first_index > last_index); the
    /// last entry's term, or the term of the snapshot the log starts after.
    index_t first_index = 0, last_index = 0;
    term_t last_term = 0;
    std::size_t segments = 0;
    /// The configuration at the log's end.
    membership configuration;
    /// Whether DIR/state exists; the state machine's applied index and its last durable
    /// checkpoint (the index a restart is sure to find applied) when it does and could be
    /// read (state_readable).
    bool has_state = false;
    bool state_readable = false;
    index_t applied_index = 0, checkpoint_index = 0;
    /// What a start would cut off the log's end (see
    /// raftkv::wal::log_store::recovered_torn_tail()): one line, or empty.
    std::string torn_tail;
    /// Whether the state's LevelDB log held damaged records, which a start skips (see
    /// raftkv::leveldb::kv_state_machine::skipped_damaged_log()).
    bool state_log_damaged = false;
    /// What a start would refuse, one line each: the state applied past the log's end, or
    /// state that cannot be opened or read as a start reads it.
    std::vector<std::string> problems;
};

/// Reads the log and the state machine of `data_dir` as a start would, without changing
/// anything there (both are opened read-only, the log for the whole time the state is
/// read), and closes them. Throws std::runtime_error when the directory holds no log, and
/// raftkv::storage_error when the log cannot be opened, a running node's lock included; a
/// state that cannot be opened or read is a problem in the report.
storage_report inspect_storage(const std::filesystem::path& data_dir);

/// The configuration at the end of the Raft log in `data_dir` (of a stopped node), or none
/// when the directory holds no log. Throws as inspect_storage() when the log cannot be read.
std::optional<raftkv::membership> logged_configuration(const std::filesystem::path& data_dir);

/// How long a node whose storage failed waits before its first check of the storage, and
/// the longest it waits between two checks (see kv_service, "Storage failures").
inline constexpr std::chrono::seconds storage_probe_first_interval{2};
inline constexpr std::chrono::seconds storage_probe_max_interval{60};

/// The wait before the next check of a failed storage, after a check that found it still
/// unusable following a wait of `previous`: twice as long, at most
/// storage_probe_max_interval, at least storage_probe_first_interval.
std::chrono::seconds next_storage_probe_interval(std::chrono::seconds previous);

/// The free space each file system of the data directory needs before a node whose storage
/// failed opens it again: room for the next log segment, which the log reserves whole
/// (raftkv::wal::log_store_options::segment_bytes, 64 MiB), and 16 MiB for the state
/// machine's next files. 80 MiB.
inline constexpr std::uint64_t storage_recovery_free_bytes = std::uint64_t{80} << 20;

/// The state of this node's storage (see kv_service, "Storage failures").
struct storage_status {
    /// Empty while the node runs; otherwise why it stopped: the log store's or the state
    /// machine's error, or why its storage could not be opened again.
    std::string error;
    /// When the node stopped, if it did.
    std::chrono::system_clock::time_point since{};
    std::chrono::steady_clock::time_point since_steady{};
    /// While failed: whether the node still checks its storage and rebuilds itself once it
    /// works. False once re-opening the storage failed although it accepted writes: the
    /// data in it is the problem, and the server must be restarted once it is repaired.
    bool retrying = false;

    bool failed() const noexcept { return !error.empty(); }
};

/// The outcome of a put or a delete.
struct write_result {
    /// Empty once committed, durable on a majority and applied; otherwise a raftkv::errc:
    /// not_leader, overloaded or proposal_dropped (it did not happen), leadership_lost or
    /// timeout (outcome unknown), transfer_in_progress (only if a transfer outlasted the
    /// request timeout: writes wait for one to end), shutting_down, or node_failed (the
    /// storage failed: see kv_service::storage(); the outcome is unknown for a write in
    /// progress when it did, and the write did not happen for one made afterwards).
    std::error_code ec;
    /// For a delete: whether the key existed. For a put: true.
    bool found = false;
    /// Once applied: whether the precondition held (precondition_failed: nothing changed),
    /// or, for a write of a client session, stale_sequence (its sequence is older than those
    /// the session remembers: nothing changed, and whether it was applied before is unknown)
    /// or sequence_reused (its sequence was applied for another request: nothing changed).
    kv_status status = kv_status::ok;
    /// Once applied: the key's version after a put, before a delete, or, when the
    /// precondition failed, now (0 for an absent key). See raftkv::kv_result.
    index_t version = 0;
    /// For a write of a client session: it repeated a sequence already applied, and
    /// `found`, `status` and `version` are those of that first application.
    bool replayed = false;
};

/// How a read was served.
enum class read_path : std::uint8_t { read_index, lease, stale };

/// The outcome of a read.
struct read_result {
    /// Empty on success; otherwise not_leader, leadership_lost, timeout, shutting_down or
    /// node_failed.
    std::error_code ec;
    std::optional<std::string> value;
    /// The node's applied index before the state was read: the answer reflects at least
    /// every entry up to it. For a stale read, how far behind it may be.
    index_t applied_index = 0;
    read_path path = read_path::read_index;
    /// The key's version when it exists: the index of the entry that last wrote it.
    index_t version = 0;
};

/// The outcome of a linearizable scan: a page of keys in byte order.
struct scan_result {
    /// As read_result's.
    std::error_code ec;
    /// The keys and, unless the scan was keys-only, their values.
    std::vector<std::pair<std::string, std::string>> items;
    /// Whether more keys match after the last item.
    bool more = false;
    /// As read_result's.
    index_t applied_index = 0;
    read_path path = read_path::read_index;
    /// The version of each key of `items`, in the same order.
    std::vector<index_t> versions{};
    /// Held until the caller has made its answer from the page: pages are built one at a
    /// time server-wide (kv_service::scan()).
    std::shared_ptr<void> turn{};
};

/// The most bytes of keys and values one scan page holds, but for its first key (whose
/// value may be larger): JSON-escaped, a page stays well within what a forwarding node relays.
inline constexpr std::size_t max_scan_bytes = std::size_t{2} << 20;

/// A member's place in the configuration in force.
enum class member_role {
    voter,
    learner,
    /// A voter of the configuration being left, during a joint change.
    outgoing,
};

/// "voter", "learner" or "outgoing".
const char* to_string(member_role r);

struct member_status {
    node_id id = no_node;
    /// From the member's info in the configuration; for a member whose info has none, its
    /// --peers entry; empty when neither knows it.
    std::string raft;
    /// From the member's info in the configuration; else the address it published in the
    /// log; this node's own address for itself; nothing when none of those knows it.
    std::optional<std::string> http;
    member_role role = member_role::voter;
    /// The data directory (incarnation) this node recorded for the member when it greeted
    /// under its current addition (DATA_DIR/peers); nothing when none is, and for this node.
    std::optional<std::uint64_t> incarnation;
};

struct service_status {
    /// The Raft node's state as of its last input.
    node_status node;
    /// Every member of the configuration in force with its addresses, in id order.
    std::vector<member_status> members;
    /// The cluster this node belongs to (identity.hpp).
    std::uint64_t cluster_id = 0;
    /// Set when this node's log does not say it was removed, but a member's committed
    /// configuration, newer than the one in its log, does not include it: what that member
    /// said (a node removed while it was down, whose removal the members' logs no longer
    /// hold, hears of it from no leader). outside_configuration() reports it.
    std::optional<std::string> removal_heard;
    /// Whether this node has been a member as far as it knows: one that bootstrapped, or
    /// has seen a configuration in force that names it since it started. A node that joined
    /// and replays its log after a restart holds older configurations without it until it
    /// reaches the one that added it: not removed. Only an admitted node's log can say it
    /// was removed (outside_configuration()).
    bool admitted = true;
};

/// The outcome of a membership change.
struct change_result {
    /// Empty once the change was applied on this node; otherwise a raftkv::errc (see
    /// raftkv::asio::driver::async_change_membership).
    std::error_code ec;
    /// The config entry's index.
    index_t index = 0;
};

/// Resolves `address` (a name or a numeric address) to its first TCP endpoint.
/// Throws config_error when it does not resolve.
boost::asio::ip::tcp::endpoint resolve_endpoint(boost::asio::any_io_executor ex, const host_port& address);

/// Whether two resolutions of host names share an address, an IPv4-mapped IPv6 address
/// (::ffff:127.0.0.1) counting as the IPv4 one: whether the names name one host.
bool share_an_address(const boost::asio::ip::tcp::resolver::results_type& a,
                      const boost::asio::ip::tcp::resolver::results_type& b);

/** One member of the cluster.

    @par Storage failures
    When the log store or the state machine fails (a full disk, an I/O error, a LevelDB
    error), the node's durable state is in doubt and retrying a failed fsync in place is
    not safe, so the service closes the node, the log and the state machine, as if the
    process had lost them; the Raft port and the HTTP server stay up. Operations in
    progress and later ones fail with errc::node_failed, storage() says why, and the
    service checks the data directory (storage_recovery_free_bytes free, a small write
    that is synced) after storage_probe_first_interval, then at intervals that double
    after each check that fails, up to storage_probe_max_interval; once it works, it opens
    the log and the state machine again and starts a new node from them, exactly as a
    restarted process would. A storage that fails again within
    storage_probe_max_interval of recovering goes on from the interval it had reached,
    so that a disk that keeps failing is not reopened every few seconds; after a longer
    run the checks start at storage_probe_first_interval again. A storage contradicting the
    cluster (errc::storage_inconsistent) is no storage failure: it goes to on_fatal.

    @par Thread Safety
    Every member function may be called from any thread. The awaitables complete on the
    awaiting coroutine's executor.
*/
class kv_service {
public:
    /// Opens the log and the state machine under config.data_dir, resolves the peers and
    /// listens on config.raft. Nothing runs until start(). Throws config_error when an
    /// address does not resolve; std::runtime_error when LevelDB cannot open a database or
    /// the Raft address is taken; std::system_error with a raftkv::errc when the node
    /// refuses its storage (errc::storage_inconsistent: the log lost entries the state
    /// machine applied) or its options (errc::invalid_argument).
    kv_service(boost::asio::any_io_executor ex, const server_config& config);
    ~kv_service();

    kv_service(const kv_service&) = delete;
    kv_service& operator=(const kv_service&) = delete;

    /// Sets what to call, on the service's strand and with one line saying why, when this
    /// node must stop because it cannot be trusted: a peer knows it by another data
    /// directory, so its data was lost and it may have forgotten a vote; or its storage
    /// contradicts the cluster (errc::storage_inconsistent). The node serves
    /// nothing from such a peer; the handler should stop it and exit. Call before start().
    void on_fatal(std::function<void(std::string)> handler);

    /// Starts the Raft clock and the leader-address publisher.
    void start();

    /// When this node leads a cluster: asks the member that acknowledged the most of the
    /// log (among those heard from within an election timeout) to take over, and waits up
    /// to `limit` for this node to stop leading. Then calls `done` on the service's strand
    /// with a line saying what happened, or with "" when there was nothing to hand over
    /// (not leading, or no other member). Stops the leader watcher: call stop() next.
    void hand_off_leadership(std::chrono::milliseconds limit, std::function<void(std::string)> done);

    /// Completes every pending operation with errc::shutting_down, and every later one;
    /// stops the transport. The executor's threads may then be stopped and the object
    /// destroyed, which closes the databases.
    void stop();

    boost::asio::awaitable<write_result> put(std::string key, std::string value);
    boost::asio::awaitable<write_result> del(std::string key);
    /// Records `address` as where member `id` serves HTTP, as if the member had published it
    /// itself (PATCH /cluster/members/{id}): what the members forward to and show until it
    /// publishes another (a running member publishes its --advertise-http again within a
    /// second when it differs). Errors as put().
    boost::asio::awaitable<write_result> set_http_address(node_id id, std::string address);
    /// A put or a delete applied only if `pre` holds when its entry is applied
    /// (write_result::status); with `session`, at most once per sequence of that client
    /// session (write_result::replayed; rules in <raftkv/kv_sessions.hpp>).
    boost::asio::awaitable<write_result> put(std::string key, std::string value, kv_precondition pre,
                                             std::optional<kv_client_session> session = std::nullopt);
    boost::asio::awaitable<write_result> del(std::string key, kv_precondition pre,
                                             std::optional<kv_client_session> session = std::nullopt);
    boost::asio::awaitable<read_result> get(std::string key);
    /// A read of `key` served as `consistency` says: linearizable as get(key); lease from
    /// the leader's state machine while its lease holds (else as get(key)); stale from this
    /// node's state machine at once, on any node, with no Raft round.
    boost::asio::awaitable<read_result> get(std::string key, read_consistency consistency);

    /// Lists up to `limit` keys that start with `prefix` and sort after `after`, in byte
    /// order, with their values unless `keys_only`, and at most about max_scan_bytes: a
    /// linearizable read exactly as get() is (or as get(key, consistency) serves
    /// `consistency`), then one pass over the state machine.
    boost::asio::awaitable<scan_result> scan(std::string prefix, std::string after, std::size_t limit,
                                             bool keys_only,
                                             read_consistency consistency = read_consistency::linearizable);

    /// A point-in-time copy of this node's state machine, taken after a linearizable read
    /// (as get() makes), so it holds every write acknowledged before the call: what
    /// GET /backup streams. Errors as for get(). The source keeps the node it reads from
    /// open, and LevelDB keeps what it reads, until it is destroyed.
    boost::asio::awaitable<std::pair<std::error_code, std::unique_ptr<backup_source>>> backup();

    /// Starts a linearizable-read barrier (a ReadIndex round, as get() makes; a follower
    /// asks its leader) and calls `done` once, on the service's strand or at once, with an
    /// empty error when it was confirmed, else with the error get() would fail with.
    void read_barrier(std::function<void(std::error_code)> done);

    /// Proposes `changes` (on the leader only: errc::not_leader elsewhere) and waits until
    /// this node applied them. A change refused because a leadership transfer is under
    /// way is retried until the transfer ends, within the request timeout.
    boost::asio::awaitable<change_result> change_membership(std::vector<config_change> changes);

    /// The match index of each member as the leader knows it; empty unless this node leads.
    boost::asio::awaitable<std::map<node_id, index_t>> match_indexes();

    /// The members that answer this leader (heard within the last one to two election
    /// timeouts, with something acknowledged), this node included; empty unless it leads.
    boost::asio::awaitable<std::set<node_id>> answering_members();

    /// Hands leadership to the voter `target` and waits until this node sees it lead, up
    /// to `timeout`: empty then, errc::timeout after; errc::not_leader when this node does
    /// not lead; errc::invalid_argument when `target` is not a voter. Nothing to do when
    /// `target` is this node and it leads.
    boost::asio::awaitable<std::error_code> transfer_leadership(node_id target,
                                                                std::chrono::milliseconds timeout);

    /// The longest election timeout: 2 * election_ticks ticks.
    std::chrono::milliseconds election_timeout() const;

    node_id id() const;

    /// The leader this node knows of, or no_node.
    node_id leader() const;

    /// Whether this node knows it was removed from the cluster (outside_configuration() of
    /// status(), as of the last tick): it serves nothing then, stale reads and watches
    /// included, since it never catches up again.
    bool removed() const;

    /// Where `id` serves HTTP: this node's own address for its own id; else
    /// replicated_http_address(id).
    std::optional<std::string> http_address(node_id id) const;

    /// Where the log says `id` serves HTTP, its own id included: the address the member
    /// published itself (or set_http_address() recorded) under its current membership;
    /// else the one in its member info (given when it was added); else nothing.
    std::optional<std::string> replicated_http_address(node_id id) const;

    service_status status() const;

    /// The data directory (incarnation) member `id` had when it was last removed, if this
    /// node recorded one since it started; 0 otherwise. Thread-safe.
    std::uint64_t retired_incarnation(node_id id) const;

    /// What GET /metrics reports of the node, its log and its state machine (every field
    /// of metrics_inputs but the connections and the process), read on the node's strand.
    boost::asio::awaitable<metrics_inputs> metrics();

    /// Whether the node's storage failed, and why (see Storage failures above).
    storage_status storage() const;

    /// The bytes the key-value state's tables (DATA_DIR/state) take on disk, as measured last
    /// (each second from start()).
    std::uint64_t state_bytes() const;
    /// server_config::quota_bytes: 0 for none.
    std::uint64_t quota_bytes() const;
    /// Whether state_bytes() is past server_config::quota_bytes: writes other than deletes are
    /// to be refused. Meanwhile the node compacts its state now and then.
    bool over_quota() const;
    /// Counts a write refused for the quota (raftkv_quota_refusals_total).
    void count_quota_refusal();

    /// Reads the peer TLS files again (raftkv::asio::tcp_transport::reload_tls()): the Raft
    /// connections made from now on use them. Throws std::runtime_error, the files in use
    /// staying in use, when they do not load. REQUIRES: peer TLS is on. Any thread.
    void reload_peer_tls();

    /// The changes this node applied, for watches (watch.hpp). Closed by stop().
    change_journal& changes();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace raftkv::server

#endif
