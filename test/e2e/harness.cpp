#include "harness.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/test/framework.hpp>
#include <boost/test/results_collector.hpp>
#include <boost/test/tree/test_unit.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

#ifndef RAFTKV_SERVER_BINARY
#error "RAFTKV_SERVER_BINARY must name the raftkv-server executable"
#endif

namespace raftkv::e2e {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;
using clock = std::chrono::steady_clock;

namespace {

// A server that dies mid-write must not take the test process down with SIGPIPE.
const bool sigpipe_ignored = [] {
    ::signal(SIGPIPE, SIG_IGN);
    return true;
}();

[[noreturn]] void throw_errno(const std::string& what)
{
    throw std::system_error(errno, std::generic_category(), what);
}

http_response from_beast(http::response<http::string_body>& res)
{
    http_response out;
    out.status = static_cast<int>(res.result_int());
    out.body = std::move(res.body());
    for (const auto& field : res) {
        std::string name(field.name_string());
        for (auto& c : name)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out.headers[name] = std::string(field.value());
    }
    return out;
}

sockaddr_in loopback(std::uint16_t port)
{
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

std::mutex routes_mutex;                             // guards routes
std::map<std::uint16_t, net::ip::address_v4> routes; // route_port()

net::ip::address_v4 address_of(std::uint16_t port)
{
    std::lock_guard lock(routes_mutex);
    const auto it = routes.find(port);
    return it == routes.end() ? net::ip::address_v4::loopback() : it->second;
}

} // namespace

std::filesystem::path server_binary()
{
    return RAFTKV_SERVER_BINARY;
}

// ---------------------------------------------------------------------------------------
// HTTP

struct http_client::impl {
    std::uint16_t port;
    net::io_context io;
    beast::tcp_stream stream{io};
    beast::flat_buffer buffer;
    bool open = false;
    int connections = 0;

    explicit impl(std::uint16_t p) : port(p) {}

    /// Runs the one pending operation to completion (the stream's deadline bounds it).
    void run()
    {
        io.restart();
        io.run();
    }

    void close()
    {
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream.close();
        buffer.clear();
        open = false;
    }

    beast::error_code connect(clock::time_point deadline)
    {
        beast::error_code result = net::error::would_block;
        stream.expires_at(deadline);
        stream.async_connect(tcp::endpoint(address_of(port), port),
                             [&](beast::error_code ec) { result = ec; });
        run();
        if (!result) {
            open = true;
            ++connections;
            stream.socket().set_option(tcp::no_delay(true), result);
        }
        return result;
    }

