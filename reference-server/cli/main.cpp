// raftkv, the command-line client of raftkv-server: keys, scans, status, membership and
// its own version.
// docs/cli.md describes every command, its output and the exit codes.

#include "backup.hpp"
#include "cli/client.hpp"
#include "version.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace json = boost::json;
namespace po = boost::program_options;
using namespace raftkv::cli;

/// The exit codes, documented in usage() and docs/cli.md.
enum exit_code : int {
    ok = 0,
    usage_error = 1,
    not_found = 2,
    unavailable = 3,
    refused = 4,
    unauthorized = 5,
    server_error = 6,
    precondition_failed = 7,
    local_error = 8,
};

constexpr const char* exit_codes_text = R"(Exit codes:
  0  success
  1  usage error: bad command line, unreadable token or TLS file
  2  not found: the key (get, del) or the member (member remove/promote/update,
     leader transfer) does not exist
  3  unavailable: no endpoint answered, the timeout passed, or the cluster
     answered 503 (no leader, shutting down, a write whose outcome is unknown);
     members: the list came from a node that was removed
  4  refused: the server answered 400, 405, 409, 413, 422 or 507 (bad input, a
     conflicting membership change, a write sequence the cluster no longer remembers
     or applied for another request, a state past the server's --quota-bytes)
  5  not authorized: 401 (missing or unknown token) or 403 (read-only token)
  6  server error: a 500 or an answer the client does not understand
  7  precondition failed: 412 (put --if-match/--if-absent, del --if-match)
  8  local error: the client could not write its own file (backup FILE: a full
     disk, a directory it may not write)
)";

/// A command line that cannot run; the message goes to stderr with exit code 1.
struct usage_failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// The client's own file could not be written (exit code 8): not the server's failure.
struct local_failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// What every command gets.
struct context {
    std::unique_ptr<client> c;
    bool json_output = false;
};

// ---- Output and errors ------------------------------------------------------------------

/// The exit code for an HTTP status that is not a success.
int code_for(int status)
{
    if (status == 0 || status == 503)
        return unavailable;
    if (status == 404)
        return not_found;
    if (status == 401 || status == 403)
        return unauthorized;
    if (status == 412)
        return precondition_failed;
    if ((status >= 400 && status < 500) || status == 507) // 507: the state is past --quota-bytes
        return refused;
    return server_error;
}

/// The server's {"error": ...} message; nothing when the body is not one (not raftkv's).
std::optional<std::string> error_message(const std::string& body)
{
    boost::system::error_code ec;
    const json::value doc = json::parse(body, ec);
    if (!ec && doc.is_object())
        if (const json::value* e = doc.as_object().if_contains("error"); e && e->is_string())
            return std::string(e->as_string());
    return std::nullopt;
}

std::string one_line(std::string_view text, std::size_t max);

/// Reports a failed answer on stderr and returns its exit code. An error that is not
/// raftkv's (another server at the endpoint, a proxy's page) is one the client does not
/// understand, whatever its status: a 404 from elsewhere says nothing of a key.
int fail(const answer& a)
{
    if (a.status == 0) {
        std::cerr << "raftkv: no endpoint served the request: " << a.body
                  << (a.outcome_unknown ? " (the request was sent: its outcome is unknown)" : "") << "\n";
        return code_for(a.status);
    }
    const std::optional<std::string> message = error_message(a.body);
    if (!message) {
        std::cerr << "raftkv: not an answer of raftkv's (HTTP " << a.status << " from " << a.from
                  << "): " << one_line(a.body, 200) << "\n";
        return server_error;
    }
    std::cerr << "raftkv: " << one_line(*message, 4096) << " (HTTP " << a.status << " from " << a.from
              << ")\n";
    return code_for(a.status);
}

/// `text` without control characters: an escape sequence from a body or a key must not
/// reach the terminal. Each is written \xNN, but newlines and tabs become spaces when
/// `spaces` is set.
std::string escaped(std::string_view text, bool spaces)
{
    std::string out;
    for (const char c : text) {
        if (spaces && (c == '\n' || c == '\r' || c == '\t')) {
            out += ' ';
        } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            constexpr char hex[] = "0123456789abcdef";
            out += std::string("\\x") + hex[(c >> 4) & 0xf] + hex[c & 0xf];
        } else {
            out += c;
        }
    }
    return out;
}

/// `text` on one line, at most `max` characters of it (for a table cell, an error line).
std::string one_line(std::string_view text, std::size_t max)
{
    return escaped(text.substr(0, max), true) + (text.size() > max ? "..." : "");
}

/// A key as an error message names it: a newline in it is \x0a, not a space, so that the
/// key shown is the key.
std::string shown_key(std::string_view key)
{
    return escaped(key, false);
}

/// The server's {"error": ...} message, or the body itself.
std::string message_of(const std::string& body)
{
    return error_message(body).value_or(body);
}

/// Whether `a` is raftkv's answer that the key is absent.
bool key_absent(const answer& a)
{
    return a.status == 404 && error_message(a.body).has_value();
}

/// The body of a 2xx answer as JSON; throws when it is not an object.
json::object parse_object(const answer& a)
{
    boost::system::error_code ec;
    json::value doc = json::parse(a.body, ec);
    if (ec || !doc.is_object())
        throw std::runtime_error("unexpected answer from " + a.from + ": " + a.body.substr(0, 200));
    return std::move(doc.as_object());
}

std::string text_of(const json::value& v)
{
    if (v.is_string())
        return std::string(v.as_string());
    if (v.is_null())
        return "-";
    return json::serialize(v);
}

const json::value& member_of(const json::object& o, std::string_view name)
{
    static const json::value null;
    const json::value* v = o.if_contains(name);
    return v ? *v : null;
}

/// Prints rows as columns two spaces apart, the first row being the heading.
/// Prints `rows` in columns. The last cell of a row shorter than the header (an error
/// message in place of the rest) runs on, and sets no column's width.
void print_table(const std::vector<std::vector<std::string>>& rows)
{
    std::vector<std::size_t> width;
    const std::size_t columns = rows.empty() ? 0 : rows.front().size();
    for (const auto& row : rows) {
        width.resize(std::max(width.size(), row.size()));
        for (std::size_t i = 0; i < row.size(); ++i)
            if (row.size() >= columns || i + 1 < row.size())
                width[i] = std::max(width[i], row[i].size());
    }
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size())
                line.append(width[i] - row[i].size() + 2, ' ');
        }
        std::cout << line << "\n";
    }
}

std::string key_target(const std::string& key)
{
    return "/kv/" + url_encode(key);
}

/// The value of option `name`, a decimal number: "-1" is refused rather than taken as 2^64-1.
std::uint64_t whole_number(const po::variables_map& vm, const std::string& name)
{
    const std::string& text = vm[name].as<std::string>();
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
        throw usage_failure("--" + name + ": expected a whole number, not '" + text + "'");
    return n;
}

