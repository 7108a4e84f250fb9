#include "config.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/program_options/options_description.hpp>
#include <boost/program_options/parsers.hpp>
#include <boost/program_options/value_semantic.hpp>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <system_error>
#include <vector>

namespace raftkv::server {

namespace {

namespace po = boost::program_options;

// The width --help is wrapped to.
constexpr unsigned help_width = 80;

// Every setting: a flag --<name> and a config-file key <name>, in the order --help lists
// them. A new setting is a line here (its value placeholder and help), its check in
// build_config() below, a field of server_config and a paragraph of docs/server.md.
struct setting {
    std::string_view name;
    std::string_view value;
    std::string_view help;
};

constexpr std::array settings = {
    setting{"id", "N", "this node's id, an integer from 1 (default: 1)"},
    setting{"data-dir", "DIR",
            "where the Raft log (DIR/wal) and the key-value state (DIR/state) are kept (default: "
            "./raftkv-data)"},
    setting{"http", "HOST:PORT",
            "where the HTTP API listens (default: where the node last listened, else 127.0.0.1:8080)"},
    setting{"advertise-http", "HOST:PORT",
            "the HTTP address other nodes forward requests to while this node leads; required in a "
            "cluster when --http is 0.0.0.0 or [::] (default: what the node last advertised, unless "
            "--http moves it; else --http)"},
    setting{"raft", "HOST:PORT",
            "where Raft connections from the other nodes are accepted (default: this node's entry in "
            "--peers, else 127.0.0.1:9080)"},
    setting{"peers", "ID=HOST:PORT,...",
            "the Raft address of every member, this node included; give every node the same list. "
            "Recorded in DIR/identity at the first start; later it may be left out, and if given must "
            "be the recorded list (default: the recorded list, else just this node at --raft)"},
    setting{"join", "http[s]://HOST:PORT",
            "join a running cluster through one of its members, which must have added this node "
            "first (POST /cluster/members); needs an empty data directory, learns the cluster's id "
            "and members from it; not with --peers. https:// needs --cert and --key (presented to "
            "the member, whose certificate must chain to --forward-ca, else --client-ca, else the "
            "system's CAs); http:// is for a plain cluster"},
    setting{"restore-backup", "FILE",
            "start a new cluster from a backup (raftkv backup FILE): its keys, values and versions, "
            "the log continuing after its index; needs an empty data directory, not with --join. "
            "Alone, or with --peers on every member, each restoring the same backup"},
    setting{"force-new-cluster", "CLUSTER-ID",
            "for a cluster that lost a majority of its voters for good: make this stopped member, "
            "with its data, the only member of a new cluster (a new cluster id), keeping every entry "
            "of its log; give the id of the cluster it leaves (GET /cluster/members, DIR/identity), "
            "and start it without this flag afterwards; --peers, if given, names this node alone"},
    setting{"cluster-token", "TOKEN",
            "mixed into the id of a new cluster, so that clusters bootstrapped with the same --peers "
            "refuse each other's nodes; on a restart, the recorded one or none"},
    setting{"tick-ms", "MS", "the Raft clock's tick (default: 10)"},
    setting{"election-ticks", "N",
            "election timeout: a random 1x to 2x this many ticks without a leader (default: 30)"},
    setting{"heartbeat-ticks", "N",
            "leader heartbeat interval in ticks, less than --election-ticks (default: 5)"},
    setting{"request-timeout-ms", "MS",
            "how long a write or read waits for the cluster before answering 503 (default: 5000)"},
    setting{"health-timeout-ms", "MS",
            "how long GET /health waits for a linearizable read through the cluster before answering "
            "503, unless the request asks ?timeout= (default: 1000, at most 30000)"},
    setting{"health-reuse-ms", "MS",
            "how long a health check's read result also answers the checks that follow (default: 100; "
            "0: only those in flight)"},
    setting{"snapshot-entries", "N",
            "snapshot the key-value state after this many applied writes and drop the log behind it; "
            "0: never (the log then grows without bound) (default: 10000)"},
    setting{"snapshot-catchup-entries", "N",
            "entries kept in the log behind a snapshot, so that a follower a little behind catches up "
            "from the log (default: 5000)"},
    setting{"snapshot-catchup-bytes", "N",
            "the most command bytes kept in the log behind a snapshot, fewer entries than "
            "--snapshot-catchup-entries when they are large; 0: no limit by size; at most "
            "1099511627776, 1 TiB (default: 67108864, 64 MiB)"},
    setting{"snapshot-hold-bytes", "N",
            "the most command bytes of log a leader keeps for a follower it sends a snapshot to, or "
            "that catches up after one; past it the follower gets a newer snapshot; 0: no limit; at "
            "most 1099511627776, 1 TiB (default: 536870912, 512 MiB)"},
    setting{"quota-bytes", "N",
            "the most bytes the key-value state's tables may take on disk: past it, writes other than "
            "deletes are answered 507 until deletes bring it back under; 0: no quota; else 1048576 "
            "to 1125899906842624, 1 PiB (default: 8589934592, 8 GiB)"},
    setting{"auth-tokens", "FILE",
            "require \"Authorization: Bearer TOKEN\" on every HTTP request but GET /health, /livez "
            "and /readyz (and the cluster page's files, /ui); FILE has one token per line, \"TOKEN "
            "read|write [NAME]\" ('#' comments); a read token may only "
            "GET. Give every member the same file (default: none, no authorization)"},
    setting{"log-level", "LEVEL", "error, warn, info or debug (default: info)"},
    setting{"log-format", "FORMAT", "text, or json for one JSON object per line (default: text)"},
    setting{"threads", "N",
            "threads serving HTTP and Raft connections; the Raft node itself runs on one of them at a "
            "time (default: 2)"},
    setting{"max-connections", "N",
            "HTTP connections open at once; one more closes the longest-idle one, or is answered 503 "
            "and closed when none is idle (default: 4096)"},
    setting{"max-pending-body-bytes", "N",
            "bytes of HTTP request bodies being received at once, over all connections, counted as "
            "they arrive; a request whose body does not fit is answered 503; 6356992 to "
            "1099511627776, 1 TiB (default: 67108864, 64 MiB)"},
    setting{"watch-history-entries", "N",
            "changes each node keeps in memory for GET /watch to replay (?from=); 1 to 100000000 "
            "(default: 100000)"},
    setting{"watch-history-bytes", "N",
            "bytes of keys and values each node keeps in memory for GET /watch to replay; 1048576 "
            "to 1099511627776 (default: 67108864, 64 MiB)"},
    setting{"max-watchers", "N",
            "GET /watch streams open at once on a node; one more is answered 503; 1 to 1000000 "
            "(default: 1024)"},
    setting{"watch-buffer-bytes", "N",
            "bytes of changes a watch may fall behind the node before it is ended with the index "
            "to resume from; 65536 to 1073741824 (default: 8388608, 8 MiB)"},
    setting{"http-header-timeout-ms", "MS",
            "an HTTP request's header must arrive whole within this long of its first byte, else "
            "the connection is closed; 100 to 3600000 (default: 10000)"},
    setting{"http-body-timeout-ms", "MS",
            "an HTTP request's body must arrive whole within this long of the end of its header, "
            "else the connection is closed; 100 to 3600000 (default: 60000)"},
    setting{"http-idle-timeout-ms", "MS",
            "an HTTP connection with every request answered is closed after this long without a "
            "next one; also the limit on writing one response; 100 to 3600000 (default: 60000)"},
    setting{"http-handshake-timeout-ms", "MS",
            "with --cert: a TLS handshake must complete within this long, else the connection is "
            "closed; 100 to 3600000 (default: 10000)"},
    setting{"raft-frame-timeout-ms", "MS",
            "the rest of a Raft frame must arrive within this long of its header, else the peer is "
            "disconnected; 100 to 3600000 (default: 30000)"},
    setting{"raft-greeting-timeout-ms", "MS",
            "an accepted Raft connection must send its greeting within this long, else it is "
            "closed; 100 to 3600000 (default: 5000)"},
    setting{"raft-max-ungreeted", "N",
            "accepted Raft connections waiting for their greeting at once; more are closed at "
            "once; 1 to 65536 (default: 32)"},
    setting{"cert", "FILE",
            "serve the HTTP API over TLS only (HTTPS), with this PEM certificate chain; with --key "
            "(default: plain HTTP)"},
    setting{"key", "FILE", "the private key (PEM) of --cert; both or neither"},
    setting{"client-ca", "FILE",
            "with --cert: HTTPS clients must present a certificate signed by a CA in this PEM file "
            "(default: none asked for)"},
    setting{"forward-ca", "FILE",
            "with --cert: the CAs trusted for the leader's certificate when forwarding to it over "
            "HTTPS (default: --client-ca, else the system's CAs)"},
    setting{"peer-cert", "FILE",
            "peer TLS: this node's certificate (PEM), whose subject CN must be raftkv-node-<id>; with "
            "--peer-key and --peer-ca, every Raft connection is mutual TLS (default: plain TCP)"},
    setting{"peer-key", "FILE", "peer TLS: the private key of --peer-cert (PEM)"},
    setting{"peer-ca", "FILE", "peer TLS: the CA (PEM) every peer's certificate must chain to"},
};

bool is_setting(std::string_view name)
{
    return std::find_if(settings.begin(), settings.end(),
                        [name](const setting& s) { return s.name == name; }) != settings.end();
}

// A setting as written, before validation; `where` names its source in error messages
// ("--id" or "raftkv.yaml: id").
struct raw_value {
    std::string where;
    std::string text;
};

// The YAML form of peers: a map of id to address.
struct raw_peer_map {
    std::string where;
    std::vector<std::pair<std::string, std::string>> entries;
};

struct raw_settings {
    std::map<std::string, raw_value, std::less<>> values;
    std::optional<raw_peer_map> peer_map;