    /// One exchange on the open connection. `started` tells whether any response byte arrived.
    beast::error_code exchange(http::request<http::string_body>& req, http_response& out,
                               clock::time_point deadline, bool& started)
    {
        beast::error_code result = net::error::would_block;
        stream.expires_at(deadline);
        http::async_write(stream, req, [&](beast::error_code ec, std::size_t) { result = ec; });
        run();
        started = false;
        if (result)
            return result;

        http::response_parser<http::string_body> parser;
        parser.body_limit(256u << 20);
        parser.header_limit(1u << 20);
        // The answer to HEAD has no body, whatever its Content-Length says (RFC 9110 9.3.2).
        parser.skip(req.method() == http::verb::head);
        result = net::error::would_block;
        const auto buffered_before = buffer.size();
        stream.expires_at(deadline);
        http::async_read(stream, buffer, parser, [&](beast::error_code ec, std::size_t) { result = ec; });
        run();
        started = parser.got_some() || buffer.size() != buffered_before;
        if (result)
            return result;

        auto& res = parser.get();
        out = from_beast(res);
        if (!res.keep_alive())
            close();
        return {};
    }
};

http_client::http_client(std::uint16_t port) : impl_(std::make_unique<impl>(port)) {}
http_client::~http_client() = default;
http_client::http_client(http_client&&) noexcept = default;
http_client& http_client::operator=(http_client&&) noexcept = default;

int http_client::connections_opened() const noexcept
{
    return impl_->connections;
}

namespace {
std::string bearer_token; // set_bearer_token()
} // namespace

void route_port(std::uint16_t port, std::string ipv4)
{
    std::lock_guard lock(routes_mutex);
    if (ipv4.empty())
        routes.erase(port);
    else
        routes[port] = net::ip::make_address_v4(ipv4);
}

void set_bearer_token(std::string token)
{
    bearer_token = std::move(token);
}

http_response http_client::request(std::string_view method, std::string_view target, std::string_view body,
                                   milliseconds timeout)
{
    return request(method, target, body, header_list{}, timeout);
}

http_response http_client::request(std::string_view method, std::string_view target, std::string_view body,
                                   const header_list& headers, milliseconds timeout)
{
    const auto deadline = clock::now() + timeout;
    http::request<http::string_body> req;
    req.version(11);
    req.method_string(method);
    req.target(target);
    req.set(http::field::host, address_of(impl_->port).to_string() + ":" + std::to_string(impl_->port));
    req.set(http::field::user_agent, "raftkv-e2e");
    req.keep_alive(true);
    if (!bearer_token.empty())
        req.set(http::field::authorization, "Bearer " + bearer_token);
    for (const auto& [name, value] : headers) {
        if (beast::iequals(name, "Authorization"))
            req.erase(http::field::authorization);
    }
    for (const auto& [name, value] : headers) {
        if (!value.empty() || !beast::iequals(name, "Authorization"))
            req.insert(name, value);
    }
    if (!body.empty() || method == "PUT" || method == "POST") {
        req.set(http::field::content_type, "application/json");
        req.body() = std::string(body);
        req.prepare_payload();
    }

    for (int attempt = 0; attempt < 2; ++attempt) {
        const bool reused = impl_->open;
        if (!impl_->open) {
            if (auto ec = impl_->connect(deadline)) {
                impl_->close();
                return {0, "connect: " + ec.message(), {}};
            }
        }
        http_response out;
        bool started = false;
        auto ec = impl_->exchange(req, out, deadline, started);
        if (!ec)
            return out;
        impl_->close();
        const bool stale = reused && !started &&
                           (ec == http::error::end_of_stream || ec == net::error::eof ||
                            ec == net::error::connection_reset || ec == net::error::broken_pipe);
        if (!stale || clock::now() >= deadline)
            return {0, "request: " + ec.message(), {}};
    }
    return {0, "request: connection closed twice", {}};
}

http_response request(std::uint16_t port, std::string_view method, std::string_view target,
                      std::string_view body, milliseconds timeout)
{
    http_client client(port);
    return client.request(method, target, body, timeout);
}

http_response request(std::uint16_t port, std::string_view method, std::string_view target,
                      std::string_view body, const header_list& headers, milliseconds timeout)
{
    http_client client(port);
    return client.request(method, target, body, headers, timeout);
}

std::string describe(const http_response& r)
{
    std::string out = "status " + std::to_string(r.status) + ", body ";
    if (r.body.size() > 300)
        out += r.body.substr(0, 300) + "...[" + std::to_string(r.body.size()) + " bytes]";
    else
        out += r.body;
    return out;
}

std::string url_encode(std::string_view s)
{
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::string kv_target(std::string_view key)
{
    return "/kv/" + url_encode(key);
}

std::string json_quote(std::string_view s)
{
    return json::serialize(json::string(s));
}

std::string value_body(std::string_view value)
{
    return "{\"value\": " + json_quote(value) + "}";
}

std::optional<std::string> json_body::string(const std::string& name) const
{
    auto k = kind.find(name);
    if (k == kind.end() || k->second != "string")
        return std::nullopt;
    return text.at(name);
}

json_body parse_json(std::string_view body)
{
    json_body out;
    boost::system::error_code ec;
    json::value v = json::parse(body, ec);
    if (ec)
        return out;
    out.valid = true;
    if (!v.is_object())
        return out;
    out.is_object = true;
    for (const auto& member : v.as_object()) {
        const std::string name(member.key());
        const auto& value = member.value();
        switch (value.kind()) {
        case json::kind::string:
            out.kind[name] = "string";
            out.text[name] = std::string(value.as_string());
            break;
        case json::kind::int64:
        case json::kind::uint64: out.kind[name] = "integer"; break;
        case json::kind::double_: out.kind[name] = "number"; break;
        case json::kind::null: out.kind[name] = "null"; break;
        case json::kind::bool_: out.kind[name] = "bool"; break;
        case json::kind::array: out.kind[name] = "array"; break;
        case json::kind::object: out.kind[name] = "object"; break;
        }
        if (!value.is_string())
            out.text[name] = json::serialize(value);
    }
    return out;
}

bool is_error(const http_response& r, int status)
{
    if (r.status != status)
        return false;
    auto j = parse_json(r.body);
    return j.is_object && j.string("error").has_value();
}

// ---------------------------------------------------------------------------------------
// Raw TCP

std::vector<http_response> parse_responses(std::string_view bytes)
{
    std::vector<http_response> out;
    while (!bytes.empty()) {
        http::response_parser<http::string_body> parser;
        parser.eager(true);
        parser.body_limit(256u << 20);
        parser.header_limit(1u << 20);
        while (!parser.is_done()) {
            beast::error_code ec;
            const std::size_t n = parser.put(net::buffer(bytes.data(), bytes.size()), ec);
            bytes.remove_prefix(n);
            if (ec == http::error::need_more && n > 0)
                continue;
            if (ec)
                return out;
        }
        out.push_back(from_beast(parser.get()));
    }
    return out;
}

namespace {

/// A non-blocking socket connected to 127.0.0.1:port within 2 s, or -1.
int connect_loopback(std::uint16_t port)
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        throw_errno("socket");
    auto addr = loopback(port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        int err = errno;
        if (err == EINPROGRESS) {
            pollfd p{fd, POLLOUT, 0};
            socklen_t len = sizeof err;
            if (::poll(&p, 1, 2000) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
                err == 0)
                return fd;
        }
        ::close(fd);
        return -1;
    }
    return fd;
}

/// Writes all of `bytes` unless the peer goes away first; false then.
bool send_all(int fd, std::string_view bytes, clock::time_point deadline)
{
    while (!bytes.empty()) {
        pollfd p{fd, POLLOUT, 0};
        const auto left = std::chrono::duration_cast<milliseconds>(deadline - clock::now()).count();
        if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0)
            return false;
        const auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

} // namespace

raw_result send_raw(std::uint16_t port, std::string_view bytes, milliseconds wait, bool half_close)
{
    raw_result out;
    const int fd = connect_loopback(port);
    if (fd < 0)
        return out;
    out.connected = true;
    const auto deadline = clock::now() + wait;
    send_all(fd, bytes, deadline);
    if (half_close)
        ::shutdown(fd, SHUT_WR);
    char buf[4096];
    for (;;) {
        const auto left = std::chrono::duration_cast<milliseconds>(deadline - clock::now()).count();
        pollfd p{fd, POLLIN, 0};
        if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0)
            break;
        const auto n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            out.received.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        out.closed = true; // 0: orderly close; <0: reset
        break;
    }
    ::close(fd);
    return out;
}

raw_connection::raw_connection(std::uint16_t port) : fd_(connect_loopback(port)) {}
raw_connection::~raw_connection()
{
    if (fd_ >= 0)
        ::close(fd_);
}
raw_connection::raw_connection(raw_connection&& other) noexcept : fd_(other.fd_)
{
    other.fd_ = -1;
}
bool raw_connection::send(std::string_view bytes)
{
    return fd_ >= 0 && send_all(fd_, bytes, clock::now() + 2s);
}

// ---------------------------------------------------------------------------------------
// Ports, directories, waiting

namespace {

/// The ports free_ports() hands out: a block below the kernel's ephemeral range when there
/// is room for one, so that no outgoing connection (the harness's own HTTP clients, the
/// servers' peer links, other tests running in parallel) can be given one of them between
/// the harness choosing it and the server binding it. 0, 0: no such block.
std::pair<std::uint16_t, std::uint16_t> reservable_ports()
{
    unsigned low = 32768, high = 60999; // Linux's defaults
    std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> low >> high;
    constexpr unsigned block = 10000;
    if (low >= 1024 + block)
        return {static_cast<std::uint16_t>(low - block), static_cast<std::uint16_t>(low - 1)};
    if (high + block <= 65535)
        return {static_cast<std::uint16_t>(high + 1), static_cast<std::uint16_t>(high + block)};
    return {0, 0};
}

/// Ports reserved across every process on this machine that runs the harness, until the
/// process that reserved one exits: a POSIX record lock on byte `port` of a shared file.
/// Two test programs that run at once (ctest -j) thus never pick the same port, which
/// probing alone cannot promise: a probed port is free only until someone else binds it.
class port_reservations {
public:
    port_reservations()
    {
        // One file per user: another user's file may not be writable.
        const auto path = std::filesystem::temp_directory_path() /
                          ("raftkv-test-ports-" + std::to_string(::getuid()) + ".lock");
        fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd_ < 0)
            throw_errno("open " + path.string());
    }
    // The descriptor stays open for the life of the process: closing any descriptor of the
    // file would drop every lock this process holds on it.

