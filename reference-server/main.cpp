// raftkv-server: one node of a raftkv cluster, serving the HTTP/JSON API.
//
// Exit codes: 0 after a clean shutdown (SIGINT, SIGTERM) and for --help and --version, 2
// for a bad flag or config value or flags that contradict the data directory's identity
// (another id, cluster token or member list), 1 when the node cannot start (a port in use,
// a data directory that is locked, corrupt or inconsistent), finds its storage
// inconsistent with the cluster while running, or learns from a peer that its data
// directory was lost (docs/server.md, "A lost data directory"). A storage failure while
// running (a full disk, an I/O error) does not stop the process: the node goes out of
// service until its storage works again (docs/server.md, "Storage failures").

#include "api.hpp"
#include "backup.hpp"
#include "config.hpp"
#include "http_server.hpp"
#include "identity.hpp"
#include "kv_service.hpp"
#include "log.hpp"
#include "member_info.hpp"
#include "peer_incarnations.hpp"
#include "tls.hpp"
#include "version.hpp"

#include <raftkv/asio/detail/greeting.hpp>
#include <raftkv/error.hpp>
#include <raftkv/recovery.hpp>
#include <raftkv/wal/log_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/system_error.hpp>

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace raftkv::server;

// How long in-flight requests get to be answered (503 once the driver stops) at shutdown.
constexpr std::chrono::milliseconds shutdown_grace{200};

// The longest a leader waits at shutdown for another member to take over.
constexpr std::chrono::milliseconds handoff_limit_max{2000};

// Two election timeouts, at most handoff_limit_max: the node abandons a transfer after one.
std::chrono::milliseconds handoff_limit(const server_config& config)
{
    const std::chrono::milliseconds election{std::uint64_t{config.tick_ms} * config.election_ticks};
    return std::min(2 * election, handoff_limit_max);
}

// Set once run() has configured the log (before any other thread starts): from then on,
// errors go to the log in its format (--log-format), not as bare lines.
bool log_configured = false;

void print_error(const std::string& message)
{
    if (log_configured)
        return log(log_level::error, message);
    const std::string line = "raftkv-server: " + message + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
}

// The text of a std::system_error without the ": <code's message>" it appends, which only
// repeats what raftkv's own text says ("... truncated, or lost?: storage inconsistent ...").
std::string reason(const std::system_error& e)
{
    std::string what = e.what();
    const std::string suffix = ": " + e.code().message();
    if (what.size() > suffix.size() && what.ends_with(suffix))
        what.resize(what.size() - suffix.size());
    return what;
}

[[noreturn]] void die(const std::string& why)
{
    print_error("fatal: " + why + "; stopping");
    std::_Exit(1);
}

// The service turns the Raft node's failures into a degraded state (storage) or on_fatal
// (errc::storage_inconsistent). Anything else escaping a handler is unexpected, and the
// process stops at once rather than serve from a state it cannot vouch for.
void run_threads(asio::io_context& io)
{
    try {
        io.run();
    } catch (const std::system_error& e) {
        die(reason(e));
    } catch (const std::exception& e) {
        die(e.what());
    } catch (...) {
        die("an unknown exception");
    }
}

// A refusal of the Raft node to start: its options (a configuration problem, exit code 2)
// or its storage (exit code 1).
int report_refusal(const std::system_error& e)
{
    print_error("cannot start: " + reason(e));
    return e.code() == raftkv::errc::invalid_argument ? 2 : 1;
}

// Descriptors the process needs besides its HTTP connections: LevelDB keeps up to 1000
// table files open, and the Raft log, Raft connections and listeners take a few more.
constexpr rlim_t descriptors_besides_http = 1100;

// Raises the soft limit on open files to the hard limit, so that max_connections clients
// fit, and says so in the log when they still do not.
void raise_descriptor_limit(const server_config& config)
{
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
        return;
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0)
            limit = raised;
    }
    const rlim_t needed = config.max_connections + descriptors_besides_http;
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed)
        log(log_level::warn, "the open-file limit (" + std::to_string(limit.rlim_cur) + ") is below what " +
                                 std::to_string(config.max_connections) +
                                 " HTTP connections (--max-connections) and storage need (about " +
                                 std::to_string(needed) +
                                 "); connections beyond it wait until others close (raise ulimit -n)");
}

// The TLS contexts of the HTTP API, both null for plain HTTP: the server's, and the client's
// that forwards to the leader (presenting this node's certificate, for a leader that asks
// for one).
struct http_tls {
    std::shared_ptr<tls_context> server;
    std::shared_ptr<tls_context> forward;
};