    // Lets `over` replace whatever it sets.
    void override_with(const raw_settings& over)
    {
        for (const auto& [name, value] : over.values) {
            values[name] = value;
            if (name == "peers")
                peer_map.reset();
        }
        if (over.peer_map) {
            peer_map = over.peer_map;
            values.erase("peers");
        }
    }

    const raw_value* find(std::string_view name) const
    {
        const auto it = values.find(name);
        return it == values.end() ? nullptr : &it->second;
    }
};

// `s` with its control characters escaped (\n, \t, \x01...): an error message quotes what
// the operator wrote, and must stay one line whatever that holds.
std::string printable(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u != 0x7f) {
            out.push_back(c);
        } else if (c == '\n') {
            out.append("\\n");
        } else if (c == '\t') {
            out.append("\\t");
        } else {
            static constexpr char hex[] = "0123456789abcdef";
            out.append("\\x").append(1, hex[u >> 4]).append(1, hex[u & 15]);
        }
    }
    return out;
}

std::string in_quotes(std::string_view s)
{
    // Not "'" + std::string(s) + "'": GCC 12 at -O3 reports a false -Wrestrict on it.
    std::string out;
    out.reserve(s.size() + 2);
    out.append(1, '\'').append(printable(s)).append(1, '\'');
    return out;
}

std::string one_line(std::string s)
{
    std::replace(s.begin(), s.end(), '\n', ' ');
    return printable(s);
}

