#ifndef RAFTKV_TEST_E2E_HARNESS_HPP
#define RAFTKV_TEST_E2E_HARNESS_HPP

// The end-to-end test harness: runs real raftkv-server processes and talks to them over
// HTTP and raw TCP.
//
// Every wait here is bounded by a timeout, and every process a harness object starts is
// killed (SIGKILL) and reaped by that object's destructor, even when a test fails or throws.
// A started server also gets PR_SET_PDEATHSIG(SIGKILL), so it dies with the test process
// should the test process itself be killed. The death signal follows the *thread* that
// spawned the server: start servers from the test's main thread only.
//
// The HTTP client (Beast) and the JSON parser (Boost.JSON) are compiled once, in
// harness.cpp; this header includes only the standard library.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace raftkv::e2e {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

/// The raftkv-server executable under test (from RAFTKV_SERVER_BINARY).
std::filesystem::path server_binary();

// ---------------------------------------------------------------------------------------
// HTTP

/// One HTTP response. `status` 0 means no response arrived: the connection failed, was
/// closed, or the timeout passed; `body` then says why.
struct http_response {
    int status = 0;
    std::string body;
    std::map<std::string, std::string> headers; ///< names lower-cased
};

/// "status 404, body {...}" (body cut at 300 bytes), for assertion messages.
std::string describe(const http_response& r);

/// Header fields to add to a request, as sent; an Authorization field with an empty value
/// sends no Authorization at all (not even set_bearer_token()'s).
using header_list = std::vector<std::pair<std::string, std::string>>;

/// One request over a fresh connection, closed afterwards. Any method string is sent as is.
http_response request(std::uint16_t port, std::string_view method, std::string_view target,
                      std::string_view body = {}, milliseconds timeout = 5s);
/// The same, with `headers` added.
http_response request(std::uint16_t port, std::string_view method, std::string_view target,
                      std::string_view body, const header_list& headers, milliseconds timeout = 5s);

/// From now on the harness's HTTP clients reach `port` at `ipv4` instead of 127.0.0.1 (a
/// server in another network namespace); an empty `ipv4` restores 127.0.0.1. Thread-safe.
void route_port(std::uint16_t port, std::string ipv4);

/// From now on every request of this harness (those the cluster helpers make included)
/// carries "Authorization: Bearer <token>", unless its header_list has an Authorization field
/// of its own; empty: none. For servers started with --auth-tokens. Set it from the test's
/// main thread while no other thread sends requests.
void set_bearer_token(std::string token);

/// An HTTP/1.1 client that keeps its connection alive between requests. A request that
/// finds its kept-alive connection closed by the server before any byte of the response
/// arrived is retried once on a new connection. Not thread-safe: one client per thread.
class http_client {
public:
    explicit http_client(std::uint16_t port);
    ~http_client();
    http_client(http_client&&) noexcept;
    http_client& operator=(http_client&&) noexcept;

    http_response request(std::string_view method, std::string_view target, std::string_view body = {},
                          milliseconds timeout = 5s);
    http_response request(std::string_view method, std::string_view target, std::string_view body,
                          const header_list& headers, milliseconds timeout = 5s);

    /// How many TCP connections this client has opened.
    int connections_opened() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// Percent-encodes every byte except the RFC 3986 unreserved characters.
std::string url_encode(std::string_view s);

/// "/kv/" followed by the percent-encoded key.
std::string kv_target(std::string_view key);

/// `s` as a JSON string literal, quotes included.
std::string json_quote(std::string_view s);

/// {"value": <value as a JSON string>}
std::string value_body(std::string_view value);

/// PUT/GET/DELETE /kv/{key} over a fresh connection; the key is percent-encoded.
inline http_response put(std::uint16_t port, std::string_view key, std::string_view value,
                         milliseconds timeout = 5s)
{
    return request(port, "PUT", kv_target(key), value_body(value), timeout);
}
inline http_response get(std::uint16_t port, std::string_view key, milliseconds timeout = 5s)
{
    return request(port, "GET", kv_target(key), {}, timeout);
}
inline http_response del(std::uint16_t port, std::string_view key, milliseconds timeout = 5s)
{
    return request(port, "DELETE", kv_target(key), {}, timeout);
}

/// A response body parsed as JSON, for checking its shape.
struct json_body {
    bool valid = false;                      ///< the body is valid JSON
    bool is_object = false;                  ///< ... and an object
    std::map<std::string, std::string> kind; ///< member name -> "string", "number", "null", ...
    std::map<std::string, std::string> text; ///< member name -> value: a string's contents, else JSON text