    /// True if `port` was not reserved by any process and now is by this one.
    bool reserve(std::uint16_t port)
    {
        if (!mine_.insert(port).second)
            return false;
        struct flock lock {};
        lock.l_type = F_WRLCK;
        lock.l_whence = SEEK_SET;
        lock.l_start = port;
        lock.l_len = 1;
        if (::fcntl(fd_, F_SETLK, &lock) == 0)
            return true;
        if (errno != EACCES && errno != EAGAIN)
            throw_errno("lock a port reservation");
        return false; // another process holds it; never try it again from here
    }

private:
    int fd_ = -1;
    std::set<std::uint16_t> mine_;
};

} // namespace

std::vector<std::uint16_t> free_ports(std::size_t n)
{
    return free_ports(n, static_cast<std::uint16_t>(std::random_device{}()));
}

std::vector<std::uint16_t> free_ports(std::size_t n, std::uint16_t scan_from)
{
    static std::mutex mutex;
    std::lock_guard guard(mutex);
    const auto [first, last] = reservable_ports();
    std::vector<std::uint16_t> ports;
    if (first == 0) {
        // No room outside the ephemeral range: let the kernel choose, all bound at once so
        // that one call never returns a port twice.
        std::vector<int> fds;
        for (std::size_t i = 0; i < n; ++i) {
            int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0)
                throw_errno("socket");
            fds.push_back(fd);
            auto addr = loopback(0);
            if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
                throw_errno("bind");
            socklen_t len = sizeof addr;
            if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
                throw_errno("getsockname");
            ports.push_back(ntohs(addr.sin_port));
        }
        for (int fd : fds)
            ::close(fd);
        return ports;
    }
    static port_reservations reservations;
    const unsigned size = last - first + 1u;
    unsigned next = scan_from >= first && scan_from <= last ? scan_from - first : scan_from % size;
    for (unsigned tried = 0; ports.size() < n; ++tried, next = (next + 1) % size) {
        if (tried == size)
            throw std::runtime_error("free_ports: no free port left in " + std::to_string(first) + "-" +
                                     std::to_string(last));
        const auto port = static_cast<std::uint16_t>(first + next);
        if (reservations.reserve(port) && port_is_free(port))
            ports.push_back(port);
    }
    return ports;
}