template <class T>
std::optional<T> parse_unsigned(std::string_view text)
{
    T value = 0;
    if (text.empty())
        return std::nullopt;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

bool is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

bool is_ipv6_char(char c)
{
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' || c == '.';
}

std::string_view trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// ---- Command line ------------------------------------------------------------------

// The flags: every setting, then those that only exist on the command line. Values stay
// text here; build_config() checks them, whichever source they came from.
po::options_description flag_descriptions()
{
    po::options_description flags("Flags (each also a key of the config file; flags override the file)",
                                  help_width);
    auto add = flags.add_options();
    for (const setting& s : settings)
        add(std::string(s.name).c_str(), po::value<std::string>()->value_name(std::string(s.value)),
            std::string(s.help).c_str());
    add("config", po::value<std::string>()->value_name("FILE"), "read settings from a YAML file first");
    add("inspect",
        "print what the data directory holds (the node's identity, its log's indexes and last term, the "
        "configuration at the log's end, the state's applied index) and exit; the node must be stopped");
    add("version", "print the version and the commit it was built from, and exit");
    add("help", "print this help and exit (also -h)");
    return flags;
}

// "--" where it stands for a flag: Program_options would take it as the end of the flags
// and drop it; every argument here is a flag or a flag's value, so it is an unexpected one.
std::vector<po::option> double_dash_as_argument(std::vector<std::string>& args)
{
    std::vector<po::option> out;
    if (!args.empty() && args.front() == "--") {
        po::option o;
        o.value.push_back(args.front());
        o.original_tokens.push_back(args.front());
        out.push_back(std::move(o));
        args.erase(args.begin());
    }
    return out;
}

// Reads flags into `out` and the --config file name into `config_file`; returns an error.
// Program_options splits the arguments into flags and values ("--id 2", "--id=2"); the
// checks here run in argument order, so the first problem is the one reported.
std::string read_flags(const std::vector<std::string>& args, raw_settings& out,
                       std::optional<std::string>& config_file, bool& inspect)
{
    namespace style = po::command_line_style;
    const po::options_description flags = flag_descriptions();
    po::parsed_options parsed(&flags);
    try {
        parsed = po::command_line_parser(args)
                     .options(flags)
                     .style(style::allow_long | style::long_allow_adjacent | style::long_allow_next)
                     .extra_style_parser(double_dash_as_argument)
                     .allow_unregistered()
                     .run();
    } catch (const po::invalid_command_line_syntax& e) {
        if (e.kind() == po::invalid_command_line_syntax::missing_parameter ||
            e.kind() == po::invalid_command_line_syntax::empty_adjacent_parameter)
            return "flag " + printable(e.get_option_name()) + " needs a value";
        if (e.kind() == po::invalid_command_line_syntax::extra_parameter)
            return "flag " + printable(e.get_option_name()) + " takes no value";
        return one_line(e.what());
    } catch (const po::error& e) {
        return one_line(e.what());
    }
    for (const po::option& o : parsed.options) {
        const std::string& name = o.string_key;
        if (o.unregistered)
            return "unknown flag " + in_quotes("--" + name) + " (see --help)";
        if (name == "inspect") {
            inspect = true; // a flag, not a setting: only parse_arguments() acts on it
            continue;
        }
        if (name == "help" || name == "version")
            continue; // parse_arguments() answered these before reading the flags
        if (name.empty())
            return "unexpected argument " +
                   in_quotes(o.original_tokens.empty() ? "" : o.original_tokens.front()) + " (see --help)";
        // An empty value ("--id ''") arrives as none.
        const std::string value = o.value.empty() ? std::string() : o.value.front();
        const bool repeated = name == "config" ? config_file.has_value() : out.values.count(name) > 0;
        if (repeated)
            return "flag --" + name + " is given more than once";
        if (name == "config")
            config_file = value;
        else
            out.values[name] = raw_value{"--" + name, value};
    }
    return {};
}

// ---- Config file -------------------------------------------------------------------

std::string read_file(const std::string& file, std::string& contents)
{
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec))
        return "cannot read config file " + in_quotes(file) + ": it is a directory";
    std::ifstream in(file, std::ios::binary);
    if (!in)
        return "cannot read config file " + in_quotes(file) + ": " + std::strerror(errno);
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad())
        return "cannot read config file " + in_quotes(file) + ": read error";
    contents = buffer.str();
    return {};
}

// A scalar's text, or an error naming `where`.
std::string scalar_of(const YAML::Node& node, const std::string& where, std::string& text)
{
    if (node.IsNull())
        return where + ": needs a value";
    if (!node.IsScalar())
        return where + ": must be a single value, not a list or a map";
    text = node.Scalar();
    return {};
}

std::string read_peer_map(const YAML::Node& node, const std::string& where, raw_peer_map& out)
{
    out.where = where;
    for (const auto& entry : node) {
        std::string id;
        std::string address;
        if (std::string e = scalar_of(entry.first, where + " (an id)", id); !e.empty())
            return e;
        if (std::string e = scalar_of(entry.second, where + ": " + printable(id), address); !e.empty())
            return e;
        out.entries.emplace_back(id, address);
    }
    return {};
}

std::string read_yaml_settings(const YAML::Node& root, const std::string& file, raw_settings& out)
{
    if (root.IsNull())
        return {}; // an empty file sets nothing
    if (!root.IsMap())
        return file + ": must be a map of settings (key: value)";
    std::set<std::string> seen;
    for (const auto& entry : root) {
        std::string key;
        if (std::string e = scalar_of(entry.first, file + ": a key", key); !e.empty())
            return e;
        if (!is_setting(key))
            return file + ": unknown key " + in_quotes(key) + " (see --help)";
        if (!seen.insert(key).second)
            return file + ": key " + in_quotes(key) + " is given more than once";
        const std::string where = file + ": " + key;
        if (key == "peers" && entry.second.IsMap()) {
            raw_peer_map map;
            if (std::string e = read_peer_map(entry.second, where, map); !e.empty())
                return e;
            out.peer_map = std::move(map);
            continue;
        }
        std::string text;
        if (std::string e = scalar_of(entry.second, where, text); !e.empty())
            return e;
        out.values[key] = raw_value{where, text};
    }
    return {};
}