    /// The member's value if it is a string.
    std::optional<std::string> string(const std::string& name) const;
    bool has(const std::string& name) const { return kind.count(name) != 0; }
};
json_body parse_json(std::string_view body);

/// True if `r` carries `status` and a JSON object body with a string member "error".
bool is_error(const http_response& r, int status);

// ---------------------------------------------------------------------------------------
// Raw TCP

struct raw_result {
    std::string received; ///< every byte the peer sent back
    bool closed = false;  ///< the peer closed or reset the connection within the wait
    bool connected = false;
};

/// The HTTP responses in `bytes` (what a connection received), in order; an incomplete or
/// unparsable tail is left out.
std::vector<http_response> parse_responses(std::string_view bytes);

/// Connects to 127.0.0.1:port, sends `bytes`, half-closes the connection if `half_close`,
/// then reads until the peer closes it or `wait` passes. Never raises SIGPIPE.
raw_result send_raw(std::uint16_t port, std::string_view bytes, milliseconds wait = 2s,
                    bool half_close = false);

/// A connected TCP socket to 127.0.0.1:port that stays open until destroyed (-1 if the
/// connection failed).
class raw_connection {
public:
    explicit raw_connection(std::uint16_t port);
    ~raw_connection();
    raw_connection(raw_connection&& other) noexcept;
    raw_connection& operator=(raw_connection&&) = delete;
    bool connected() const noexcept { return fd_ >= 0; }
    /// Sends bytes; false if the connection is gone.
    bool send(std::string_view bytes);

private:
    int fd_ = -1;
};

// ---------------------------------------------------------------------------------------
// Ports, directories, waiting

/// `n` distinct free TCP ports on 127.0.0.1, none returned before to any program running
/// the harness on this machine while the program that got it still runs: taken from below
/// the kernel's ephemeral range (so no outgoing connection can take one before the server
/// binds it) and reserved with a lock that other test programs see.
std::vector<std::uint16_t> free_ports(std::size_t n);

/// The same, looking at `scan_from` first (when it is in the block the ports come from) and
/// then upwards; free_ports(n) starts anywhere, so that programs running at once rarely
/// contend for the same ports.
std::vector<std::uint16_t> free_ports(std::size_t n, std::uint16_t scan_from);

/// True if nothing listens on, or holds, 127.0.0.1:port right now.
bool port_is_free(std::uint16_t port);

/// A fresh directory under the system temp directory, removed with its contents at the end.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::filesystem::path& path() const noexcept { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

/// Polls `pred` every `poll` until it returns true or `timeout` passes; returns the last result.
bool wait_until(const std::function<bool()>& pred, milliseconds timeout, milliseconds poll = 50ms);

/// Last `max_bytes` of a file's contents ("" if it cannot be read).
std::string read_tail(const std::filesystem::path& file, std::size_t max_bytes = 16 * 1024);

/// True while the current Boost.Test test case has no failure and no exception is unwinding.
bool current_test_passing();

// ---------------------------------------------------------------------------------------
// Processes

struct exit_status {
    bool exited = false; ///< exited normally; `code` is valid
    int code = -1;
    int signal = 0; ///< the signal that ended it, if !exited
};
std::ostream& operator<<(std::ostream& os, const exit_status& s);

/// A child process running `server_binary()` (or `program`) with `args`. Its stdout and
/// stderr are appended to the given files; it inherits no other file descriptor of the test
/// process (no socket of another thread). Killed with SIGKILL and reaped on destruction.
class process {
public:
    struct options {
        std::filesystem::path program; ///< default: server_binary()
        std::filesystem::path stdout_file;
        std::filesystem::path stderr_file; ///< default: stdout_file
        std::filesystem::path cwd;         ///< default: inherited
    };
    /// `env`: NAME=VALUE entries added to the inherited environment (each replacing a
    /// variable of the same name).
    process(std::vector<std::string> args, options opts, std::vector<std::string> env = {});
    ~process();
    process(const process&) = delete;
    process& operator=(const process&) = delete;