bool port_is_free(std::uint16_t port)
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        throw_errno("socket");
    auto addr = loopback(port);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

temp_dir::temp_dir()
{
    std::random_device rd;
    const auto base = std::filesystem::temp_directory_path();
    do
        path_ = base / ("raftkv-e2e-" + std::to_string(rd()) + std::to_string(rd()));
    while (!std::filesystem::create_directory(path_));
}

temp_dir::~temp_dir()
{
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

bool wait_until(const std::function<bool()>& pred, milliseconds timeout, milliseconds poll)
{
    const auto deadline = clock::now() + timeout;
    for (;;) {
        if (pred())
            return true;
        if (clock::now() >= deadline)
            return false;
        std::this_thread::sleep_for(poll);
    }
}

std::string read_tail(const std::filesystem::path& file, std::size_t max_bytes)
{
    std::ifstream in(file, std::ios::binary);
    if (!in)
        return {};
    in.seekg(0, std::ios::end);
    const auto size = static_cast<std::size_t>(in.tellg());
    const auto from = size > max_bytes ? size - max_bytes : 0;
    in.seekg(static_cast<std::streamoff>(from));
    std::string out(size - from, '\0');
    in.read(out.data(), static_cast<std::streamsize>(out.size()));
    return from == 0 ? out : "[...]" + out;
}

bool current_test_passing()
{
    if (std::uncaught_exceptions() > 0)
        return false;
    namespace ut = boost::unit_test;
    try {
        return ut::results_collector.results(ut::framework::current_test_case().p_id).passed();
    } catch (...) {
        return false;
    }
}

// ---------------------------------------------------------------------------------------
// Processes

std::ostream& operator<<(std::ostream& os, const exit_status& s)
{
    if (s.exited)
        return os << "exit code " << s.code;
    return os << "signal " << s.signal << " (" << ::strsignal(s.signal) << ")";
}

namespace {

exit_status decode(int wstatus)
{
    exit_status s;
    if (WIFEXITED(wstatus)) {
        s.exited = true;
        s.code = WEXITSTATUS(wstatus);
    } else if (WIFSIGNALED(wstatus)) {
        s.signal = WTERMSIG(wstatus);
    }
    return s;
}

int open_append(const std::filesystem::path& file)
{
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        throw_errno("open " + file.string());
    return fd;
}

} // namespace

process::process(std::vector<std::string> args, options opts, std::vector<std::string> env)
{
    const auto program = opts.program.empty() ? server_binary() : opts.program;
    if (opts.stderr_file.empty())
        opts.stderr_file = opts.stdout_file;
    args.insert(args.begin(), program.string());
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    // The environment: the test process's, with env's entries replacing or added.
    std::vector<std::string> env_entries;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view entry(*e);
        const auto name = entry.substr(0, entry.find('=') + 1);
        const bool replaced =
            std::any_of(env.begin(), env.end(), [&](const std::string& x) { return x.starts_with(name); });
        if (!replaced)
            env_entries.emplace_back(entry);
    }
    env_entries.insert(env_entries.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& e : env_entries)
        envp.push_back(e.data());
    envp.push_back(nullptr);

    {
        // A marker in the log between two runs of the same node.
        std::ofstream log(opts.stdout_file, std::ios::app);
        log << "==== e2e harness: starting";
        for (const auto& a : args)
            log << ' ' << a;
        log << '\n';
    }
    const int out_fd = open_append(opts.stdout_file);
    const int err_fd = opts.stderr_file == opts.stdout_file ? out_fd : open_append(opts.stderr_file);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const std::string cwd = opts.cwd.string();
    const std::string program_path = program.string();
    const pid_t parent = ::getpid();
    rlimit files{};
    const unsigned max_fd = ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                                ? static_cast<unsigned>(std::min<rlim_t>(files.rlim_cur, 1u << 20))
                                : 1u << 16;

    // fork + exec rather than posix_spawn, to set the parent-death signal in the child. Only
    // async-signal-safe calls happen between fork and exec.
    const pid_t pid = ::fork();
    if (pid < 0)
        throw_errno("fork");
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent)
            ::_exit(127);
        sigset_t none;
        ::sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD})
            ::signal(sig, SIG_DFL);
        ::dup2(null_fd, 0);
        ::dup2(out_fd, 1);
        ::dup2(err_fd, 2);
        // Nothing else of the test process reaches the server: sockets that other threads
        // open without close-on-exec (Asio's and Beast's, a proxy's) would otherwise stay
        // open in the child, so that closing them in the test would close nothing.
        if (::close_range(3, ~0u, 0) != 0)
            for (unsigned fd = 3; fd < max_fd; ++fd)
                ::close(static_cast<int>(fd));
        if (!cwd.empty() && ::chdir(cwd.c_str()) != 0)
            ::_exit(126);
        ::execve(program_path.c_str(), argv.data(), envp.data());
        ::_exit(127);
    }
    pid_ = pid;
    ::close(null_fd);
    if (err_fd != out_fd)
        ::close(err_fd);
    ::close(out_fd);
}