std::uint64_t parse_id(const std::string& text)
{
    std::uint64_t id = 0;
    if (text.empty() || text.size() > 20 || text.find_first_not_of("0123456789") != std::string::npos)
        throw usage_failure("not a node id: '" + text + "'");
    try {
        id = std::stoull(text);
    } catch (const std::exception&) {
        throw usage_failure("not a node id: '" + text + "'");
    }
    if (id == 0)
        throw usage_failure("node ids start at 1");
    return id;
}

/// Prints a successful answer: the server's JSON with --json, else `human`.
int done(const context& ctx, const answer& a, const std::function<void(const json::object&)>& human)
{
    const json::object body = parse_object(a);
    if (ctx.json_output)
        std::cout << json::serialize(body) << "\n";
    else
        human(body);
    return ok;
}

// ---- Commands ---------------------------------------------------------------------------

struct command {
    std::string name;
    std::string synopsis;
    std::string summary;
    /// The command's own options (may be empty).
    std::function<void(po::options_description&)> options;
    /// The names of the positional arguments, in order.
    std::vector<std::string> arguments;
    std::function<int(context&, const po::variables_map&, const std::vector<std::string>&)> run;
    /// Whether it talks to the cluster: the context then has a client.
    bool needs_client = true;
};

using header_list = std::vector<std::pair<std::string, std::string>>;

/// The If-Match header of --if-match, if given.
header_list if_match_header(const po::variables_map& vm)
{
    if (!vm.count("if-match"))
        return {};
    const std::string& v = vm["if-match"].as<std::string>();
    if (v.empty() || v.size() > 20 || v.find_first_not_of("0123456789") != std::string::npos)
        throw usage_failure("--if-match: not a version (a decimal number): '" + v + "'");
    return {{"If-Match", "\"" + v + "\""}};
}

/// A client id for this invocation: 64 random bits, never 0, so that two invocations
/// (on any machine) practically never share one.
std::uint64_t random_client_id()
{
    std::random_device device;
    for (;;) {
        const std::uint64_t id = (std::uint64_t{device()} << 32) ^ std::uint64_t{device()};
        if (id != 0)
            return id;
    }
}

/// Adds the client session of the invocation's one write (a random client id, sequence 1)
/// to `headers`, unless --no-session; whether it did. Every attempt of the write carries
/// the same session, so the cluster applies it once however often it is sent
/// (docs/server.md, Exactly-once writes).
bool add_session(const po::variables_map& vm, header_list& headers)
{
    if (vm["no-session"].as<bool>())
        return false;
    headers.emplace_back("Raftkv-Client-Id", std::to_string(random_client_id()));
    headers.emplace_back("Raftkv-Sequence", "1");
    return true;
}

void add_session_option(po::options_description& d, bool put)
{
    d.add_options()("no-session", po::bool_switch(),
                    put ? "send the write without a client session: one whose outcome is unknown is then "
                          "not sent again (but for a plain put)"
                        : "send the delete without a client session: one whose outcome is unknown is "
                          "then not sent again");
}

int run_put(context& ctx, const po::variables_map& vm, const std::vector<std::string>& args)
{
    const json::object body{{"value", args[1]}};
    header_list headers = if_match_header(vm);
    if (vm["if-absent"].as<bool>()) {
        if (!headers.empty())
            throw usage_failure("--if-match and --if-absent: give one");
        headers.emplace_back("If-None-Match", "*");
    }
    // A conditional put sent again without a session after it may have been applied would
    // answer 412: send it once, as a delete. With a session the cluster answers a repeat as
    // it answered the first, so any put may be sent again.
    const bool conditional = !headers.empty();
    const bool session = add_session(vm, headers);
    const answer a =
        ctx.c->request("PUT", key_target(args[0]), json::serialize(body),
                       session || !conditional ? retry_policy::idempotent : retry_policy::once, headers);
    if (a.status != 200)
        return fail(a);
    return done(ctx, a, [](const json::object&) { std::cout << "OK\n"; });
}

// The query parameter that asks for --consistency ("" for the default, linearizable).
std::string consistency_param(const po::variables_map& vm)
{
    const std::string c = vm["consistency"].as<std::string>();
    if (c == "linearizable")
        return {};
    if (c == "lease" || c == "stale")
        return "consistency=" + c;
    throw usage_failure("--consistency: expected linearizable, lease or stale, not '" + c + "'");
}

void add_consistency_option(po::options_description& d)
{
    d.add_options()("consistency", po::value<std::string>()->default_value("linearizable"),
                    "linearizable (the default), lease (the leader's lease, else as "
                    "linearizable) or stale (the answering node's state, possibly behind)");
}

int run_get(context& ctx, const po::variables_map& vm, const std::vector<std::string>& args)
{
    const std::string param = consistency_param(vm);
    const std::string target = key_target(args[0]) + (param.empty() ? "" : "?" + param);
    const answer a = ctx.c->request("GET", target, {}, retry_policy::idempotent);
    if (key_absent(a)) {
        std::cerr << "raftkv: key not found: " << shown_key(args[0]) << " (HTTP 404 from " << a.from << ")\n";
        return not_found;
    }
    if (a.status != 200)
        return fail(a);
    const bool show_version = vm["show-version"].as<bool>();
    return done(ctx, a, [show_version, &a](const json::object& o) {
        if (!member_of(o, "value").is_string())
            throw std::runtime_error("unexpected answer from " + a.from + ": " + a.body.substr(0, 200));
        if (show_version)
            std::cout << text_of(member_of(o, "version")) << "\t";
        std::cout << text_of(member_of(o, "value")) << "\n";
    });
}

int run_del(context& ctx, const po::variables_map& vm, const std::vector<std::string>& args)
{
    header_list headers = if_match_header(vm);
    const bool session = add_session(vm, headers);
    const answer a = ctx.c->request("DELETE", key_target(args[0]), {},
                                    session ? retry_policy::idempotent : retry_policy::once, headers);
    if (key_absent(a)) {
        std::cerr << "raftkv: key not found: " << shown_key(args[0]) << " (HTTP 404 from " << a.from << ")\n";
        return not_found;
    }
    if (a.status != 200)
        return fail(a);
    return done(ctx, a, [](const json::object&) { std::cout << "OK\n"; });
}