http_tls load_tls(const server_config& config)
{
    if (config.tls_cert.empty())
        return {};
    try {
        const std::string& forward_ca = config.forward_ca.empty() ? config.client_ca : config.forward_ca;
        return {make_server_tls(config.tls_cert, config.tls_key, config.client_ca),
                make_client_tls(forward_ca, config.tls_cert, config.tls_key)};
    } catch (const tls_error& e) {
        throw config_error(e.what());
    }
}

// The text of the certificate files that each group of TLS settings loaded last: HTTPS
// (--cert, and the CAs it verifies with, --client-ca and --forward-ca) and peer TLS
// (--peer-cert, --peer-ca). The validity warnings read these rather than the files, which a
// reload that failed leaves different from what is in use.
class tls_in_use {
public:
    explicit tls_in_use(const server_config& config)
    {
        https_loaded(config);
        peer_loaded(config);
    }

    void https_loaded(const server_config& c)
    {
        https_ = read_texts({&c.tls_cert, &c.client_ca, &c.forward_ca});
    }
    void peer_loaded(const server_config& c) { peer_ = read_texts({&c.peer_cert, &c.peer_ca}); }

    // Warns of each certificate in use that expired, is not valid yet, or expires within a
    // week: what verifies it refuses it, and nothing else would say why until then.
    void warn_of_validity(const server_config& c) const
    {
        std::set<std::pair<std::string, std::string>> checked; // a file, and its text in use
        const auto check = [&](const std::map<std::string, std::string>& texts, const std::string& file,
                               bool ca) {
            const auto text = texts.find(file);
            if (text == texts.end() || !checked.emplace(file, text->second).second)
                return;
            if (ca) {
                for (const std::string& problem : ca_validity_problems(file, text->second))
                    log(log_level::warn, problem);
            } else if (const std::optional<std::string> problem =
                           certificate_validity_problem(file, text->second)) {
                log(log_level::warn, *problem);
            }
        };
        check(https_, c.tls_cert, false);
        check(peer_, c.peer_cert, false);
        check(https_, c.client_ca, true);
        check(https_, c.forward_ca, true);
        check(peer_, c.peer_ca, true);
    }

private:
    static std::map<std::string, std::string> read_texts(std::initializer_list<const std::string*> files)
    {
        std::map<std::string, std::string> out;
        for (const std::string* file : files) {
            if (file->empty())
                continue;
            std::ifstream in(*file, std::ios::binary);
            std::ostringstream text;
            text << in.rdbuf();
            out[*file] = std::move(text).str();
        }
        return out;
    }

    std::map<std::string, std::string> https_, peer_;
};

// Reads the TLS files again, on SIGHUP and when one of them changes (polled every
// tls_poll_interval: a renewed certificate takes effect without a restart). What loads
// serves the connections made from then on; what does not is logged, and the files in use
// stay in use.
class tls_reloader {
public:
    tls_reloader(asio::io_context& io, const server_config& config, tls_in_use& in_use, http_server& server,
                 api& routes, kv_service& service)
        : config_(config), in_use_(in_use), server_(server), routes_(routes), service_(service),
          strand_(asio::make_strand(io)), hangup_(strand_, SIGHUP), poll_(strand_), seen_(fingerprint())
    {
    }

    void start()
    {
        wait_for_hangup();
        if (!files().empty())
            poll();
    }

    void stop()
    {
        hangup_.cancel();
        poll_.cancel();
    }

private:
    static constexpr std::chrono::seconds tls_poll_interval{10};

    std::vector<std::string> files() const
    {
        std::vector<std::string> out;
        for (const std::string* f :
             {&config_.tls_cert, &config_.tls_key, &config_.client_ca, &config_.forward_ca,
              &config_.peer_cert, &config_.peer_key, &config_.peer_ca})
            if (!f->empty())
                out.push_back(*f);
        return out;
    }

    // Each file's size and modification time: what a renewal changes.
    std::string fingerprint() const
    {
        std::string out;
        for (const std::string& f : files()) {
            std::error_code size_ec, time_ec;
            const auto size = std::filesystem::file_size(f, size_ec);
            const auto time = std::filesystem::last_write_time(f, time_ec);
            out += size_ec || time_ec
                       ? std::string("-")
                       : std::to_string(size) + "@" + std::to_string(time.time_since_epoch().count());
            out += ';';
        }
        return out;
    }

    void wait_for_hangup()
    {
        hangup_.async_wait([this](boost::system::error_code ec, int) {
            if (ec)
                return;
            reload("SIGHUP");
            wait_for_hangup();
        });
    }

    void poll()
    {
        poll_.expires_after(tls_poll_interval);
        poll_.async_wait([this](boost::system::error_code ec) {
            if (ec)
                return;
            if (fingerprint() != seen_)
                reload("the TLS files changed");
            else if (std::chrono::steady_clock::now() - validity_checked_ >= std::chrono::hours(24)) {
                validity_checked_ = std::chrono::steady_clock::now();
                in_use_.warn_of_validity(config_);
            }
            poll();
        });
    }