process::~process()
{
    kill9();
}

bool process::running()
{
    if (status_)
        return false;
    int ws = 0;
    const pid_t r = ::waitpid(pid_, &ws, WNOHANG);
    if (r == pid_) {
        status_ = decode(ws);
        return false;
    }
    return true;
}

namespace {

// Whether every thread of `pid` is stopped ('T' in its /proc stat): kill() only queues a
// SIGSTOP, and a thread running on another CPU may still answer a request meanwhile.
bool all_threads_stopped(pid_t pid)
{
    std::error_code ec;
    const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
    for (const auto& t : std::filesystem::directory_iterator(tasks, ec)) {
        std::ifstream in(t.path() / "stat");
        std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const auto close = stat.rfind(')'); // the command name may hold spaces and parentheses
        if (close == std::string::npos || close + 2 >= stat.size())
            return false;
        if (stat[close + 2] != 'T' && stat[close + 2] != 't')
            return false;
    }
    return !ec;
}

} // namespace

void process::signal(int sig)
{
    if (!running())
        return;
    signalled_ = true;
    ::kill(pid_, sig);
    if (sig != SIGSTOP)
        return;
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (!all_threads_stopped(pid_) && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(1ms);
}

void process::kill9()
{
    if (status_ || pid_ < 0)
        return;
    signalled_ = true;
    ::kill(pid_, SIGKILL);
    int ws = 0;
    while (::waitpid(pid_, &ws, 0) < 0 && errno == EINTR) {
    }
    status_ = decode(ws);
}

std::optional<exit_status> process::wait(milliseconds timeout)
{
    wait_until([this] { return !running(); }, timeout, 10ms);
    return status_;
}

run_result run_server(const std::vector<std::string>& args, milliseconds timeout,
                      const std::filesystem::path& cwd)
{
    temp_dir dir;
    run_result out;
    {
        process p(args,
                  {.program = {}, .stdout_file = dir / "stdout", .stderr_file = dir / "stderr", .cwd = cwd});
        out.status = p.wait(timeout);
    }
    // The harness writes its start marker to stdout; drop that line.
    out.out = read_tail(dir / "stdout", 1 << 20);
    out.out.erase(0, out.out.find('\n') + 1);
    out.err = read_tail(dir / "stderr", 1 << 20);
    return out;
}

// ---------------------------------------------------------------------------------------
// /status

namespace {

bool get_u64(const json::object& o, const char* name, std::uint64_t& out, std::string& why)
{
    auto it = o.find(name);
    if (it == o.end()) {
        why = std::string("missing \"") + name + "\"";
        return false;
    }
    if (it->value().is_uint64()) {
        out = it->value().as_uint64();
        return true;
    }
    if (it->value().is_int64() && it->value().as_int64() >= 0) {
        out = static_cast<std::uint64_t>(it->value().as_int64());
        return true;
    }
    why = std::string("\"") + name + "\" is not a non-negative integer: " + json::serialize(it->value());
    return false;
}

bool get_string(const json::object& o, const char* name, std::string& out, std::string& why)
{
    auto it = o.find(name);
    if (it == o.end() || !it->value().is_string()) {
        why = std::string("\"") + name + "\" missing or not a string";
        return false;
    }
    out = std::string(it->value().as_string());
    return true;
}

} // namespace

std::optional<node_status> parse_status(std::string_view body, std::string* why_out)
{
    std::string why;
    auto fail = [&]() -> std::optional<node_status> {
        if (why_out)
            *why_out = why + " in " + std::string(body.substr(0, 2000));
        return std::nullopt;
    };
    boost::system::error_code ec;
    json::value v = json::parse(body, ec);
    if (ec) {
        why = "not JSON (" + ec.message() + ")";
        return fail();
    }
    if (!v.is_object()) {
        why = "not an object";
        return fail();
    }
    const auto& o = v.as_object();
    node_status s;
    if (!get_u64(o, "id", s.id, why) || !get_string(o, "cluster_id", s.cluster_id, why) ||
        !get_string(o, "role", s.role, why) || !get_u64(o, "term", s.term, why) ||
        !get_u64(o, "commit_index", s.commit_index, why) ||
        !get_u64(o, "applied_index", s.applied_index, why) ||
        !get_u64(o, "first_index", s.first_index, why) || !get_u64(o, "last_index", s.last_index, why) ||
        !get_u64(o, "snapshot_index", s.snapshot_index, why) ||
        !get_u64(o, "snapshot_term", s.snapshot_term, why))
        return fail();
    auto leader = o.find("leader");
    if (leader == o.end()) {
        why = "missing \"leader\"";
        return fail();
    }
    if (!leader->value().is_null()) {
        std::uint64_t id = 0;
        if (!get_u64(o, "leader", id, why))
            return fail();
        s.leader = id;
    }
    auto members = o.find("members");
    if (members == o.end() || !members->value().is_array()) {
        why = "\"members\" missing or not an array";
        return fail();
    }
    for (const auto& m : members->value().as_array()) {
        if (!m.is_object()) {
            why = "a member is not an object";
            return fail();
        }
        member_status ms;
        if (!get_u64(m.as_object(), "id", ms.id, why) || !get_string(m.as_object(), "raft", ms.raft, why))
            return fail();
        auto http = m.as_object().find("http");
        if (http == m.as_object().end() || !(http->value().is_string() || http->value().is_null())) {
            why = "a member's \"http\" is missing or neither a string nor null";
            return fail();
        }
        if (http->value().is_string())
            ms.http = std::string(http->value().as_string());
        s.members.push_back(std::move(ms));
    }
    return s;
}

std::optional<node_status> get_status(std::uint16_t port, milliseconds timeout)
{
    auto r = request(port, "GET", "/status", {}, timeout);
    if (r.status != 200)
        return std::nullopt;
    return parse_status(r.body);
}

// ---------------------------------------------------------------------------------------
// Load

std::string load_value(std::string_view key)
{
    return "value of " + std::string(key);
}

namespace {

constexpr milliseconds put_retry_time = 20s;

// One client's share of put_many(): writes first, first + stride, ...
void put_share(std::uint16_t port, std::string_view prefix, std::size_t first, std::size_t count,
               std::size_t stride, std::size_t distinct_keys, load_result& out)
{
    http_client client(port);
    for (std::size_t i = first; i < count; i += stride) {
        const std::string key = std::string(prefix) + std::to_string(distinct_keys ? i % distinct_keys : i);
        const std::string target = kv_target(key), body = value_body(load_value(key));
        const auto deadline = clock::now() + put_retry_time;
        http_response r;
        for (;;) {
            r = client.request("PUT", target, body, put_retry_time);
            if (r.status == 200 || (r.status != 0 && r.status != 503) || clock::now() >= deadline)
                break;
            std::this_thread::sleep_for(r.status == 503 ? 50ms : 10ms);
        }
        if (r.status == 200)
            ++out.ok;
        else if (out.failed++ == 0)
            out.first_failure = "PUT " + target + ": " + describe(r);
    }
}

// One client's share of get_many().
void get_share(std::uint16_t port, std::string_view prefix, std::size_t first, std::size_t count,
               std::size_t stride, load_result& out)
{
    http_client client(port);
    for (std::size_t i = first; i < count; i += stride) {
        const std::string key = std::string(prefix) + std::to_string(i);
        const http_response r = client.request("GET", kv_target(key), {}, 10s);
        if (r.status == 200 && parse_json(r.body).string("value") == load_value(key))
            ++out.ok;
        else if (out.failed++ == 0)
            out.first_failure = "GET " + kv_target(key) + ": " + describe(r);
    }
}

// Runs share(t, result) on `clients` threads and adds up their results.
load_result run_shares(std::size_t clients, const std::function<void(std::size_t, load_result&)>& share)
{
    const auto start = clock::now();
    std::vector<load_result> shares(clients);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < clients; ++t)
        threads.emplace_back([&, t] { share(t, shares[t]); });
    for (auto& th : threads)
        th.join();
    load_result total;
    for (const auto& s : shares) {
        total.ok += s.ok;
        total.failed += s.failed;
        if (total.first_failure.empty())
            total.first_failure = s.first_failure;
    }
    total.seconds = std::chrono::duration<double>(clock::now() - start).count();
    return total;
}

} // namespace