// Follows the pages of GET /kv until the keys run out or --limit is reached; with --json
// prints one object of the server's shape holding every item listed.
int run_ls(context& ctx, const po::variables_map& vm, const std::vector<std::string>&)
{
    const std::string prefix = vm["prefix"].as<std::string>();
    const bool keys_only = vm["keys-only"].as<bool>();
    const std::string consistency = consistency_param(vm);
    std::uint64_t remaining = whole_number(vm, "limit"); // 0: no limit
    const bool limited = remaining != 0;
    std::string after;
    json::array items;
    bool more = true;
    while (more && (!limited || remaining > 0)) {
        const std::uint64_t page = limited ? std::min<std::uint64_t>(remaining, 1000) : 1000;
        std::string target = "/kv?limit=" + std::to_string(page);
        if (!prefix.empty())
            target += "&prefix=" + url_encode(prefix);
        if (!after.empty())
            target += "&after=" + url_encode(after);
        if (keys_only)
            target += "&keys_only=true";
        if (!consistency.empty())
            target += "&" + consistency;
        const answer a = ctx.c->request("GET", target, {}, retry_policy::idempotent);
        if (a.status != 200)
            return fail(a);
        json::object body = parse_object(a);
        json::value* got = body.if_contains("items");
        if (!got || !got->is_array())
            throw std::runtime_error("unexpected answer from " + a.from + ": no \"items\"");
        for (json::value& item : got->get_array()) {
            const json::object* o = item.if_object();
            if (!o || !o->contains("key"))
                throw std::runtime_error("unexpected answer from " + a.from + ": an item without a key");
            if (!ctx.json_output) {
                std::cout << text_of(o->at("key"));
                if (!keys_only)
                    std::cout << '\t' << text_of(member_of(*o, "value"));
                std::cout << '\n';
            }
            after = text_of(o->at("key"));
            if (limited)
                --remaining;
            if (ctx.json_output)
                items.push_back(std::move(item));
        }
        more = member_of(body, "more").is_bool() && member_of(body, "more").as_bool();
        if (more && got->get_array().empty())
            throw std::runtime_error("unexpected answer from " + a.from + ": more keys but none listed");
    }
    if (ctx.json_output) {
        json::object out{{"items", std::move(items)}, {"more", more}};
        if (more)
            out["next"] = after;
        std::cout << json::serialize(out) << "\n";
    }
    return ok;
}

// How often the server sends a progress line on a watch, and how long the client waits
// without any line before it takes the connection for dead and resumes elsewhere.
constexpr std::chrono::milliseconds watch_progress{5000};
constexpr std::chrono::milliseconds watch_silence{15000};

/// How long a backup's download may pause before it is given up.
constexpr std::chrono::milliseconds backup_silence{30000};

// Streams the changes to a key (or prefix) until interrupted, resuming after the last
// index seen whenever a stream ends: on the same endpoint after it delivered something,
// else on the next one, a second later. Gives up when every endpoint failed in a way that
// waiting does not mend: TLS refused (a certificate or CA problem), or a node removed.
int run_watch(context& ctx, const po::variables_map& vm, const std::vector<std::string>& args)
{
    const bool prefix = vm["prefix"].as<bool>();
    std::optional<std::uint64_t> from;
    if (const std::uint64_t n = whole_number(vm, "from"); n != 0)
        from = n;
    if (args[0].empty() && !prefix)
        throw usage_failure("watch: an empty KEY needs --prefix (to watch every key)");
    const std::vector<endpoint>& endpoints = ctx.c->endpoints();
    std::size_t at = 0;
    // The endpoints that answered 410 since the last change or progress line: a node that
    // restarted holds only what it applied since, while another may still hold the rest.
    std::vector<bool> gone(endpoints.size(), false);
    // The endpoints whose last answer was one of those that waiting does not mend.
    std::vector<bool> hopeless(endpoints.size(), false);
    for (;;) {
        const endpoint& e = endpoints[at % endpoints.size()];
        std::string target =
            "/watch/" + url_encode(args[0]) + "?progress_ms=" + std::to_string(watch_progress.count());
        if (prefix)
            target += "&prefix=true";
        if (from)
            target += "&from=" + std::to_string(*from);
        bool delivered = false;
        std::string pending; // a line not yet complete
        const auto on_data = [&](std::string_view data) {
            pending.append(data);
            std::size_t start = 0;
            for (std::size_t nl = pending.find('\n'); nl != std::string::npos;
                 nl = pending.find('\n', start)) {
                const std::string_view line(pending.data() + start, nl - start);
                start = nl + 1;
                boost::system::error_code ec;
                json::value doc = json::parse(line, ec);
                if (ec || !doc.is_object())
                    continue;
                const json::object& o = doc.as_object();
                const std::string type = text_of(member_of(o, "type"));
                if (type == "error") {
                    std::cerr << "raftkv: the watch ended: " << text_of(member_of(o, "error")) << "\n";
                    continue;
                }
                if (const json::value& i = member_of(o, "index"); i.is_number())
                    from = i.to_number<std::uint64_t>() + 1;
                delivered = true;
                if (type == "progress")
                    continue;
                if (ctx.json_output)
                    std::cout << line << std::endl;
                else
                    std::cout << text_of(member_of(o, "index")) << "\t" << type << "\t"
                              << text_of(member_of(o, "key"))
                              << (type == "put" ? "\t" + text_of(member_of(o, "value")) : std::string())
                              << std::endl;
            }
            pending.erase(0, start);
        };
        const answer a = ctx.c->stream(e, target, watch_silence, on_data);
        // Where the node started a watch without --from: resuming there elsewhere loses
        // nothing even if no line came before the stream ended.
        std::uint64_t started_at = 0;
        if (!from && !a.watch_from.empty() &&
            std::from_chars(a.watch_from.data(), a.watch_from.data() + a.watch_from.size(), started_at).ec ==
                std::errc{} &&
            started_at != 0)
            from = started_at;
        if (delivered)
            std::fill(gone.begin(), gone.end(), false);
        if (a.status == 410) {
            gone[at % endpoints.size()] = true;
            if (std::find(gone.begin(), gone.end(), false) != gone.end()) {
                std::cerr << "raftkv: " << e.url << ": " << message_of(a.body)
                          << "; trying the next endpoint\n";
                ++at;
                continue;
            }
        }
        if (a.status != 0 && a.status != 200 && a.status != 503)
            return fail(a); // 410 from every endpoint: the changes after the last index seen are gone
        hopeless[at % endpoints.size()] =
            (a.status == 0 && a.tls_refused) ||
            (a.status == 503 && a.body.find("it was removed and serves nothing") != std::string::npos);
        if (std::find(hopeless.begin(), hopeless.end(), false) == hopeless.end()) {
            answer last = a; // a stream's failure names no endpoint: say which one failed last
            if (last.status == 0)
                last.body = e.url + ": " + last.body;
            return fail(last);
        }
        if (a.status != 200)
            std::cerr << "raftkv: " << e.url << ": " << (a.status == 0 ? a.body : message_of(a.body))
                      << "; resuming" << (from ? " from index " + std::to_string(*from) : std::string())
                      << "\n";
        if (!delivered)
            ++at;
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
}

/// A file written through a descriptor, made durable and moved into place at the end:
/// written as FILE.part, which it holds locked (flock) from creation to rename, so that
/// a second backup to the same FILE is refused rather than write into the same file. A
/// FILE.part that a killed run left behind is taken over.
class backup_file {
public:
    explicit backup_file(std::filesystem::path path) : path_(std::move(path)), part_(path_.string() + ".part")
    {
        for (;;) {
            fd_ = ::open(part_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            if (fd_ < 0)
                throw local_failure("cannot create " + part_.string() + ": " + std::strerror(errno));
            if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
                const int error = errno;
                ::close(fd_);
                fd_ = -1;
                throw local_failure(error == EWOULDBLOCK
                                        ? "another backup is being written to " + path_.string() +
                                              " (it holds " + part_.string() + ")"
                                        : "cannot lock " + part_.string() + ": " + std::strerror(error));
            }
            // The run that held it may have renamed it into place meanwhile: then the name
            // is free again, for a file of this run's own.
            struct stat held {
            }, named{};
            if (::fstat(fd_, &held) == 0 && ::stat(part_.c_str(), &named) == 0 &&
                held.st_dev == named.st_dev && held.st_ino == named.st_ino)
                break;
            ::close(fd_);
            fd_ = -1;
        }
        restart();
    }
    ~backup_file()
    {
        if (!kept_) {
            std::error_code ignored;
            std::filesystem::remove(part_, ignored); // while it is still locked
        }
        if (fd_ >= 0)
            ::close(fd_);
    }
    backup_file(const backup_file&) = delete;
    backup_file& operator=(const backup_file&) = delete;

    /// Starts again from an empty file (another endpoint's answer replaces a cut one).
    void restart()
    {
        if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0)
            throw local_failure("cannot truncate " + part_.string() + ": " + std::strerror(errno));
    }

    void write(std::string_view data)
    {
        while (!data.empty()) {
            const ssize_t n = ::write(fd_, data.data(), data.size());
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                throw local_failure("cannot write " + part_.string() + ": " + std::strerror(errno));
            data.remove_prefix(static_cast<std::size_t>(n));
        }
    }

    /// Syncs the file and checks it whole: its header. Throws std::runtime_error (not a
    /// local_failure) when what was received is not a whole backup.
    raftkv::server::backup_header check(std::uint64_t& bytes)
    {
        if (::fsync(fd_) != 0)
            throw local_failure("cannot sync " + part_.string() + ": " + std::strerror(errno));
        return raftkv::server::verify_backup(part_, bytes);
    }

    /// Renames the checked file to its name, then lets it go.
    void keep()
    {
        std::error_code ec;
        std::filesystem::rename(part_, path_, ec);
        if (ec)
            throw local_failure("cannot rename " + part_.string() + " to " + path_.string() + ": " +
                                ec.message());
        kept_ = true;
        const std::filesystem::path dir = path_.has_parent_path() ? path_.parent_path() : ".";
        if (const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
            ::fsync(d);
            ::close(d);
        }
        ::close(fd_);
        fd_ = -1;
    }

private:
    std::filesystem::path path_, part_;
    int fd_ = -1;
    bool kept_ = false;
};