    void reload(const std::string& why)
    {
        seen_ = fingerprint();
        std::vector<std::string> reloaded;
        if (!config_.tls_cert.empty()) {
            try {
                const http_tls tls = load_tls(config_);
                server_.set_tls(tls.server);
                routes_.set_forward_tls(tls.forward);
                in_use_.https_loaded(config_);
                reloaded.push_back("HTTPS (" + config_.tls_cert + ")");
            } catch (const std::exception& e) {
                log(log_level::error,
                    why + ": cannot reload the HTTPS certificates, which stay in use: " + e.what());
            }
        }
        if (config_.peer_tls()) {
            try {
                service_.reload_peer_tls();
                in_use_.peer_loaded(config_);
                reloaded.push_back("peer TLS (" + config_.peer_cert + ")");
            } catch (const std::exception& e) {
                log(log_level::error,
                    why + ": cannot reload the peer TLS certificates, which stay in use: " + e.what());
            }
        }
        if (files().empty())
            log(log_level::info, why + ": no TLS files to reload");
        for (const std::string& what : reloaded)
            log(log_level::info, why + ": reloaded " + what + "; connections made from now on use it");
        validity_checked_ = std::chrono::steady_clock::now();
        in_use_.warn_of_validity(config_);
    }

    const server_config& config_;
    tls_in_use& in_use_;
    http_server& server_;
    api& routes_;
    kv_service& service_;
    // The signal's and the poll's handlers run one at a time (several threads run `io`).
    asio::strand<asio::io_context::executor_type> strand_;
    asio::signal_set hangup_;
    asio::steady_timer poll_;
    std::string seen_; // on strand_
    // When the certificates' validity was last checked (at start-up, each reload, daily).
    std::chrono::steady_clock::time_point validity_checked_ = std::chrono::steady_clock::now();
};

http_server_options http_options(const server_config& config, const http_tls& tls)
{
    http_server_options o;
    o.max_connections = config.max_connections;
    o.max_pending_body_bytes = static_cast<std::size_t>(config.max_pending_body_bytes);
    o.header_timeout = std::chrono::milliseconds(config.http_header_timeout_ms);
    o.body_timeout = std::chrono::milliseconds(config.http_body_timeout_ms);
    o.idle_timeout = std::chrono::milliseconds(config.http_idle_timeout_ms);
    o.handshake_timeout = std::chrono::milliseconds(config.http_handshake_timeout_ms);
    o.tls = tls.server;
    o.strand_per_connection = config.threads > 1;
    return o;
}

void warn_if_exposed(const server_config& config, const asio::ip::tcp::endpoint& endpoint)
{
    if (config.tls_cert.empty() && !endpoint.address().is_loopback())
        log(log_level::warn, "the HTTP API listens on " + config.http.to_string() +
                                 ", beyond loopback, without TLS: whoever reaches it reads and writes "
                                 "every key in the clear (--cert, --key; docs/security.md)");
}

// The lock of the data directory itself (flock(2) on the directory, so no file is made for
// it): a node holds it exclusively from the moment its storage opens until it exits, and
// --inspect takes it shared. The stores' own locks say the same while they are open, but a
// node whose storage failed closes them until it re-opens them: this keeps an inspection
// out then too, where it would read a directory in use and hold the locks the node's
// re-opening needs.
class data_directory_lock {
public:
    data_directory_lock(const std::filesystem::path& dir, bool shared)
    {
        fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd_ < 0)
            throw std::runtime_error("cannot open the data directory " + dir.string() + ": " +
                                     std::strerror(errno));
        if (::flock(fd_, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0)
            return;
        const int e = errno;
        ::close(fd_);
        if (e == EWOULDBLOCK)
            throw std::runtime_error(
                "cannot lock the data directory " + dir.string() +
                (shared ? ": a node runs on it (perhaps out of service, its storage closed): stop it first"
                        : ": another process holds it (raftkv-server --inspect?)"));
        throw std::runtime_error("cannot lock the data directory " + dir.string() + ": " + std::strerror(e));
    }
    ~data_directory_lock() { ::close(fd_); }
    data_directory_lock(const data_directory_lock&) = delete;
    data_directory_lock& operator=(const data_directory_lock&) = delete;

private:
    int fd_ = -1;
};

// A second process started on a running node's data directory (the same command run twice)
// is told so, rather than that its ports are taken: the log's lock says the directory is
// in use. Only tried, not held: the log store takes it for good when it opens.
void refuse_a_directory_in_use(const server_config& config)
{
    const std::filesystem::path lock = config.data_dir / "wal" / "LOCK";
    const int fd = ::open(lock.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return; // no log yet, or one the log store will report on
    const bool taken = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd); // releases the lock if it was taken here
    if (taken)
        throw std::runtime_error("data directory " + config.data_dir.string() +
                                 " is in use by another process (its log is locked): is node " +
                                 std::to_string(config.id) + " already running, or raftkv-server --inspect?");
}