load_result put_many(std::uint16_t port, std::string_view prefix, std::size_t count, std::size_t clients,
                     std::size_t distinct_keys)
{
    return run_shares(clients, [&](std::size_t t, load_result& out) {
        put_share(port, prefix, t, count, clients, distinct_keys, out);
    });
}

load_result get_many(std::uint16_t port, std::string_view prefix, std::size_t count, std::size_t clients)
{
    return run_shares(
        clients, [&](std::size_t t, load_result& out) { get_share(port, prefix, t, count, clients, out); });
}

// ---------------------------------------------------------------------------------------
// /proc

std::uint64_t rss_kib(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0)
            return std::strtoull(line.c_str() + 6, nullptr, 10);
    }
    return 0;
}

std::uint64_t directory_bytes(const std::filesystem::path& dir)
{
    std::uint64_t total = 0;
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code size_ec; // a file LevelDB deletes meanwhile counts as 0
        if (!it->is_regular_file(size_ec))
            continue;
        const auto size = it->file_size(size_ec);
        if (!size_ec)
            total += size;
    }
    return total;
}

// ---------------------------------------------------------------------------------------
// Servers and clusters

std::string node_spec::http_address() const
{
    return host + ":" + std::to_string(http_port);
}

std::string node_spec::raft_address() const
{
    return host + ":" + std::to_string(raft_port);
}