// Receives a YAML document's events and keeps nothing.
class ignore_events final : public YAML::EventHandler {
public:
    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override
    {
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override
    {
    }
    void OnMapEnd() override {}
};

// Every document of `text`; nothing when the parser stops advancing. For some malformed
// texts (",W22=2") yaml-cpp's parser reports one empty document after another without
// consuming anything, and YAML::LoadAll() then never returns. A text of n bytes holds at
// most n + 1 documents, so the documents are counted first, within that bound.
std::optional<std::vector<YAML::Node>> load_documents(const std::string& text)
{
    std::istringstream in(text);
    YAML::Parser parser(in);
    ignore_events ignore;
    for (std::size_t n = 0; parser.HandleNextDocument(ignore);)
        if (++n > text.size() + 1)
            return std::nullopt;
    return YAML::LoadAll(text);
}

// `contents` is the text of the config file `file_name` (named in the messages).
std::string read_config_text(std::string_view contents, const std::string& file_name, raw_settings& out)
{
    const std::string file = printable(file_name);
    try {
        // Every document, so that settings after a '---' are refused rather than ignored.
        std::optional<std::vector<YAML::Node>> loaded = load_documents(std::string(contents));
        if (!loaded)
            return file + ": not valid YAML (the parser stops advancing)";
        std::vector<YAML::Node>& documents = *loaded;
        std::erase_if(documents, [](const YAML::Node& d) { return d.IsNull(); });
        if (documents.size() > 1)
            return file + ": holds " + std::to_string(documents.size()) +
                   " YAML documents (separated by ---); put every setting in one";
        return read_yaml_settings(documents.empty() ? YAML::Node() : documents.front(), file, out);
    } catch (const YAML::Exception& e) {
        if (e.mark.is_null())
            return file + ": " + one_line(e.msg);
        return file + ": line " + std::to_string(e.mark.line + 1) + ", column " +
               std::to_string(e.mark.column + 1) + ": " + one_line(e.msg);
    }
}

std::string read_config_file(const std::string& file, raw_settings& out)
{
    std::string contents;
    if (std::string e = read_file(file, contents); !e.empty())
        return e;
    return read_config_text(contents, file, out);
}

// ---- Validation --------------------------------------------------------------------

// Far beyond any useful setting, and small enough to read at a glance in the error message.
constexpr std::uint64_t max_snapshot_entries = 1'000'000'000;
constexpr std::uint64_t max_snapshot_catchup_bytes = std::uint64_t{1} << 40;

// The HTTP server's largest request body (http_server_options::body_limit): the pending-body
// budget must hold at least one.
constexpr std::uint64_t largest_request_body = (std::uint64_t{6} << 20) + 64 * 1024;
constexpr std::uint64_t max_pending_body_bytes = std::uint64_t{1} << 40;

// The bounds of the hostile-input deadlines (--http-*-timeout-ms, --raft-*-timeout-ms): short
// enough to cut a slow client off quickly, never so short that a tick of scheduling delay
// closes an honest one, nor longer than an hour.
constexpr std::uint32_t min_limit_timeout_ms = 100;
constexpr std::uint32_t max_limit_timeout_ms = 3'600'000;

template <class T>
std::string check_number(const raw_settings& s, std::string_view name, T lo, T hi, T& out)
{
    const raw_value* v = s.find(name);
    if (!v)
        return {};
    const auto n = parse_unsigned<T>(v->text);
    if (!n || *n < lo || *n > hi)
        return v->where + ": " + in_quotes(v->text) + " is not an integer from " + std::to_string(lo) +
               " to " + std::to_string(hi);
    out = *n;
    return {};
}

std::string check_address(const raw_settings& s, std::string_view name, host_port& out)
{
    const raw_value* v = s.find(name);
    if (!v)
        return {};
    const auto a = parse_host_port(v->text);
    if (!a)
        return v->where + ": " + in_quotes(v->text) + " is not host:port (with a port from 1 to 65535)";
    out = *a;
    return {};
}

std::string check_identity(const raw_settings& s, server_config& c)
{
    if (const raw_value* v = s.find("id")) {
        const auto id = parse_node_id(v->text);
        if (!id)
            return v->where + ": " + in_quotes(v->text) + " is not a node id (an integer from 1 to " +
                   std::to_string(UINT64_MAX) + ")";
        c.id = *id;
    }
    if (const raw_value* v = s.find("data-dir")) {
        if (v->text.empty())
            return v->where + ": the data directory must not be empty";
        c.data_dir = v->text;
    }
    if (std::string e = check_address(s, "http", c.http); !e.empty())
        return e;
    c.http_given = s.find("http") != nullptr;
    c.advertise_http = c.http;
    if (std::string e = check_address(s, "advertise-http", c.advertise_http); !e.empty())
        return e;
    c.advertise_http_given = s.find("advertise-http") != nullptr;
    if (c.advertise_http_given && is_wildcard(c.advertise_http))
        return s.find("advertise-http")->where + ": " + in_quotes(c.advertise_http.to_string()) +
               " is a wildcard address; give the address other nodes reach this one at";
    if (const raw_value* v = s.find("cluster-token")) {
        if (v->text.empty() ||
            !std::all_of(v->text.begin(), v->text.end(), [](char ch) { return ch > ' ' && ch < 127; }))
            return v->where + ": " + in_quotes(v->text) +
                   " is not a cluster token (printable characters, no spaces)";
        c.cluster_token = v->text;
    }
    c.raft_given = s.find("raft") != nullptr;
    return check_address(s, "raft", c.raft);
}

std::string check_join(const raw_settings& s, server_config& c)
{
    const raw_value* v = s.find("join");
    if (!v)
        return {};
    auto url = parse_join_url(v->text);
    if (!url)
        return v->where + ": " + in_quotes(v->text) +
               " is not the HTTP address of a member to join through (http://HOST:PORT or "
               "https://HOST:PORT)";
    c.join = url->address;
    c.join_https = url->https;
    return {};
}

std::string check_restore(const raw_settings& s, server_config& c)
{
    const raw_value* v = s.find("restore-backup");
    if (!v)
        return {};
    if (v->text.empty())
        return v->where + ": the backup file must not be empty";
    if (c.join)
        return v->where + ": a restored node starts a new cluster; it does not --join one";
    c.restore_backup = v->text;
    return {};
}

std::string check_force_new_cluster(const raw_settings& s, server_config& c)
{
    const raw_value* v = s.find("force-new-cluster");
    if (!v)
        return {};
    // As DIR/identity writes it (0x...), or as GET /cluster/members does (no 0x).
    std::string text = v->text;
    if (!text.starts_with("0x"))
        text.insert(0, "0x");
    const auto id = parse_hex_id(text);
    if (!id)
        return v->where + ": " + in_quotes(v->text) +
               " is not a cluster id (16 hexadecimal digits, as GET /cluster/members and DIR/identity show "
               "it)";
    if (c.join)
        return v->where + ": a forced member starts a new cluster; it does not --join one";
    if (c.restore_backup)
        return v->where + ": not with --restore-backup: force a member that holds data, or restore a backup "
                          "into an empty directory";
    if (c.peers_given && c.peers.size() != 1)
        return v->where + ": the new cluster has this node alone; give --peers naming only it (or none), and "
                          "add the other members once it runs";
    c.force_new_cluster = *id;
    return {};
}

std::string check_peers(const raw_settings& s, server_config& c)
{
    std::string error;
    std::optional<std::map<node_id, host_port>> peers;
    std::string where;
    if (const raw_value* v = s.find("peers")) {
        where = v->where;
        peers = parse_peers(v->text, v->where, error);
    } else if (s.peer_map) {
        where = s.peer_map->where;
        std::string text;
        for (const auto& [id, address] : s.peer_map->entries) {
            if (address.find(',') != std::string::npos)
                return where + ": " + printable(id) + ": " + in_quotes(address) + " is not host:port";
            text.append(text.empty() ? "" : ",").append(id).append("=").append(address);
        }
        peers = parse_peers(text, where, error);
    } else {
        c.peers = {{c.id, c.raft}};
        return {};
    }
    if (!peers)
        return error;
    if (c.join)
        return where + ": a node that joins a cluster (--join) learns the members from it; give --join "
                       "or --peers, not both";
    c.peers_given = true;
    if (!peers->contains(c.id)) {
        std::string ids;
        for (const auto& [id, address] : *peers)
            ids.append(ids.empty() ? "" : ", ").append(std::to_string(id));
        return where + ": this node's id " + std::to_string(c.id) + " is not listed (it lists " + ids + ")";
    }
    // Every node dials these addresses: a wildcard reaches the dialer itself, never the peer.
    for (const auto& [id, address] : *peers)
        if (peers->size() > 1 && is_wildcard(address))
            return where + ": node " + std::to_string(id) + "'s address " + address.to_string() +
                   " is a wildcard address, which the other nodes cannot dial; list the address they "
                   "reach it at (and listen on every interface with --raft " +
                   address.to_string() + ")";
    c.peers = std::move(*peers);
    if (!s.find("raft"))
        c.raft = c.peers.at(c.id);
    return {};
}

std::string check_tuning(const raw_settings& s, server_config& c)
{
    if (std::string e = check_number<std::uint32_t>(s, "tick-ms", 1, 60'000, c.tick_ms); !e.empty())
        return e;
    if (std::string e = check_number<std::uint32_t>(s, "threads", 1, 256, c.threads); !e.empty())
        return e;
    if (std::string e = check_number<std::uint32_t>(s, "heartbeat-ticks", 1, 1'000'000, c.heartbeat_ticks);
        !e.empty())
        return e;
    if (std::string e = check_number<std::uint32_t>(s, "election-ticks", 2, 1'000'000, c.election_ticks);
        !e.empty())
        return e;
    if (c.election_ticks <= c.heartbeat_ticks)
        return "election-ticks (" + std::to_string(c.election_ticks) +
               ") must be greater than heartbeat-ticks (" + std::to_string(c.heartbeat_ticks) + ")";
    if (std::string e =
            check_number<std::uint32_t>(s, "request-timeout-ms", 1, 3'600'000, c.request_timeout_ms);
        !e.empty())
        return e;
    if (std::string e = check_number<std::uint32_t>(s, "health-timeout-ms", 1, 30'000, c.health_timeout_ms);
        !e.empty())
        return e;
    if (std::string e = check_number<std::uint32_t>(s, "health-reuse-ms", 0, 60'000, c.health_reuse_ms);
        !e.empty())
        return e;
    if (const raw_value* v = s.find("log-level")) {
        const auto level = parse_log_level(v->text);
        if (!level)
            return v->where + ": " + in_quotes(v->text) + " is not one of error, warn, info, debug";
        c.log_level = *level;
    }
    if (const raw_value* v = s.find("log-format")) {
        const auto format = parse_log_format(v->text);
        if (!format)
            return v->where + ": " + in_quotes(v->text) + " is not one of text, json";
        c.log_format = *format;
    }
    return {};
}

std::string check_snapshots(const raw_settings& s, server_config& c)
{
    if (std::string e =
            check_number<std::uint64_t>(s, "snapshot-entries", 0, max_snapshot_entries, c.snapshot_entries);
        !e.empty())
        return e;
    if (std::string e = check_number<std::uint64_t>(s, "snapshot-catchup-entries", 0, max_snapshot_entries,
                                                    c.snapshot_catchup_entries);
        !e.empty())
        return e;
    if (std::string e = check_number<std::uint64_t>(s, "snapshot-catchup-bytes", 0,
                                                    max_snapshot_catchup_bytes, c.snapshot_catchup_bytes);
        !e.empty())
        return e;
    if (std::string e = check_number<std::uint64_t>(s, "snapshot-hold-bytes", 0, max_snapshot_catchup_bytes,
                                                    c.snapshot_hold_bytes);
        !e.empty())
        return e;
    if (std::string e =
            check_number<std::uint64_t>(s, "quota-bytes", 0, std::uint64_t{1} << 50, c.quota_bytes);
        !e.empty())
        return e;
    if (c.quota_bytes != 0 && c.quota_bytes < (std::uint64_t{1} << 20))
        return s.find("quota-bytes")->where + ": " + std::to_string(c.quota_bytes) +
               " is below 1048576 (0: no quota)";
    return {};
}

// A file the server reads at start-up, checked now so that a typo is one clear line.
std::string check_readable_file(const raw_settings& s, std::string_view name, std::string& out)
{
    const raw_value* v = s.find(name);
    if (!v)
        return {};
    if (v->text.empty())
        return v->where + ": needs a file name; it must not be empty";
    std::error_code ec;
    if (std::filesystem::is_directory(v->text, ec))
        return v->where + ": cannot read " + in_quotes(v->text) + ": it is a directory";
    std::ifstream in(v->text, std::ios::binary);
    if (!in)
        return v->where + ": cannot read " + in_quotes(v->text) + ": " + std::strerror(errno);
    out = v->text;
    return {};
}

// Peer TLS takes three files, all readable now: a typo should stop the start, not every
// connection later.
std::string check_peer_tls(const raw_settings& s, server_config& c)
{
    const std::array<std::pair<const char*, std::string*>, 3> files = {
        {{"peer-cert", &c.peer_cert}, {"peer-key", &c.peer_key}, {"peer-ca", &c.peer_ca}}};
    std::string missing;
    std::size_t given = 0;
    for (const auto& [name, out] : files) {
        if (!s.find(name)) {
            missing.append(missing.empty() ? "" : " and ").append("--").append(name);
            continue;
        }
        ++given;
        if (std::string e = check_readable_file(s, name, *out); !e.empty())
            return e;
    }
    if (given != 0 && given != files.size())
        return "--peer-cert, --peer-key and --peer-ca go together (peer TLS): " + missing + " missing";
    return {};
}

// Reads the tokens file now, so that a bad line stops the server before it starts.
std::string check_auth_tokens(const raw_settings& s, server_config& c)
{
    const raw_value* v = s.find("auth-tokens");
    if (!v)
        return {};
    if (v->text.empty())
        return v->where + ": needs the path of a tokens file";
    std::string error;
    std::optional<std::vector<auth_token>> tokens = read_auth_tokens(v->text, error);
    if (!tokens)
        return error;
    c.auth_tokens_file = v->text;
    c.auth_tokens = std::move(*tokens);
    return {};
}

std::string check_http_limits(const raw_settings& s, server_config& c)
{
    if (std::string e = check_number<std::uint32_t>(s, "max-connections", 1, 1'000'000, c.max_connections);
        !e.empty())
        return e;
    for (const auto& [name, field] :
         {std::pair<std::string_view, std::uint32_t*>{"http-header-timeout-ms", &c.http_header_timeout_ms},
          {"http-body-timeout-ms", &c.http_body_timeout_ms},
          {"http-idle-timeout-ms", &c.http_idle_timeout_ms},
          {"http-handshake-timeout-ms", &c.http_handshake_timeout_ms},
          {"raft-frame-timeout-ms", &c.raft_frame_timeout_ms},
          {"raft-greeting-timeout-ms", &c.raft_greeting_timeout_ms}}) {
        if (std::string e =
                check_number<std::uint32_t>(s, name, min_limit_timeout_ms, max_limit_timeout_ms, *field);
            !e.empty())
            return e;
    }
    if (std::string e = check_number<std::uint32_t>(s, "raft-max-ungreeted", 1, 65'536, c.raft_max_ungreeted);
        !e.empty())
        return e;
    return check_number<std::uint64_t>(s, "max-pending-body-bytes", largest_request_body,
                                       max_pending_body_bytes, c.max_pending_body_bytes);
}

std::string check_watch_limits(const raw_settings& s, server_config& c)
{
    if (std::string e =
            check_number<std::uint64_t>(s, "watch-history-entries", 1, 100'000'000, c.watch_history_entries);
        !e.empty())
        return e;
    if (std::string e = check_number<std::uint64_t>(s, "watch-history-bytes", std::uint64_t{1} << 20,
                                                    std::uint64_t{1} << 40, c.watch_history_bytes);
        !e.empty())
        return e;
    if (std::string e = check_number<std::uint32_t>(s, "max-watchers", 1, 1'000'000, c.max_watchers);
        !e.empty())
        return e;
    return check_number<std::uint64_t>(s, "watch-buffer-bytes", 64 * 1024, std::uint64_t{1} << 30,
                                       c.watch_buffer_bytes);
}

std::string check_tls(const raw_settings& s, server_config& c)
{
    for (const auto& [name, field] : {std::pair<std::string_view, std::string*>{"cert", &c.tls_cert},
                                      {"key", &c.tls_key},
                                      {"client-ca", &c.client_ca},
                                      {"forward-ca", &c.forward_ca}}) {
        if (std::string e = check_readable_file(s, name, *field); !e.empty())
            return e;
    }
    if (c.tls_cert.empty() != c.tls_key.empty())
        return c.tls_cert.empty() ? s.find("key")->where + " needs --cert too (HTTPS takes both)"
                                  : s.find("cert")->where + " needs --key too (HTTPS takes both)";
    if (c.tls_cert.empty() && !c.client_ca.empty())
        return s.find("client-ca")->where + " needs --cert and --key (client certificates are for HTTPS)";
    if (c.tls_cert.empty() && !c.forward_ca.empty())
        return s.find("forward-ca")->where + " needs --cert and --key (it is for forwarding over HTTPS)";
    // A cluster's members all serve HTTPS or all plain HTTP: each forwards to the leader
    // with its own scheme, and so joins with it.
    if (c.join && c.join_https && c.tls_cert.empty())
        return s.find("join")->where +
               ": joining over HTTPS needs --cert and --key (every member of an HTTPS cluster serves "
               "HTTPS, and the join presents this certificate)";
    if (c.join && !c.join_https && !c.tls_cert.empty())
        return s.find("join")->where +
               ": this node serves HTTPS (--cert), so the members do too: join through https://";
    return {};
}

std::string build_config(const raw_settings& s, server_config& c)
{
    if (std::string e = check_identity(s, c); !e.empty())
        return e;
    if (std::string e = check_join(s, c); !e.empty())
        return e;
    if (std::string e = check_peers(s, c); !e.empty())
        return e;
    if (std::string e = check_restore(s, c); !e.empty())
        return e;
    if (std::string e = check_force_new_cluster(s, c); !e.empty())
        return e;
    if (std::string e = advertise_http_problem(c); !e.empty())
        return e;
    if (std::string e = check_tuning(s, c); !e.empty())
        return e;
    if (std::string e = check_http_limits(s, c); !e.empty())
        return e;
    if (std::string e = check_watch_limits(s, c); !e.empty())
        return e;
    if (std::string e = check_tls(s, c); !e.empty())
        return e;
    if (std::string e = check_peer_tls(s, c); !e.empty())
        return e;
    if (std::string e = check_snapshots(s, c); !e.empty())
        return e;
    return check_auth_tokens(s, c);
}

} // namespace

std::optional<std::uint64_t> parse_hex_id(std::string_view text)
{
    if (text.size() != 18 || !text.starts_with("0x"))
        return std::nullopt;
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data() + 2, text.data() + text.size(), v, 16);
    if (ec != std::errc{} || end != text.data() + text.size() || v == 0)
        return std::nullopt;
    return v;
}

std::string host_port::to_string() const
{
    const std::string p = std::to_string(port);
    return host.find(':') != std::string::npos ? "[" + host + "]:" + p : host + ":" + p;
}

std::optional<join_url> parse_join_url(std::string_view url)
{
    constexpr std::string_view http = "http://";
    constexpr std::string_view https = "https://";
    join_url result;
    if (url.starts_with(https)) {
        result.https = true;
        url.remove_prefix(https.size());
    } else if (url.starts_with(http)) {
        url.remove_prefix(http.size());
    } else {
        return std::nullopt;
    }
    if (url.ends_with('/'))
        url.remove_suffix(1);
    auto address = parse_host_port(url);
    if (!address)
        return std::nullopt;
    result.address = std::move(*address);
    return result;
}

std::optional<host_port> parse_host_port(std::string_view text)
{
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos)
        return std::nullopt;
    std::string_view host = text.substr(0, colon);
    const auto port = parse_unsigned<std::uint16_t>(text.substr(colon + 1));
    if (!port || *port == 0)
        return std::nullopt;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
        if (host.find(':') == std::string_view::npos || !std::all_of(host.begin(), host.end(), is_ipv6_char))
            return std::nullopt;
    } else if (host.empty() || !std::all_of(host.begin(), host.end(), is_host_char)) {
        return std::nullopt;
    }
    // A DNS name is at most 253 characters, in labels of at most 63 (RFC 1035).
    if (host.size() > 253)
        return std::nullopt;
    for (std::size_t start = 0; start <= host.size();) {
        const std::size_t dot = std::min(host.find('.', start), host.size());
        if (dot - start > 63)
            return std::nullopt;
        start = dot + 1;
    }
    return host_port{std::string(host), *port};
}

bool is_wildcard(const host_port& address)
{
    return address.host == "0.0.0.0" || address.host == "::";
}

bool listens_where_dialed(const host_port& listen, const host_port& dialed)
{
    if (listen.port != dialed.port)
        return false;
    if (is_wildcard(listen) || listen.host == dialed.host)
        return true;
    boost::system::error_code ec1, ec2;
    const auto a = boost::asio::ip::make_address(listen.host, ec1);
    const auto b = boost::asio::ip::make_address(dialed.host, ec2);
    return ec1 || ec2 || a == b;
}

bool is_loopback(const host_port& address)
{
    return address.host == "localhost" || address.host == "::1" || address.host.starts_with("127.");
}

std::string advertise_http_problem(const server_config& c, std::size_t members)
{
    if (std::max(members, c.peers.size()) <= 1 || !is_wildcard(c.advertise_http))
        return {};
    return "--http " + c.http.to_string() +
           " listens on every interface, which is no address other nodes can forward requests to: set "
           "--advertise-http to the HOST:PORT they reach this node at";
}

std::optional<node_id> parse_node_id(std::string_view text)
{
    const auto id = parse_unsigned<node_id>(text);
    if (!id || *id == no_node)
        return std::nullopt;
    return id;
}

std::optional<std::map<node_id, host_port>> parse_peers(std::string_view text, std::string_view where,
                                                        std::string& error)
{
    const std::string prefix = std::string(where) + ": ";
    std::map<node_id, host_port> peers;
    std::size_t start = 0;
    while (true) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const std::string_view item = trim(text.substr(start, comma - start));
        const std::size_t eq = item.find('=');
        if (eq == std::string_view::npos) {
            error = prefix + in_quotes(item) + " is not id=host:port";
            return std::nullopt;
        }
        const std::string_view id_text = trim(item.substr(0, eq));
        const std::string_view address_text = trim(item.substr(eq + 1));
        const auto id = parse_node_id(id_text);
        if (!id) {
            error = prefix + in_quotes(id_text) + " is not a node id (an integer from 1 to " +
                    std::to_string(UINT64_MAX) + ")";
            return std::nullopt;
        }
        const auto address = parse_host_port(address_text);
        if (!address) {
            error = prefix + in_quotes(address_text) + " is not host:port (with a port from 1 to 65535)";
            return std::nullopt;
        }
        for (const auto& [other, other_address] : peers) {
            if (other_address == *address) {
                error = prefix + "nodes " + std::to_string(other) + " and " + std::to_string(*id) +
                        " have the same address " + address->to_string();
                return std::nullopt;
            }
        }
        if (!peers.emplace(*id, *address).second) {
            error = prefix + "node " + std::to_string(*id) + " is listed more than once";
            return std::nullopt;
        }
        if (comma == text.size())
            return peers;
        start = comma + 1;
    }
}

std::string peers_to_string(const std::map<node_id, host_port>& peers)
{
    std::string out;
    for (const auto& [id, address] : peers)
        out.append(out.empty() ? "" : ",").append(std::to_string(id)).append("=").append(address.to_string());
    return out;
}

parse_result parse_arguments(const std::vector<std::string>& args)
{
    parse_result result;
    if (std::find_if(args.begin(), args.end(),
                     [](const std::string& a) { return a == "--help" || a == "-h"; }) != args.end()) {
        result.help = true;
        return result;
    }
    if (std::find(args.begin(), args.end(), "--version") != args.end()) {
        result.version = true;
        return result;
    }
    raw_settings flags;
    std::optional<std::string> config_file;
    result.error = read_flags(args, flags, config_file, result.inspect);
    if (!result.ok())
        return result;
    raw_settings settings;
    if (config_file) {
        result.error = read_config_file(*config_file, settings);
        if (!result.ok())
            return result;
    }
    settings.override_with(flags);
    result.error = build_config(settings, result.config);
    if (result.ok() && result.inspect &&
        (result.config.join || result.config.restore_backup || result.config.force_new_cluster))
        result.error = "--inspect reports on the data directory and starts nothing: not with --join, "
                       "--restore-backup or --force-new-cluster";
    return result;
}

parse_result parse_config_text(std::string_view contents, const std::string& file_name)
{
    parse_result result;
    raw_settings settings;
    result.error = read_config_text(contents, file_name, settings);
    if (result.ok())
        result.error = build_config(settings, result.config);
    return result;
}

parse_result parse_command_line(int argc, const char* const* argv)
{
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i)
        args.emplace_back(argv[i]);
    return parse_arguments(args);
}