// A data directory (or a directory above it) given as a symbolic link to nothing, such as a
// mount point's link while its disk is not mounted: a start would create the directory on
// the disk that holds the link, and a node found empty there starts as a new member.
void refuse_a_dangling_link(const server_config& config)
{
    std::error_code ec;
    for (std::filesystem::path p = config.data_dir; !p.empty(); p = p.parent_path()) {
        const std::filesystem::file_status link = std::filesystem::symlink_status(p, ec);
        if (!ec && std::filesystem::is_symlink(link) && !std::filesystem::exists(p, ec) && !ec) {
            const std::filesystem::path target = std::filesystem::read_symlink(p, ec);
            throw std::runtime_error(
                (p == config.data_dir ? "data directory " : "the data directory's path goes through ") +
                p.string() + (p == config.data_dir ? " is" : ",") + " a symbolic link to " +
                (ec ? std::string("a path it cannot read") : target.string()) +
                ", which does not exist (a file system not mounted?): nothing was created; make the "
                "link's target exist, or give --data-dir another path");
        }
        if (p == p.parent_path())
            break;
    }
}

// Before anything is written to the data directory (a new node's identity, log and state; a
// restore; a forced configuration): a start that cannot listen fails having changed
// nothing, so it can be run again with other flags. Both ports are bound at once, so --http
// and --raft on one port are caught too.
void check_ports(asio::io_context& io, const server_config& config, const asio::ip::tcp::endpoint& http)
{
    const asio::ip::tcp::endpoint raft = resolve_endpoint(io.get_executor(), config.raft);
    if (http.port() == raft.port() && (http.address() == raft.address() || http.address().is_unspecified() ||
                                       raft.address().is_unspecified()))
        throw config_error("--http " + config.http.to_string() + " and --raft " + config.raft.to_string() +
                           " are one address: give each its own port");
    const auto bind = [](asio::ip::tcp::acceptor& probe, const asio::ip::tcp::endpoint& at) {
        boost::system::error_code ec;
        if (!probe.open(at.protocol(), ec) && !probe.set_option(asio::socket_base::reuse_address(true), ec))
            probe.bind(at, ec);
        return ec;
    };
    asio::ip::tcp::acceptor http_probe(io), raft_probe(io);
    if (const boost::system::error_code ec = bind(http_probe, http))
        throw std::runtime_error("cannot listen for HTTP on " + config.http.to_string() + ": " +
                                 ec.message());
    if (const boost::system::error_code ec = bind(raft_probe, raft))
        throw std::runtime_error("cannot listen for Raft on " + config.raft.to_string() + ": " +
                                 ec.message());
}

http_server listen_http(asio::io_context& io, const server_config& config,
                        const asio::ip::tcp::endpoint& endpoint, api& routes, const http_tls& tls)
{
    http_server_options options = http_options(config, tls);
    options.on_refusal = [&routes](boost::beast::http::verb method, unsigned status) {
        routes.count_refusal(method, status);
    };
    try {
        return http_server(
            io.get_executor(), endpoint,
            [&routes](asio::any_io_executor ex) { return routes.make_handler(ex); }, error_response,
            std::move(options));
    } catch (const boost::system::system_error& e) {
        throw std::runtime_error("cannot listen for HTTP on " + config.http.to_string() + ": " +
                                 e.code().message());
    }
}

// The members as the configuration in force has them (not --peers, which only bootstraps).
std::string members_in_force(const service_status& s)
{
    std::string out;
    for (const member_status& m : s.members) {
        if (!out.empty())
            out += ',';
        out += std::to_string(m.id) + '=' + (m.raft.empty() ? "?" : m.raft);
        if (m.role == member_role::learner)
            out += " (learner)";
    }
    return out + " (configuration at index " + std::to_string(s.node.members_index) + ")";
}