std::string node_spec::dial_address() const
{
    return dial_port != 0 ? "127.0.0.1:" + std::to_string(dial_port) : raft_address();
}

cluster::cluster(std::size_t n, bool start, std::vector<std::string> extra_args)
    : extra_args_(std::move(extra_args))
{
    const auto ports = free_ports(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
        node_spec s;
        s.id = i + 1;
        s.http_port = ports[2 * i];
        s.raft_port = ports[2 * i + 1];
        s.data_dir = dir_ / ("node-" + std::to_string(s.id));
        s.log_file = dir_ / ("node-" + std::to_string(s.id) + ".log");
        specs_.push_back(s);
    }
    procs_.resize(n);
    if (start)
        start_all();
}

cluster::~cluster()
{
    for (auto& p : procs_)
        p.reset();
    for (const auto& s : specs_)
        if (!s.launcher.empty() || s.host != "127.0.0.1")
            route_port(s.http_port, {});
    if (!current_test_passing())
        dump_logs(std::cerr);
}

std::string cluster::peers_flag() const
{
    std::string out;
    for (const auto& s : specs_) {
        if (s.join_via != 0)
            continue;
        if (!out.empty())
            out += ',';
        out += std::to_string(s.id) + "=" + s.dial_address();
    }
    return out;
}

std::vector<std::string> cluster::args(std::uint64_t id) const
{
    const auto& s = spec(id);
    std::vector<std::string> out = {"--id",   std::to_string(s.id), "--data-dir", s.data_dir.string(),
                                    "--http", s.http_address(),     "--raft",     s.raft_address()};
    if (s.join_via != 0) {
        out.insert(out.end(), {"--join", "http://" + spec(s.join_via).http_address()});
    } else {
        out.insert(out.end(), {"--peers", peers_flag()});
    }
    out.insert(out.end(), extra_args_.begin(), extra_args_.end());
    return out;
}

std::uint64_t cluster::add_node(std::uint64_t via)
{
    const auto ports = free_ports(2);
    node_spec s;
    s.id = specs_.size() + 1;
    s.http_port = ports[0];
    s.raft_port = ports[1];
    s.data_dir = dir_ / ("node-" + std::to_string(s.id));
    s.log_file = dir_ / ("node-" + std::to_string(s.id) + ".log");
    s.join_via = via;
    specs_.push_back(s);
    procs_.emplace_back();
    return s.id;
}

std::string cluster::member_body(std::uint64_t id, bool learner) const
{
    const auto& s = spec(id);
    return "{\"id\": " + std::to_string(id) + ", \"raft\": \"" + s.dial_address() + "\", \"http\": \"" +
           s.http_address() + "\", \"learner\": " + (learner ? "true" : "false") + "}";
}

void cluster::start(std::uint64_t id)
{
    start(id, args(id));
}

void cluster::start(std::uint64_t id, std::vector<std::string> args)
{
    auto& p = procs_.at(id - 1);
    if (p && p->running())
        throw std::logic_error("node " + std::to_string(id) + " is already running");
    p.reset();
    std::filesystem::path program;
    if (const auto& launcher = spec(id).launcher; !launcher.empty()) {
        program = launcher.front();
        args.insert(args.begin(), server_binary().string());
        args.insert(args.begin(), launcher.begin() + 1, launcher.end());
    }
    exit_reported_.resize(procs_.size());
    exit_reported_.at(id - 1) = false;
    p = std::make_unique<process>(
        std::move(args),
        process::options{
            .program = program, .stdout_file = spec(id).log_file, .stderr_file = {}, .cwd = dir_.path()},
        spec(id).env);
}