    pid_t pid() const noexcept { return pid_; }
    /// True until the process has been reaped (reaps it if it has exited).
    bool running();
    /// How it ended, once reaped.
    std::optional<exit_status> status() const { return status_; }
    /// Sends a signal (no-op once reaped).
    void signal(int sig);
    /// SIGKILL, then reaps.
    void kill9();
    /// Waits up to `timeout` for the process to end; its status if it did.
    std::optional<exit_status> wait(milliseconds timeout);
    /// True once it has ended without signal() or kill9() having been called: it exited (or
    /// crashed) by itself.
    bool ended_by_itself() { return !running() && !signalled_; }

private:
    pid_t pid_ = -1;
    std::optional<exit_status> status_;
    bool signalled_ = false;
};

/// Runs the server binary with `args` to completion (SIGKILL after `timeout`).
struct run_result {
    std::optional<exit_status> status; ///< nullopt: timed out and was killed
    std::string out, err;
};
run_result run_server(const std::vector<std::string>& args, milliseconds timeout = 10s,
                      const std::filesystem::path& cwd = {});

// ---------------------------------------------------------------------------------------
// /status

struct member_status {
    std::uint64_t id = 0;
    std::string raft;
    std::optional<std::string> http; ///< null while the node does not know it
};
struct node_status {
    std::uint64_t id = 0;
    std::string cluster_id; ///< 16 hex digits
    std::string role;
    std::uint64_t term = 0;
    std::optional<std::uint64_t> leader;
    std::uint64_t commit_index = 0, applied_index = 0, last_index = 0;
    std::uint64_t first_index = 0, snapshot_index = 0, snapshot_term = 0;
    std::vector<member_status> members;
};

/// Parses a /status body strictly against the spec: every field present with its type.
/// nullopt if it does not match, with the reason in *why.
std::optional<node_status> parse_status(std::string_view body, std::string* why = nullptr);

/// GET /status; nullopt if no 200 or the body does not parse.
std::optional<node_status> get_status(std::uint16_t port, milliseconds timeout = 2s);

// ---------------------------------------------------------------------------------------
// Load

/// What put_many() or get_many() got done.
struct load_result {
    std::size_t ok = 0;        ///< PUTs answered 200; GETs that read back load_value(key)
    std::size_t failed = 0;    ///< the others (a PUT's retries ran out)
    std::string first_failure; ///< the request and describe() of the first failed answer
    double seconds = 0;        ///< wall-clock time of the whole load

    double per_second() const { return seconds > 0 ? static_cast<double>(ok) / seconds : 0; }
};

/// The value put_many() writes for `key`.
std::string load_value(std::string_view key);

/// PUTs `count` writes from `clients` threads with one keep-alive connection each: write i
/// sets the key prefix + to_string(i % distinct_keys) (every key distinct when
/// distinct_keys is 0) to load_value(key). A 503 or a lost connection is retried (a PUT is
/// idempotent) for up to 20 s per write.
load_result put_many(std::uint16_t port, std::string_view prefix, std::size_t count, std::size_t clients = 8,
                     std::size_t distinct_keys = 0);

/// GETs prefix + "0" ... prefix + to_string(count - 1) from `clients` threads and counts
/// those that read back load_value(key) with a 200.
load_result get_many(std::uint16_t port, std::string_view prefix, std::size_t count, std::size_t clients = 8);

// ---------------------------------------------------------------------------------------
// /proc

/// The resident set size of process `pid` in KiB (VmRSS in /proc/<pid>/status), or 0.
std::uint64_t rss_kib(pid_t pid);

/// The total size in bytes of the regular files under `dir` (0 if it does not exist).
std::uint64_t directory_bytes(const std::filesystem::path& dir);

// ---------------------------------------------------------------------------------------
// Servers and clusters

/// One node's addresses and directories. Ids start at 1.
struct node_spec {
    std::uint64_t id = 0;
    std::uint16_t http_port = 0, raft_port = 0;
    /// The port the other nodes dial to reach this node's Raft port, when something (a
    /// fault-injecting proxy) stands between them; 0: raft_port itself. It is the address
    /// listed in --peers and in member_body(), while --raft stays at raft_port.
    std::uint16_t dial_port = 0;
    std::filesystem::path data_dir, log_file;
    /// For a node added after the bootstrap (cluster::add_node()): the member it joins
    /// through (--join); 0 for a bootstrap member (--peers).
    std::uint64_t join_via = 0;
    /// NAME=VALUE entries added to the node's environment when it starts (process's `env`).
    std::vector<std::string> env;
    /// The address the node listens on and is known by; "127.0.0.1" unless it runs in a
    /// network namespace of its own (see route_port()).
    std::string host = "127.0.0.1";
    /// A command the node is started under, the server's command line appended (e.g.
    /// {"/usr/sbin/ip", "netns", "exec", NAME}); empty: the server itself.
    std::vector<std::string> launcher;

    std::string http_address() const;
    std::string raft_address() const;
    /// Where peers dial this node: raft_address(), or 127.0.0.1:dial_port when set.
    std::string dial_address() const;
};

/// N raftkv-server processes on loopback, each with its own data directory and log file in
/// one temp directory. All ports are allocated at once. Destruction kills every node and,
/// if the current test failed, prints each node's log tail to stderr.
class cluster {
public:
    /// Allocates ports and directories for `n` nodes and, if `start`, starts them all. Every
    /// node gets `extra_args` after its own (e.g. {"--snapshot-entries", "200"}).
    explicit cluster(std::size_t n, bool start = true, std::vector<std::string> extra_args = {});
    ~cluster();
    cluster(const cluster&) = delete;
    cluster& operator=(const cluster&) = delete;