void log_startup(const server_config& config, const service_status& status)
{
    std::string http = config.http.to_string();
    if (config.advertise_http != config.http)
        http += " (advertised as " + config.advertise_http.to_string() + ")";
    const std::string scheme = config.tls_cert.empty() ? "http " : "https ";
    log(log_level::info,
        "node " + std::to_string(config.id) + " of cluster " +
            raftkv::asio::detail::cluster_id_name(config.cluster_id) + " started: " + scheme + http +
            ", raft " + config.raft.to_string() + ", data " + config.data_dir.string() + ", members " +
            members_in_force(status) + (config.peer_tls() ? ", peer TLS on" : "") +
            (config.auth_tokens_file ? ", " + std::to_string(config.auth_tokens.size()) +
                                           " bearer tokens from " + config.auth_tokens_file->string()
                                     : std::string()) +
            "; " + version_line());
    if (!config.peer_tls() && !is_loopback(config.raft))
        log(log_level::warn, "peer TLS is off and the Raft port " + config.raft.to_string() +
                                 " is not a loopback address: anyone who reaches it can pose as a member "
                                 "(see --peer-cert, docs/security.md)");
    std::error_code ec;
    if (config.auth_tokens_file) {
        const auto perms = std::filesystem::status(*config.auth_tokens_file, ec).permissions();
        if (!ec && (perms & std::filesystem::perms::others_read) != std::filesystem::perms::none)
            log(log_level::warn, "the tokens file " + config.auth_tokens_file->string() +
                                     " is readable by every user of this machine; make it readable by the "
                                     "server's user only (chmod 600)");
    }
}