// Each endpoint in turn until one sends a whole backup, as other requests are retried
// (docs/cli.md, "Endpoints, retries and timeouts"): an endpoint that knows no leader (503)
// or sends a backup cut short or damaged is left for the next, and when every endpoint was
// asked and one of those may mend, all are asked again a second later, until --timeout.
// Each endpoint must begin its answer within its share of the time left; the download
// itself is given up only once nothing arrives for backup_silence.
int run_backup(context& ctx, const po::variables_map&, const std::vector<std::string>& args)
{
    if (args[0].empty())
        throw usage_failure("backup: FILE must not be empty");
    if (std::error_code ec; std::filesystem::is_directory(args[0], ec))
        throw local_failure("cannot write the backup to " + args[0] + ": it is a directory");
    backup_file file{args[0]};
    const std::vector<endpoint>& endpoints = ctx.c->endpoints();
    const auto deadline = std::chrono::steady_clock::now() + ctx.c->timeout();
    int failure = unavailable; // what the last endpoint's failure means, when none succeeds
    for (;;) {
        bool may_mend = false;
        for (std::size_t at = 0; at < endpoints.size(); ++at) {
            if (std::chrono::steady_clock::now() >= deadline)
                break;
            file.restart();
            const answer a = ctx.c->stream(
                endpoints[at], "/backup", backup_silence,
                [&file](std::string_view data) { file.write(data); },
                ctx.c->share_of(deadline, endpoints.size() - at));
            std::string problem;
            if (a.status == 200 && a.body.empty()) {
                std::uint64_t bytes = 0;
                try {
                    const raftkv::server::backup_header h = file.check(bytes);
                    file.keep();
                    if (ctx.json_output)
                        std::cout << json::serialize(json::object{{"file", args[0]},
                                                                  {"index", h.index},
                                                                  {"node", h.node},
                                                                  {"bytes", bytes},
                                                                  {"from", endpoints[at].url}})
                                  << "\n";
                    else
                        std::cout << "backup of index " << h.index << " from node " << h.node
                                  << " written to " << args[0] << " (" << bytes << " bytes)\n";
                    return ok;
                } catch (const local_failure&) {
                    throw;
                } catch (const std::runtime_error& e) {
                    problem = e.what(); // damaged on the way, or by the node: another may do
                    failure = server_error;
                    may_mend = true;
                }
            } else if (a.status != 0 && a.status != 200 && a.status != 503) {
                return fail(a);
            } else {
                problem = a.status == 0 || a.status == 200 ? a.body : message_of(a.body);
                failure = unavailable;
                may_mend = may_mend || a.status == 503 || a.status == 200;
            }
            std::cerr << "raftkv: " << endpoints[at].url << ": " << one_line(problem, 4096)
                      << (at + 1 < endpoints.size() ? "; trying the next endpoint" : "") << "\n";
        }
        if (!may_mend || std::chrono::steady_clock::now() + std::chrono::seconds(1) >= deadline)
            break;
        std::cerr << "raftkv: asking every endpoint again in a second\n";
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    std::cerr << "raftkv: no endpoint sent a whole backup\n";
    return failure;
}

// Bytes in binary units, as the cluster page shows them: 512 B, 1.5 KiB, 18 MiB.
std::string binary_size(double v)
{
    static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    std::size_t u = 0;
    while (v >= 1024 && u + 1 < std::size(units)) {
        v /= 1024;
        ++u;
    }
    char text[32];
    std::snprintf(text, sizeof text, u == 0 || v >= 10 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return text;
}

// A node's state on disk and its share of the node's --quota-bytes: "3.0 MiB 30%".
std::string state_text(const json::object& s)
{
    const json::value& bytes = member_of(s, "state_bytes");
    const json::value& quota = member_of(s, "quota_bytes");
    if (!bytes.is_number())
        return "-";
    const double b = bytes.to_number<double>();
    const double q = quota.is_number() ? quota.to_number<double>() : 0;
    return binary_size(b) + (q > 0 ? " " + std::to_string(static_cast<long long>(b * 100 / q)) + "%" : "");
}

// The last time the node stopped leading: "check_quorum (term 5)", or "-".
std::string stepped_down_text(const json::object& s)
{
    const json::value& d = member_of(s, "last_step_down");
    if (!d.is_object())
        return "-";
    const std::string reason = text_of(member_of(d.as_object(), "reason"));
    const json::value& from = member_of(d.as_object(), "from");
    return reason + (from.is_number() ? " " + text_of(from) : std::string()) + " (term " +
           text_of(member_of(d.as_object(), "term")) + ")";
}

// Asks each endpoint alone: the point is to see every node's own view.
int run_status(context& ctx, const po::variables_map&, const std::vector<std::string>&)
{
    std::vector<std::vector<std::string>> rows{{"ENDPOINT", "ID", "CLUSTER", "ROLE", "TERM", "LEADER",
                                                "COMMIT", "APPLIED", "STATE", "STORAGE", "STEPPED DOWN"}};
    json::array all;
    std::set<std::string> clusters;
    int code = ok;
    // Each endpoint its share of the timeout: one that never answers does not hold the rest.
    const auto started = std::chrono::steady_clock::now();
    const std::vector<endpoint>& endpoints = ctx.c->endpoints();
    for (std::size_t i = 0; i < endpoints.size(); ++i) {
        const endpoint& e = endpoints[i];
        const answer a = ctx.c->request_one(e, "GET", "/status", started, endpoints.size() - i);
        // Another server at the endpoint (its 404 page, a proxy's error, a body that is not
        // a status) is an answer the client does not understand: a row that says so, and
        // the other endpoints' rows all the same.
        std::optional<json::object> s;
        if (a.status == 200) {
            boost::system::error_code ec;
            json::value doc = json::parse(a.body, ec);
            if (!ec && doc.is_object())
                s = std::move(doc.as_object());
        }
        if (!s) {
            const std::optional<std::string> message = error_message(a.body);
            const std::string why = a.status == 0 ? a.body
                                    : message     ? "HTTP " + std::to_string(a.status) + ": " + *message
                                                  : "not an answer of raftkv's (HTTP " +
                                                    std::to_string(a.status) + "): " + one_line(a.body, 80);
            rows.push_back({e.url, "-", "error: " + why});
            all.push_back(json::object{{"endpoint", e.url}, {"error", why}});
            code = code != ok ? code : a.status == 0 || message ? code_for(a.status) : server_error;
            continue;
        }
        const json::value& storage = member_of(*s, "storage");
        const std::string cluster = text_of(member_of(*s, "cluster_id"));
        if (cluster != "-") // a server from before /status named its cluster
            clusters.insert(cluster);
        // A learner's Raft role is follower: it says learner.
        const json::value& learner = member_of(*s, "learner");
        const std::string role =
            learner.is_bool() && learner.as_bool() && text_of(member_of(*s, "role")) == "follower"
                ? "learner"
                : text_of(member_of(*s, "role"));
        rows.push_back({e.url, text_of(member_of(*s, "id")), cluster, role, text_of(member_of(*s, "term")),
                        text_of(member_of(*s, "leader")), text_of(member_of(*s, "commit_index")),
                        text_of(member_of(*s, "applied_index")), state_text(*s),
                        storage.is_object() ? text_of(member_of(storage.as_object(), "state")) : "-",
                        stepped_down_text(*s)});
        all.push_back(json::object{{"endpoint", e.url}, {"status", *s}});
    }
    if (ctx.json_output)
        std::cout << json::serialize(all) << "\n";
    else
        print_table(rows);
    // Nodes of different clusters behind one list of endpoints is a mistake worth a line of its
    // own: a wrong address, or a node left over from an earlier cluster.
    if (clusters.size() > 1)
        std::cerr << "raftkv: these endpoints belong to " << clusters.size() << " different clusters\n";
    return code;
}

void print_members(const json::object& o)
{
    const json::value& leader = member_of(o, "leader");
    std::vector<std::vector<std::string>> rows{{"ID", "ROLE", "RAFT", "HTTP", "LEADER"}};
    if (const json::value& members = member_of(o, "members"); members.is_array())
        for (const json::value& m : members.as_array()) {
            if (!m.is_object())
                continue;
            const json::object& mo = m.as_object();
            const bool leads = !leader.is_null() && member_of(mo, "id") == leader;
            rows.push_back({text_of(member_of(mo, "id")), text_of(member_of(mo, "role")),
                            text_of(member_of(mo, "raft")), text_of(member_of(mo, "http")),
                            leads ? "*" : ""});
        }
    print_table(rows);
}

/// Whether a GET /cluster/members answer came from a member: a node removed from the
/// cluster still answers, with the list it had then.
bool listed_by_a_member(const answer& a)
{
    const json::object o = parse_object(a);
    const json::value& self = member_of(o, "id");
    if (!self.is_number())
        return true; // a server from before the answer named its node
    if (const json::value& members = member_of(o, "members"); members.is_array())
        for (const json::value& m : members.as_array())
            if (m.is_object() && member_of(m.as_object(), "id") == self)
                return true;
    return false;
}

int run_members(context& ctx, const po::variables_map&, const std::vector<std::string>&)
{
    answer a = ctx.c->request("GET", "/cluster/members", {}, retry_policy::idempotent);
    if (a.status != 200)
        return fail(a);
    if (!listed_by_a_member(a))
        for (const endpoint& e : ctx.c->endpoints()) {
            if (e.url == a.from)
                continue;
            answer b = ctx.c->request_one(e, "GET", "/cluster/members");
            if (b.status == 200 && listed_by_a_member(b)) {
                a = std::move(b);
                break;
            }
        }
    const int code = done(ctx, a, print_members);
    if (code != ok || listed_by_a_member(a))
        return code;
    std::cerr << "raftkv: node " << text_of(member_of(parse_object(a), "id"))
              << " answered, and it is not a member (it was removed): this list may be out of date; ask a "
                 "member (--endpoints)\n";
    return unavailable;
}

/// An --http value: a URL or host:port, sent as host:port.
std::string http_address(const std::string& text)
{
    const std::optional<endpoint> e = parse_endpoint(text);
    if (!e)
        throw usage_failure("--http: not a URL or host:port: '" + text + "'");
    const bool v6 = e->host.find(':') != std::string::npos;
    return (v6 ? "[" + e->host + "]" : e->host) + ":" + std::to_string(e->port);
}

int run_member_add(context& ctx, const po::variables_map& vm, const std::vector<std::string>& args)
{
    json::object body{{"id", parse_id(args[0])}, {"raft", vm["raft"].as<std::string>()}};
    if (vm.count("http"))
        body["http"] = http_address(vm["http"].as<std::string>());
    body["learner"] = vm["learner"].as<bool>();
    const answer a = ctx.c->request("POST", "/cluster/members", json::serialize(body), retry_policy::once);
    if (a.status != 201 && a.status != 200)
        return fail(a);
    return done(ctx, a, [&](const json::object& o) {
        std::cout << "added node " << args[0]
                  << (vm["learner"].as<bool>() ? " as a learner\n" : " as a voter\n");
        print_members(o);
    });
}

int run_member_change(context& ctx, const std::string& method, const std::string& target,
                      const std::string& what)
{
    const answer a = ctx.c->request(method, target, {}, retry_policy::once);
    if (a.status != 200)
        return fail(a);
    return done(ctx, a, [&](const json::object& o) {
        std::cout << what << "\n";
        print_members(o);
    });
}

int run_member_remove(context& ctx, const po::variables_map&, const std::vector<std::string>& args)
{
    const std::string id = std::to_string(parse_id(args[0]));
    return run_member_change(ctx, "DELETE", "/cluster/members/" + id, "removed node " + id);
}

int run_member_update(context& ctx, const po::variables_map& vm, const std::vector<std::string>& args)
{
    const std::string id = std::to_string(parse_id(args[0]));
    json::object body;
    if (vm.count("raft"))
        body["raft"] = vm["raft"].as<std::string>();
    if (vm.count("http"))
        body["http"] = http_address(vm["http"].as<std::string>());
    if (body.empty())
        throw usage_failure("member update: give --raft, --http or both");
    const answer a =
        ctx.c->request("PATCH", "/cluster/members/" + id, json::serialize(body), retry_policy::idempotent);
    if (a.status != 200)
        return fail(a);
    return done(ctx, a, [&](const json::object& o) {
        const json::value& changed = member_of(o, "changed");
        if (changed.is_bool() && !changed.as_bool())
            std::cout << "node " << id << " has these addresses already: nothing changed\n";
        else
            std::cout << "updated node " << id << "\n";
        print_members(o);
    });
}

int run_member_promote(context& ctx, const po::variables_map&, const std::vector<std::string>& args)
{
    const std::string id = std::to_string(parse_id(args[0]));
    return run_member_change(ctx, "POST", "/cluster/members/" + id + "/promote", "promoted node " + id);
}

int print_version()
{
    std::cout << raftkv::server::version_line("raftkv") << "\n";
    return ok;
}

int run_version(context&, const po::variables_map&, const std::vector<std::string>&)
{
    return print_version();
}

int run_leader_transfer(context& ctx, const po::variables_map&, const std::vector<std::string>& args)
{
    const json::object body{{"id", parse_id(args[0])}};
    const answer a =
        ctx.c->request("POST", "/cluster/leader", json::serialize(body), retry_policy::idempotent);
    if (a.status != 200)
        return fail(a);
    return done(ctx, a, [](const json::object& o) {
        std::cout << "node " << text_of(member_of(o, "leader")) << " leads\n";
    });
}

const std::vector<command>& commands()
{
    static const std::vector<command> all = {
        {"put",
         "put KEY VALUE [--if-match V | --if-absent] [--no-session]",
         "Sets KEY to VALUE. Prints OK. With --if-match, only if KEY is at version V; with\n"
         "--if-absent, only if KEY does not exist; exit code 7 when that does not hold.\n"
         "Applied once however often it is retried (a client session), unless --no-session.",
         [](po::options_description& d) {
             d.add_options()("if-match", po::value<std::string>(), "only if KEY is at version V")(
                 "if-absent", po::bool_switch(), "only if KEY does not exist (create it)");
             add_session_option(d, true);
         },
         {"key", "value"},
         run_put},
        {"get",
         "get KEY [--show-version] [--consistency linearizable|lease|stale]",
         "Prints the value of KEY (a linearizable read unless --consistency says otherwise);\n"
         "exit code 2 when it is absent. With --show-version, prints its version, a tab, then\n"
         "the value.",
         [](po::options_description& d) {
             d.add_options()("show-version", po::bool_switch(), "print the version before the value");
             add_consistency_option(d);
         },
         {"key"},
         run_get},
        {"del",
         "del KEY [--if-match V] [--no-session]",
         "Deletes KEY. Prints OK; exit code 2 when it was absent. With --if-match, only if\n"
         "KEY is at version V; exit code 7 when it is not. Applied once however often it is\n"
         "retried (a client session), unless --no-session.",
         [](po::options_description& d) {
             d.add_options()("if-match", po::value<std::string>(), "only if KEY is at version V");
             add_session_option(d, false);
         },
         {"key"},
         run_del},
        {"ls",
         "ls [--prefix P] [--limit N] [--keys-only] [--consistency C]",
         "Lists keys in byte order, one per line with a tab and the value (a linearizable\n"
         "read per page; the pages are followed to the end or to --limit).",
         [](po::options_description& d) {
             d.add_options()("prefix", po::value<std::string>()->default_value(""),
                             "only keys starting with P")(
                 "limit", po::value<std::string>()->default_value("0"), "list at most N keys (0: all)")(
                 "keys-only", po::bool_switch(), "list the keys without their values");
             add_consistency_option(d);
         },
         {},
         run_ls},
        {"watch",
         "watch KEY [--prefix] [--from N]",
         "Prints each change to KEY (with --prefix: to every key starting with KEY; \"\"\n"
         "for all) as it is applied, one line each: index, put or delete, key and value\n"
         "(--json: the server's JSON lines), until interrupted. When the stream ends it\n"
         "resumes after the last index seen, on another endpoint if that one is gone.\n"
         "--from N starts with the changes at index N and later, if the node still holds them.",
         [](po::options_description& d) {
             d.add_options()("prefix", po::bool_switch(), "watch every key starting with KEY")(
                 "from", po::value<std::string>()->default_value("0"), "start at log index N (0: now)");
         },
         {"key"},
         run_watch},
        {"backup",
         "backup FILE",
         "Writes a backup of the cluster's key-value state to FILE: every write acknowledged\n"
         "before the command, as of one log index, taken by the first endpoint that can make a\n"
         "linearizable read. FILE is written whole or not at all (FILE.part, synced, checked,\n"
         "renamed). Start a new cluster from it with raftkv-server --restore-backup FILE.",
         {},
         {"file"},
         run_backup},
        {"status",
         "status",
         "Shows each endpoint's own /status, one row per endpoint; exit code 3 if one\ndid not answer.",
         {},
         {},
         run_status},
        {"members", "members", "Lists the cluster's members (the leader marked *).", {}, {}, run_members},
        {"member add",
         "member add ID --raft HOST:PORT [--http URL] [--learner]",
         "Adds node ID to the cluster, its Raft port at HOST:PORT and its HTTP API at\n"
         "URL; start the node afterwards with --join. Prints the new member list.",
         [](po::options_description& d) {
             d.add_options()("raft", po::value<std::string>()->required(), "the new node's Raft address")(
                 "http", po::value<std::string>(), "the new node's HTTP API (URL or host:port)")(
                 "learner", po::bool_switch(), "add it as a learner (promote it once it caught up)");
         },
         {"id"},
         run_member_add},
        {"member remove",
         "member remove ID",
         "Removes node ID from the cluster. Prints the new member list.",
         {},
         {"id"},
         run_member_remove},
        {"member update",
         "member update ID [--raft HOST:PORT] [--http URL]",
         "Records new addresses for member ID: where the members dial its Raft port (its\n"
         "--raft, as the others reach it) and where they forward HTTP requests to it. Give\n"
         "the new Raft address before moving a node, or while it is down; a running member\n"
         "publishes its own --advertise-http itself. Prints the new member list.",
         [](po::options_description& d) {
             d.add_options()("raft", po::value<std::string>(), "the member's new Raft address")(
                 "http", po::value<std::string>(), "the member's new HTTP API (URL or host:port)");
         },
         {"id"},
         run_member_update},
        {"member promote",
         "member promote ID",
         "Makes learner ID a voter. Prints the new member list.",
         {},
         {"id"},
         run_member_promote},
        {"leader transfer",
         "leader transfer ID",
         "Hands leadership to voter ID and waits until it leads.",
         {},
         {"id"},
         run_leader_transfer},
        {"version",
         "version",
         "Prints this client's version and the commit it was built from, as 'raftkv --version'\n"
         "does; asks no server.",
         {},
         {},
         run_version,
         false},
    };
    return all;
}

po::options_description global_options()
{
    po::options_description d("Global options");
    d.add_options()("endpoints", po::value<std::string>(),
                    "comma-separated URLs of the cluster's HTTP APIs, tried in turn\n"
                    "(default: $RAFTKV_ENDPOINTS, else http://127.0.0.1:8080)")(
        "cacert", po::value<std::string>(),
        "CA certificates (PEM) for https:// endpoints (default: the system's)")(
        "cert", po::value<std::string>(), "client certificate (PEM) to present over HTTPS")(
        "key", po::value<std::string>(), "the client certificate's private key (PEM)")(
        "token", po::value<std::string>(), "bearer token (default: $RAFTKV_TOKEN)")(
        "token-file", po::value<std::string>(), "read the bearer token from this file's first line")(
        "timeout", po::value<std::string>()->default_value("10s"),
        "time limit of each request, every endpoint and retry included (500ms, 10s, 1.5s; a bare "
        "number is seconds)")("json", po::bool_switch(), "print the server's JSON instead of text")(
        "help,h", po::bool_switch(), "show help (after a command: its help)")(
        "version", po::bool_switch(), "print the version and the commit it was built from, and exit");
    return d;
}

void usage(std::ostream& out)
{
    out << "Usage: raftkv [global options] COMMAND [ARGS]\n\nCommands:\n";
    for (const command& c : commands())
        out << "  " << c.synopsis << "\n";
    out << "\nRun 'raftkv COMMAND --help' for a command's details. Options may come anywhere;\n"
           "after '--' every word is an argument, even one that starts with '-'.\n\n"
        << global_options() << "\n"
        << exit_codes_text;
}

void command_usage(std::ostream& out, const command& c)
{
    out << "Usage: raftkv [global options] " << c.synopsis << "\n\n" << c.summary << "\n";
    if (c.options) {
        po::options_description d("Options");
        c.options(d);
        out << "\n" << d;
    }
    out << "\nRun 'raftkv --help' for the global options and the exit codes.\n";
}

// "500ms", "10s", "10" (seconds), "1.5s" or "0.25" (seconds, to the millisecond).
std::chrono::milliseconds parse_timeout(const std::string& text)
{
    const auto digits_from = [&](std::size_t at) {
        std::size_t end = at;
        while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end])))
            ++end;
        return end;
    };
    const std::size_t whole_end = digits_from(0);
    std::size_t end = whole_end;
    std::string fraction;
    if (end < text.size() && text[end] == '.') {
        end = digits_from(whole_end + 1);
        fraction = text.substr(whole_end + 1, end - whole_end - 1);
    }
    const std::string unit = text.substr(end);
    const bool has_point = end != whole_end;
    if (whole_end == 0 || whole_end > 9 || (has_point && (fraction.empty() || fraction.size() > 3)) ||
        (unit != "" && unit != "s" && unit != "ms") || (has_point && unit == "ms"))
        throw usage_failure("--timeout: expected a duration such as 500ms, 10s or 1.5s, not '" + text + "'");
    const long n = std::stol(text.substr(0, whole_end));
    fraction.resize(3, '0');
    const std::chrono::milliseconds t =
        unit == "ms" ? std::chrono::milliseconds(n)
                     : std::chrono::seconds(n) + std::chrono::milliseconds(std::stol(fraction));
    if (t.count() <= 0)
        throw usage_failure("--timeout must be positive");
    return t;
}