    std::size_t size() const noexcept { return specs_.size(); }
    const node_spec& spec(std::uint64_t id) const { return specs_.at(id - 1); }
    std::uint16_t http_port(std::uint64_t id) const { return spec(id).http_port; }
    std::uint16_t raft_port(std::uint64_t id) const { return spec(id).raft_port; }
    const temp_dir& dir() const noexcept { return dir_; }

    /// The command-line arguments of node `id` (program name excluded): --peers for a
    /// bootstrap member, --join for a node added later.
    std::vector<std::string> args(std::uint64_t id) const;
    /// The --peers value: every bootstrap member's dial address (node_spec::dial_address()).
    std::string peers_flag() const;
    /// Allocates ports and a directory for one more node, the next id, which joins the
    /// running cluster through node `via` (--join) when started. It must be added to the
    /// cluster (POST /cluster/members) before it starts. Returns its id.
    std::uint64_t add_node(std::uint64_t via);
    /// Makes node `id` (stopped) join through node `via` when it next starts, as a node
    /// removed from the cluster and added back with an empty data directory does.
    void set_join_via(std::uint64_t id, std::uint64_t via) { specs_.at(id - 1).join_via = via; }
    /// Makes the other nodes reach node `id` at 127.0.0.1:port (node_spec::dial_port). Set it
    /// for every bootstrap member before any starts: --peers, hence the cluster id, lists it.
    void set_dial_port(std::uint64_t id, std::uint16_t port) { specs_.at(id - 1).dial_port = port; }
    /// Adds NAME=VALUE entries to node `id`'s environment from its next start on.
    void set_env(std::uint64_t id, std::vector<std::string> env) { specs_.at(id - 1).env = std::move(env); }
    /// Makes node `id` listen on `host` and start under `launcher` (node_spec) from its
    /// next start on, and routes the harness's requests to its HTTP port there. Set it for
    /// every bootstrap member before any starts: --peers lists the address.
    void set_host(std::uint64_t id, std::string host, std::vector<std::string> launcher);
    /// The body of a POST /cluster/members that adds node `id` at its addresses.
    std::string member_body(std::uint64_t id, bool learner) const;

    void start(std::uint64_t id);
    /// Starts node `id` with `args` instead of args(id), keeping its log file.
    void start(std::uint64_t id, std::vector<std::string> args);
    void start_all();
    bool running(std::uint64_t id);
    /// The process id of node `id` while it runs, else -1.
    pid_t pid(std::uint64_t id);
    /// How node `id` ended, once it has exited and been reaped (see running()).
    std::optional<exit_status> exit_of(std::uint64_t id);
    void kill9(std::uint64_t id);
    /// Sends `sig` (SIGSTOP, SIGCONT, ...) to a running node without waiting.
    void signal(std::uint64_t id, int sig);
    /// SIGTERM (or `sig`) and wait up to `timeout`; how the node exited, if it did.
    std::optional<exit_status> terminate(std::uint64_t id, int sig = 15, milliseconds timeout = 10s);
    /// Starts a node again with the same arguments and data directory (killing it first if running).
    void restart(std::uint64_t id);
    std::vector<std::uint64_t> running_ids();

    /// Waits until some running node says it is the leader and every running node names it
    /// as leader; that leader's id, or nullopt after `timeout`.
    std::optional<std::uint64_t> wait_for_leader(milliseconds timeout = 10s);
    /// wait_for_leader(), and then until every running node serves a request (a GET of an
    /// absent key answers 404, not 503); the leader's id, or nullopt after `timeout`.
    std::optional<std::uint64_t> wait_ready(milliseconds timeout = 10s);
    /// Waits until node `id` answers /health with 200.
    bool wait_healthy(std::uint64_t id, milliseconds timeout = 10s);

    /// Every node's log tail, for a failure message.
    void dump_logs(std::ostream& os);

private:
    /// Says on stderr, once per start, which nodes ended by themselves (a node that could not
    /// start: its port taken, a bad flag), since the waits above look at running nodes only.
    void report_unexpected_exits(const char* during);

    temp_dir dir_;
    std::vector<std::string> extra_args_;
    std::vector<node_spec> specs_;
    std::vector<std::unique_ptr<process>> procs_;
    std::vector<bool> exit_reported_; ///< per node, reset when it is started
};

} // namespace raftkv::e2e

#endif