// The configuration in force in the log of `config.data_dir`: nothing if the log holds none,
// or cannot be read (the start then reports why).
std::optional<raftkv::membership> readable_logged_configuration(const server_config& config)
{
    try {
        return logged_configuration(config.data_dir);
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

// A directory with Raft data but no identity file is adopted: its identity is recorded from
// the flags. Without --peers that makes a cluster of this node alone, under another cluster id
// than its log's members: refused, before the wrong file is written, when the log names others.
void check_adoption(const server_config& config)
{
    const std::optional<raftkv::membership> logged = readable_logged_configuration(config);
    if (!logged)
        return;
    std::set<raftkv::node_id> ids = member_ids(*logged);
    ids.erase(config.id);
    if (ids.empty())
        return;
    std::string names;
    for (const raftkv::node_id id : ids) {
        // Two appends, not `"," + std::to_string(id)`: GCC 12 warns falsely (-Wrestrict).
        if (!names.empty())
            names += ',';
        names += std::to_string(id);
    }
    throw config_error(
        config.data_dir.string() + " holds Raft data but no identity file (" +
        identity_path(config.data_dir).string() + "), and its log names other members (" + names +
        "): the file was lost, or the directory comes from a build without identity files. If this node "
        "was one the cluster was bootstrapped with, start it with --peers, the list it was bootstrapped "
        "with (and its --cluster-token, if any), to record the file again; a member whose file was lost is "
        "then refused by its peers as a new data directory (docs/server.md, \"A lost data directory\"). If "
        "it joined later (--join), its identity cannot be recorded again: remove it (DELETE "
        "/cluster/members/" +
        std::to_string(config.id) + "), add it back, and start it with an empty data directory and --join");
}

// Checks the flags against the data directory's identity, and completes `config` from it.
identity_plan reconcile_identity(server_config& config)
{
    identity_plan plan = plan_identity(config);
    if (plan.adopted && !config.peers_given && !config.restore_backup)
        check_adoption(config);
    if (std::string problem = advertise_http_problem(config); !problem.empty())
        throw config_error(problem);
    return plan;
}

// A member's Raft address may have moved since its identity was recorded (PATCH
// /cluster/members/ID, then a start with the new --raft). Started again without --raft, it
// listens where the configuration in its log has the members dial it, not where its identity
// says it first listened. Read under the directory's lock: opening the log may cut a torn tail.
void take_logged_raft_address(server_config& config, const identity_plan& plan)
{
    if (config.raft_given || plan.write || plan.forced_from != 0)
        return;
    const std::optional<raftkv::membership> logged = readable_logged_configuration(config);
    if (!logged)
        return;
    const auto info = logged->info.find(config.id);
    if (info == logged->info.end())
        return;
    const std::optional<host_port> dialed = decode_member_info(info->second).raft;
    if (!dialed || *dialed == config.raft)
        return;
    log(log_level::info,
        "node " + std::to_string(config.id) + " listens for Raft at " + dialed->to_string() +
            ", where the configuration in its log has the members dial it (it first listened at " +
            config.raft.to_string() + "; --raft overrides)");
    config.raft = *dialed;
}

void record_identity(const server_config& config, const identity_plan& plan)
{
    if (!plan.write && !plan.rewrite)
        return;
    if (!plan.write) {
        // Only where it listens changed: a node that cannot record it (a full disk) runs
        // all the same, and the next start without those flags listens where it did before.
        try {
            write_identity(config.data_dir, plan.id);
        } catch (const std::exception& e) {
            log(log_level::warn, std::string("cannot record the addresses this node listens at: ") +
                                     e.what() + "; a start without --http uses the one recorded before");
        }
        return;
    }
    write_identity(config.data_dir, plan.id);
    if (plan.adopted)
        log(log_level::info,
            "data directory " + config.data_dir.string() +
                " has no identity file (lost, or written by a build without identity files): recorded "
                "it from the flags, cluster " +
                raftkv::asio::detail::cluster_id_name(plan.id.cluster_id));
}

// --restore-backup: the data directory, new, becomes a member of a new cluster holding the
// backup's state (the members of --peers, each restoring the same backup), before the node
// opens it. Its identity is written afterwards, as for any new node, so a failed restore
// leaves the directory as it found it.
void restore_from_backup(const server_config& config, const identity_plan& plan)
{
    const std::filesystem::path& file = *config.restore_backup;
    if (std::filesystem::exists(identity_path(config.data_dir)) || plan.adopted)
        throw config_error("--restore-backup: " + config.data_dir.string() +
                           " already holds a node; restore into an empty data directory, or start this "
                           "one without --restore-backup");
    // Every member of --peers restores the same backup, so every one starts from the same
    // snapshot, under the same configuration: all of them voters.
    raftkv::membership members;
    for (const auto& [id, raft] : config.peers) {
        members.voters.push_back(id);
        members.info.emplace(id, encode_member_info(raft));
    }
    const backup_header h = restore_backup(file, config.data_dir, members);
    log(log_level::info, "restored the backup " + file.string() + " (index " + std::to_string(h.index) +
                             ", taken from node " + std::to_string(h.node) + " of cluster " +
                             raftkv::asio::detail::cluster_id_name(h.cluster_id) + ") into " +
                             config.data_dir.string() + ": a new cluster, whose log continues after index " +
                             std::to_string(h.index));
}

// --force-new-cluster: before the node opens its log, make this member the only voter of
// the configuration at the log's end (raftkv::force_single_voter) and forget the peers'
// incarnations (the new cluster has no other member; ones added later come with new data
// directories). The log is synced before the new identity is written, after the node
// opened: interrupted, the same command can be run again, and appends nothing twice.
void force_new_cluster(const server_config& config, const identity_plan& plan)
{
    const std::filesystem::path wal = config.data_dir / "wal";
    if (!std::filesystem::exists(wal) || !std::filesystem::exists(config.data_dir / "state"))
        throw config_error("--force-new-cluster: " + config.data_dir.string() +
                           " holds no Raft log or no state (" + wal.string() +
                           "): force a member that holds the cluster's data");
    raftkv::forced_configuration forced;
    raftkv::index_t last = 0;
    {
        raftkv::wal::log_store store(wal);
        try {
            forced = raftkv::force_single_voter(store, config.id, encode_member_info(config.raft));
        } catch (const std::invalid_argument& e) {
            throw config_error(std::string("--force-new-cluster: ") + e.what() + "; force a current member");
        }
        store.sync();
        last = store.last_index();
    }
    std::error_code ec;
    std::filesystem::remove(peers_path(config.data_dir), ec);
    if (ec)
        throw std::runtime_error("cannot remove " + peers_path(config.data_dir).string() + ": " +
                                 ec.message());
    log(log_level::warn,
        "forced a new cluster " + raftkv::asio::detail::cluster_id_name(plan.id.cluster_id) + " from node " +
            std::to_string(config.id) + " of cluster " +
            raftkv::asio::detail::cluster_id_name(plan.forced_from) + " (" +
            describe_members(forced.previous) + "): its log, to index " +
            std::to_string(forced.index != 0 ? forced.index - 1 : last) +
            ", is kept and commits without the others, which never rejoin; the configuration at index " +
            std::to_string(forced.index != 0 ? forced.index : last) +
            " has it alone. Add members with --join, and start it without --force-new-cluster from now on");
}

// --inspect: what a stopped node's data directory holds, for an operator choosing which
// survivor to force (docs/server.md, "Losing a majority") or checking a directory before
// starting it. Reads the storage as a start would without changing a byte of the directory
// (a full disk or a read-only mount does not stop it); a running node's locks refuse it.
int inspect(const server_config& config)
{
    const std::filesystem::path& dir = config.data_dir;
    if (!std::filesystem::is_directory(dir))
        throw config_error("--inspect: " + dir.string() + " is not a directory");
    std::string out = "data directory  " + dir.string() + "\n";
    // A damaged identity file is reported, and the storage read all the same: what the log
    // holds is what the operator needs most.
    int code = 0;
    std::optional<identity> id;
    try {
        id = read_identity(dir);
    } catch (const std::exception& e) {
        out += std::string("node            unreadable: ") + e.what() + "\n";
        code = 1;
    }
    if (id) {
        out += "node            " + std::to_string(id->id) + " of cluster " +
               raftkv::asio::detail::cluster_id_name(id->cluster_id);
        if (id->incarnation != 0)
            out += ", incarnation " + raftkv::asio::detail::cluster_id_name(id->incarnation);
        if (id->joined)
            out += ", joined";
        if (id->restored_from_cluster != 0)
            out += ", restored from a backup of cluster " +
                   raftkv::asio::detail::cluster_id_name(id->restored_from_cluster) + " at index " +
                   std::to_string(id->restored_from_index);
        if (id->forced_from != 0)
            out += ", forced from cluster " + raftkv::asio::detail::cluster_id_name(id->forced_from);
        out += "\n";
    } else if (code == 0) {
        out += "node            no identity file\n";
    }
    if (restore_unfinished(dir) && !id) {
        out += "restore         unfinished: --restore-backup was interrupted; run it again\n";
        code = 1;
    }
    std::fputs(out.c_str(), stdout); // before the storage, which may refuse
    std::fflush(stdout);
    out.clear();
    const data_directory_lock lock(dir, true);
    const storage_report r = inspect_storage(dir);
    out += "hard state      term " + std::to_string(r.hard.term) + ", voted for " +
           (r.hard.vote == raftkv::no_node ? std::string("none") : "node " + std::to_string(r.hard.vote)) +
           "\n";
    if (r.first_index <= r.last_index)
        out += "log             entries " + std::to_string(r.first_index) + " to " +
               std::to_string(r.last_index) + ", the last of term " + std::to_string(r.last_term);
    else
        out += "log             no entries, after index " + std::to_string(r.last_index) + " of term " +
               std::to_string(r.last_term);
    out += " (" + std::to_string(r.segments) + (r.segments == 1 ? " segment)\n" : " segments)\n");
    out +=
        "configuration   " +
        (r.configuration.voters.empty() ? std::string("none recorded") : describe_members(r.configuration)) +
        "\n";
    // Where the members dial each other: a restart without --raft listens at its own.
    std::string addresses;
    for (const auto& [id, info] : r.configuration.info) {
        if (const std::optional<host_port> raft = decode_member_info(info).raft) {
            if (!addresses.empty())
                addresses += ',';
            addresses += std::to_string(id) + '=' + raft->to_string();
        }
    }
    if (!addresses.empty())
        out += "raft addresses  " + addresses + "\n";
    if (r.has_state && r.state_readable)
        out += "state           applied to " + std::to_string(r.applied_index) + ", checkpoint at " +
               std::to_string(r.checkpoint_index) + "\n";
    else if (r.has_state)
        out += "state           unreadable (below)\n";
    else
        out += "state           none\n";
    if (!r.torn_tail.empty())
        out += "log tail        " + r.torn_tail + "\n";
    if (r.state_log_damaged)
        out +=
            "state log       damaged records in LevelDB's own log, as a machine crash leaves them: a start "
            "skips them and applies their entries again from the Raft log (the state above is "
            "without them)\n";
    for (const std::string& problem : r.problems) {
        out += "problem         " + problem + "\n";
        code = 1;
    }
    std::fputs(out.c_str(), stdout);
    return code;
}

// Removes `dir` (`existed`: what it holds, the directory itself being a mount point, say)
// after a first start failed; what cannot be removed stays, unreported.
void remove_what_a_first_start_made(const std::filesystem::path& dir, bool existed)
{
    std::error_code ec;
    if (!existed) {
        std::filesystem::remove_all(dir, ec);
        return;
    }
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
        std::filesystem::remove_all(entry.path(), ec);
}

int run(server_config config)
{
    set_log_level(config.log_level);
    set_log_format(config.log_format);
    set_log_node(config.id);
    route_library_log();
    log_configured = true;
    raise_descriptor_limit(config);
    refuse_a_dangling_link(config);
    std::error_code probe;
    const bool directory_existed = std::filesystem::exists(config.data_dir, probe);
    const bool directory_new = !directory_existed || std::filesystem::is_empty(config.data_dir, probe);
    const identity_plan plan = reconcile_identity(config);
    refuse_a_directory_in_use(config);
    take_logged_raft_address(config, plan);
    asio::io_context io{static_cast<int>(config.threads)};
    const asio::ip::tcp::endpoint http_endpoint = resolve_endpoint(io.get_executor(), config.http);
    check_ports(io, config, http_endpoint);
    if (config.restore_backup)
        restore_from_backup(config, plan);
    bool identity_recorded = false;
    if (plan.forced_from != 0) {
        force_new_cluster(config, plan);
        // At once: the log is the new cluster's now, whatever fails next. Under the old
        // identity, a start without the flag would rejoin the old cluster with a log that
        // contradicts it.
        record_identity(config, plan);
        identity_recorded = true;
    }

    const http_tls tls = load_tls(config);
    tls_in_use tls_files{config};
    tls_files.warn_of_validity(config);
    // A node joining records that it joined before it creates its storage: killed in
    // between, it would leave Raft data without an identity, which no later start could
    // join with (--join wants an empty directory) and a start without --join would adopt
    // as a cluster of its own. With the file first, the next start is a joined member's.
    const bool joining = plan.write && plan.id.joined && directory_new;
    if (joining) {
        record_identity(config, plan);
        identity_recorded = true;
    }
    std::unique_ptr<kv_service> made;
    try {
        made = std::make_unique<kv_service>(io.get_executor(), config);
    } catch (const std::exception&) {
        // A first start that cannot open its storage (a full disk) takes back what it
        // began, which the next start would take for a directory whose identity file was
        // lost.
        if (directory_new && (joining || !identity_recorded) && !config.restore_backup)
            remove_what_a_first_start_made(config.data_dir, directory_existed);
        throw;
    }
    kv_service& service = *made;
    const data_directory_lock directory_held(config.data_dir, false);
    // The flags were checked against --peers (or the recorded members): a node bootstrapped
    // alone with a wildcard --http may have grown since.
    if (std::string problem = advertise_http_problem(config, service.status().members.size());
        !problem.empty())
        throw config_error(problem);
    if (!identity_recorded)
        record_identity(config, plan);
    finish_restore(config.data_dir); // a restored node is whole once its identity is recorded
    api_options routing;
    routing.forward_timeout = std::chrono::milliseconds(config.request_timeout_ms) + std::chrono::seconds(1);
    routing.auth_tokens = config.auth_tokens;
    routing.forward_key = derive_forwarding_key(config.cluster_id, config.auth_tokens);
    routing.forward_tls = tls.forward;
    routing.health_timeout = std::chrono::milliseconds(config.health_timeout_ms);
    routing.health_reuse = std::chrono::milliseconds(config.health_reuse_ms);
    routing.watch_buffer_bytes = static_cast<std::size_t>(config.watch_buffer_bytes);
    api routes{service, std::move(routing)};
    http_server server = listen_http(io, config, http_endpoint, routes, tls);
    routes.count_connections([&server] {
        return connection_counts{server.open_connections(), server.turned_away(), server.idle_evictions(),
                                 server.stalled_streams(), server.held_response_closes()};
    });
    warn_if_exposed(config, http_endpoint);

    asio::signal_set signals{io, SIGINT, SIGTERM};
    tls_reloader reloader{io, config, tls_files, server, routes, service};
    asio::steady_timer grace{io};
    int exit_code = 0;
    const auto shut_down = [&] {
        reloader.stop();
        server.stop();
        service.stop();
        grace.expires_after(shutdown_grace);
        grace.async_wait([&io](boost::system::error_code) { io.stop(); });
    };
    // A peer knows this node by another data directory: stop at once, without handing
    // anything over, and exit 1.
    service.on_fatal([&](const std::string& why) {
        log(log_level::error, "fatal: " + why);
        exit_code = 1;
        signals.cancel();
        shut_down();
    });
    signals.async_wait([&](boost::system::error_code ec, int signal) {
        if (ec)
            return;
        log(log_level::info,
            std::string("received ") + (signal == SIGINT ? "SIGINT" : "SIGTERM") + "; shutting down");
        // A leader keeps serving (forwarding) while another member takes over, so that a
        // rolling restart costs no election timeout.
        service.hand_off_leadership(handoff_limit(config), [&](const std::string& outcome) {
            if (!outcome.empty())
                log(log_level::info, outcome);
            shut_down();
        });
    });

    service.start();
    server.start();
    reloader.start();
    log_startup(config, service.status());

    std::vector<std::thread> others;
    for (std::uint32_t k = 1; k < config.threads; ++k)
        others.emplace_back([&io] {
            // The first thread keeps the process's name, which pgrep and pkill match.
            ::pthread_setname_np(::pthread_self(), "raftkv-io");
            run_threads(io);
        });
    run_threads(io);
    for (auto& t : others)
        t.join();
    log(log_level::info, "stopped");
    return exit_code;
}

} // namespace

int main(int argc, char** argv)
{
    // SIGHUP reloads the TLS files once the server runs (tls_reloader); until then, while the
    // storage opens or a backup is restored, it must not end the process, as it would by default.
    std::signal(SIGHUP, SIG_IGN);
    const parse_result parsed = parse_command_line(argc, argv);
    if (parsed.help) {
        std::fputs(help_text().c_str(), stdout);
        return 0;
    }
    if (parsed.version) {
        std::puts(version_line().c_str());
        return 0;
    }
    if (!parsed.ok()) {
        print_error(parsed.error);
        return 2;
    }
    try {
        if (parsed.inspect)
            return inspect(parsed.config);
        return run(parsed.config);
    } catch (const config_error& e) {
        print_error(e.what());
        return 2;
    } catch (const std::system_error& e) {
        if (e.code().category() == raftkv::raftkv_category())
            return report_refusal(e);
        print_error(e.what());
        return 1;
    } catch (const std::exception& e) {
        print_error(e.what());
        return 1;
    }
}