std::string help_text()
{
    std::ostringstream described;
    described << flag_descriptions();
    // Program_options leaves a space at the end of each line it wraps.
    std::string flags;
    std::istringstream lines(described.str());
    for (std::string line; std::getline(lines, line);) {
        line.erase(line.find_last_not_of(' ') + 1);
        flags.append(line).append(1, '\n');
    }

    // The config file's keys, wrapped like the flags.
    std::string keys = "Config file (YAML): a map with any of the keys";
    std::size_t line_start = 0;
    for (std::size_t k = 0; k < settings.size(); ++k) {
        std::string word = std::string(settings[k].name) + (k + 1 < settings.size() ? "," : ".");
        if (keys.size() - line_start + 1 + word.size() > help_width) {
            keys += '\n';
            line_start = keys.size();
        } else {
            keys += ' ';
        }
        keys += word;
    }

    return R"(Usage: raftkv-server [flags]

Runs one node of a raftkv cluster: a replicated key-value store with an HTTP/JSON API.
With no flags it runs a single-node cluster: id 1, data in ./raftkv-data, HTTP on
127.0.0.1:8080, Raft on 127.0.0.1:9080.

)" + flags +
           R"(
Flags take their value as the next argument or after '=' (--id=2).

)" + keys + R"(
peers is a map of id to HOST:PORT, or the same string as --peers. config/ in the
source tree holds commented examples, for one node and for a three-node cluster:

  id: 2
  data-dir: /var/lib/raftkv/2
  http: 127.0.0.1:8082
  raft: 127.0.0.1:9082
  peers:
    1: 127.0.0.1:9081
    2: 127.0.0.1:9082
    3: 127.0.0.1:9083
  log-level: info

HTTP API: PUT/GET/DELETE /kv/{key}, GET /kv?prefix=P, GET /status, GET /health,
GET /livez, GET /readyz, GET /version, GET /metrics, GET /cluster/status, GET /ui
(docs/server.md).
The first start records the cluster id, this node's id and the members in
DIR/identity; a later start whose --id, --cluster-token or --peers contradicts it
prints one line and exits with code 2, as does a bad flag or config value. SIGINT
and SIGTERM shut the node down cleanly; a leader first hands leadership to another
member (waiting at most 2 s).
)";
}

} // namespace raftkv::server