std::string read_token_file(const std::string& path)
{
    std::ifstream in(path);
    if (!in)
        throw usage_failure("--token-file: cannot read '" + path + "': " + std::strerror(errno));
    std::string line;
    if (!std::getline(in, line))
        throw usage_failure("--token-file: '" + path + "' is empty");
    const auto first = line.find_first_not_of(" \t\r");
    const auto last = line.find_last_not_of(" \t\r");
    if (first == std::string::npos)
        throw usage_failure("--token-file: '" + path + "' starts with an empty line");
    return line.substr(first, last - first + 1);
}

client_options make_client_options(const po::variables_map& vm)
{
    client_options o;
    std::string list = "http://127.0.0.1:8080";
    if (vm.count("endpoints"))
        list = vm["endpoints"].as<std::string>();
    else if (const char* env = std::getenv("RAFTKV_ENDPOINTS"); env && *env)
        list = env;
    std::stringstream in(list);
    for (std::string item; std::getline(in, item, ',');) {
        // Spaces around an item are allowed, as in the server's --peers.
        const std::size_t first = item.find_first_not_of(" \t");
        item = first == std::string::npos ? std::string()
                                          : item.substr(first, item.find_last_not_of(" \t") - first + 1);
        if (item.empty())
            continue;
        const std::optional<endpoint> e = parse_endpoint(item);
        if (!e)
            throw usage_failure("--endpoints: '" + item +
                                "' is not an endpoint: expected http://HOST:PORT, https://HOST:PORT or "
                                "HOST:PORT, the port included");
        o.endpoints.push_back(*e);
    }
    if (o.endpoints.empty())
        throw usage_failure("--endpoints: no endpoint");
    const auto text = [&vm](const char* name) {
        return vm.count(name) ? vm[name].as<std::string>() : std::string();
    };
    o.cacert = text("cacert");
    o.cert = text("cert");
    o.key = text("key");
    if (o.cert.empty() != o.key.empty())
        throw usage_failure("--cert and --key go together");
    // Read when an endpoint is https://, and checked here whatever the endpoints: a path
    // typed wrong is a usage error at once, not when an https:// endpoint is added.
    for (const auto& [flag, path] :
         {std::pair{"--cacert", &o.cacert}, {"--cert", &o.cert}, {"--key", &o.key}})
        if (!path->empty() && !std::ifstream(*path))
            throw usage_failure(std::string(flag) + ": cannot read " + *path + ": " + std::strerror(errno));
    if (vm.count("token") && vm.count("token-file"))
        throw usage_failure("--token and --token-file: give one");
    if (vm.count("token"))
        o.token = vm["token"].as<std::string>();
    else if (vm.count("token-file"))
        o.token = read_token_file(vm["token-file"].as<std::string>());
    else if (const char* env = std::getenv("RAFTKV_TOKEN"); env)
        o.token = env;
    o.timeout = parse_timeout(vm["timeout"].as<std::string>());
    return o;
}