void cluster::set_host(std::uint64_t id, std::string host, std::vector<std::string> launcher)
{
    auto& s = specs_.at(id - 1);
    route_port(s.http_port, host);
    s.host = std::move(host);
    s.launcher = std::move(launcher);
}

void cluster::start_all()
{
    for (const auto& s : specs_)
        start(s.id);
}

bool cluster::running(std::uint64_t id)
{
    auto& p = procs_.at(id - 1);
    return p && p->running();
}

pid_t cluster::pid(std::uint64_t id)
{
    return running(id) ? procs_.at(id - 1)->pid() : -1;
}

std::optional<exit_status> cluster::exit_of(std::uint64_t id)
{
    const auto& p = procs_.at(id - 1);
    return p ? p->status() : std::nullopt;
}

void cluster::kill9(std::uint64_t id)
{
    if (auto& p = procs_.at(id - 1))
        p->kill9();
}

void cluster::signal(std::uint64_t id, int sig)
{
    if (auto& p = procs_.at(id - 1))
        p->signal(sig);
}

std::optional<exit_status> cluster::terminate(std::uint64_t id, int sig, milliseconds timeout)
{
    auto& p = procs_.at(id - 1);
    if (!p)
        return std::nullopt;
    p->signal(sig);
    return p->wait(timeout);
}

void cluster::restart(std::uint64_t id)
{
    kill9(id);
    start(id);
}

std::vector<std::uint64_t> cluster::running_ids()
{
    std::vector<std::uint64_t> out;
    for (const auto& s : specs_)
        if (running(s.id))
            out.push_back(s.id);
    return out;
}

std::optional<std::uint64_t> cluster::wait_for_leader(milliseconds timeout)
{
    std::optional<std::uint64_t> found;
    wait_until(
        [&] {
            found.reset();
            std::optional<std::uint64_t> agreed;
            for (auto id : running_ids()) {
                auto st = get_status(http_port(id), 1s);
                if (!st || !st->leader)
                    return false;
                if (agreed && *agreed != *st->leader)
                    return false;
                agreed = st->leader;
                if (*st->leader == id && st->role != "leader")
                    return false;
            }
            if (!agreed || !running(*agreed))
                return false;
            found = agreed;
            return true;
        },
        timeout, 100ms);
    report_unexpected_exits("waiting for a leader");
    return found;
}

void cluster::report_unexpected_exits(const char* during)
{
    exit_reported_.resize(procs_.size());
    for (const auto& s : specs_) {
        auto& p = procs_.at(s.id - 1);
        if (!p || exit_reported_.at(s.id - 1) || !p->ended_by_itself())
            continue;
        exit_reported_.at(s.id - 1) = true;
        std::ostringstream line;
        line << "e2e harness: node " << s.id << " ended by itself (" << *p->status() << ") before " << during
             << "; its log (" << s.log_file.string() << ") ends:\n"
             << read_tail(s.log_file, 2048) << "\n";
        std::cerr << line.str() << std::flush;
    }
}

std::optional<std::uint64_t> cluster::wait_ready(milliseconds timeout)
{
    const auto deadline = clock::now() + timeout;
    auto leader = wait_for_leader(timeout);
    if (!leader)
        return std::nullopt;
    const bool serving = wait_until(
        [&] {
            for (auto id : running_ids())
                if (request(http_port(id), "GET", "/kv/e2e-readiness-probe", {}, 1s).status != 404)
                    return false;
            return true;
        },
        std::max(std::chrono::duration_cast<milliseconds>(deadline - clock::now()), milliseconds(0)), 20ms);
    report_unexpected_exits("waiting for every node to serve");
    return serving ? leader : std::nullopt;
}

bool cluster::wait_healthy(std::uint64_t id, milliseconds timeout)
{
    const bool healthy = wait_until(
        [&] { return request(http_port(id), "GET", "/health", {}, 1s).status == 200; }, timeout, 50ms);
    report_unexpected_exits("waiting for /health");
    return healthy;
}

void cluster::dump_logs(std::ostream& os)
{
    for (const auto& s : specs_) {
        os << "---- raftkv-server node " << s.id << " (http " << s.http_address() << ", raft "
           << s.raft_address() << "), log tail of " << s.log_file.string() << " ----\n"
           << read_tail(s.log_file) << "\n---- end of node " << s.id << " ----\n";
    }
    os.flush();
}

} // namespace raftkv::e2e