/// Finds the command the words name ("member add" takes two); nullptr if none.
const command* find_command(const std::vector<std::string>& words, std::size_t& used)
{
    for (const command& c : commands()) {
        const bool two = c.name.find(' ') != std::string::npos;
        const std::string name = two && words.size() >= 2 ? words[0] + " " + words[1] : words[0];
        if (name == c.name) {
            used = two ? 2 : 1;
            return &c;
        }
    }
    return nullptr;
}

int run(int argc, char** argv)
{
    po::options_description global = global_options();
    po::options_description hidden;
    hidden.add_options()("words", po::value<std::vector<std::string>>());
    po::options_description all;
    all.add(global).add(hidden);
    po::positional_options_description positional;
    positional.add("words", -1);
    // Everything after "--" is an argument, even if it starts with '-'.
    std::vector<std::string> words(argv + 1, argv + argc);
    const auto dashes = std::find(words.begin(), words.end(), "--");
    std::vector<std::string> trailing(dashes == words.end() ? dashes : dashes + 1, words.end());
    words.erase(dashes, words.end());
    const po::parsed_options parsed =
        po::command_line_parser(words).options(all).positional(positional).allow_unregistered().run();
    po::variables_map vm;
    po::store(parsed, vm);
    po::notify(vm);

    // Everything not global, in order: the command's words, its arguments and options.
    std::vector<std::string> rest = po::collect_unrecognized(parsed.options, po::include_positional);
    // Options before the command are global; one the client does not know is left first.
    if (!rest.empty() && rest[0].size() > 1 && rest[0][0] == '-')
        throw usage_failure("unknown option '" + rest[0] + "' (run 'raftkv --help')");
    if (vm["version"].as<bool>() && !vm["help"].as<bool>())
        return print_version();
    if (rest.empty() && !trailing.empty())
        rest.swap(trailing);
    if (rest.empty()) {
        if (vm["help"].as<bool>()) {
            usage(std::cout);
            return ok;
        }
        usage(std::cerr);
        return usage_error;
    }
    std::size_t used = 0;
    const command* cmd = find_command(rest, used);
    if (!cmd) {
        // "member" and "leader" name groups of commands: say which.
        std::string group;
        for (const command& c : commands())
            if (c.name.starts_with(rest[0] + " "))
                group += (group.empty() ? "" : ", ") + c.name;
        if (!group.empty() && rest.size() == 1 && vm["help"].as<bool>()) {
            // "raftkv member --help": the help of each command of the group.
            bool first = true;
            for (const command& c : commands())
                if (c.name.starts_with(rest[0] + " ")) {
                    if (!std::exchange(first, false))
                        std::cout << "\n";
                    command_usage(std::cout, c);
                }
            return ok;
        }
        if (!group.empty())
            throw usage_failure(rest.size() == 1 ? "'" + rest[0] + "' needs a subcommand: " + group
                                                 : "unknown command '" + rest[0] + " " + rest[1] +
                                                       "': the '" + rest[0] + "' commands are " + group);
        throw usage_failure("unknown command '" + rest[0] + "' (run 'raftkv --help')");
    }
    if (vm["help"].as<bool>()) {
        command_usage(std::cout, *cmd);
        return ok;
    }
    rest.erase(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(used));

    po::options_description own("Options");
    if (cmd->options)
        cmd->options(own);
    own.add_options()("args", po::value<std::vector<std::string>>());
    po::positional_options_description args_positional;
    args_positional.add("args", -1);
    po::variables_map cvm;
    po::store(po::command_line_parser(rest).options(own).positional(args_positional).run(), cvm);
    std::vector<std::string> args =
        cvm.count("args") ? cvm["args"].as<std::vector<std::string>>() : std::vector<std::string>{};
    args.insert(args.end(), trailing.begin(), trailing.end());
    // The arguments before the options: a missing ID is what to say, not a missing --raft.
    if (args.size() != cmd->arguments.size())
        throw usage_failure(cmd->name + ": expected " + std::to_string(cmd->arguments.size()) +
                            " argument(s), got " + std::to_string(args.size()) + " (usage: raftkv " +
                            cmd->synopsis + ")");
    po::notify(cvm);

    context ctx;
    ctx.json_output = vm["json"].as<bool>();
    if (!cmd->needs_client)
        return cmd->run(ctx, cvm, args);
    try {
        ctx.c = std::make_unique<client>(make_client_options(vm));
    } catch (const usage_failure&) {
        throw;
    } catch (const std::runtime_error& e) {
        throw usage_failure(e.what());
    }
    return cmd->run(ctx, cvm, args);
}

} // namespace

int main(int argc, char** argv)
{
    try {
        return run(argc, argv);
    } catch (const usage_failure& e) {
        std::cerr << "raftkv: " << e.what() << "\n";
        return usage_error;
    } catch (const po::error& e) {
        std::cerr << "raftkv: " << e.what() << " (run 'raftkv --help')\n";
        return usage_error;
    } catch (const local_failure& e) {
        std::cerr << "raftkv: " << e.what() << "\n";
        return local_error;
    } catch (const std::exception& e) {
        std::cerr << "raftkv: " << e.what() << "\n";
        return server_error;
    }
}
