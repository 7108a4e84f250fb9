#include "request_parsing.hpp"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>

namespace raftkv::server {

namespace {

namespace http = boost::beast::http;
namespace json = boost::json;

constexpr std::string_view kv_methods = "GET, HEAD, PUT, DELETE";
constexpr std::string_view read_methods = "GET, HEAD";

int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

// The length of the valid UTF-8 sequence at s[i] (i < s.size()), or 0 if it is not one:
// a stray or missing continuation byte, an overlong form, a surrogate, past U+10FFFF.
std::size_t utf8_sequence(std::string_view s, std::size_t i)
{
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        len = 2, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
        len = 3, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (i + len > s.size())
        return 0;
    for (std::size_t k = 1; k < len; ++k) {
        const auto cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr std::array<std::uint32_t, 5> min_of_len = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_of_len[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

// Well-formed UTF-8 (RFC 3629): no overlong forms, surrogates or code points past U+10FFFF.
bool is_utf8(std::string_view s)
{
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t len = utf8_sequence(s, i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

checked_input rejected(http::status status, std::string error)
{
    return {std::nullopt, status, std::move(error)};
}

} // namespace

route_match match_route(http::verb method, std::string_view target)
{
    const std::string_view path = target.substr(0, target.find('?'));
    route_match m;
    bool allowed = false;
    // Every route that answers GET answers HEAD too (RFC 9110 9.3.2), but a watch and a
    // backup, whose answers are streams: the server sends a GET's answer without its body.
    const bool reads = method == http::verb::get || method == http::verb::head;
    if (path.starts_with("/kv/")) {
        m.route = route::kv;
        m.allow = kv_methods;
        m.raw_key = path.substr(4);
        allowed = reads || method == http::verb::put || method == http::verb::delete_;
    } else if (path == "/kv") {
        m.route = route::scan;
        m.allow = read_methods;
        allowed = reads;
    } else if (path == "/status" || path == "/health") {
        m.route = path == "/status" ? route::status : route::health;
        m.allow = read_methods;
        allowed = reads;
    } else if (path == "/livez" || path == "/readyz") {
        m.route = path == "/livez" ? route::livez : route::readyz;
        m.allow = read_methods;
        allowed = reads;
    } else if (path == "/cluster/members") {
        m.route = route::members;
        m.allow = "GET, HEAD, POST";
        allowed = reads || method == http::verb::post;
    } else if (path == "/cluster/leader") {
        m.route = route::leader;
        m.allow = "POST";
        allowed = method == http::verb::post;
    } else if (path == "/cluster/status") {
        m.route = route::cluster_status;
        m.allow = read_methods;
        allowed = reads;
    } else if (path == "/ui" || path.starts_with("/ui/")) {
        m.route = route::ui;
        m.allow = read_methods;
        m.asset = path;
        allowed = reads;
    } else if (path == "/version") {
        m.route = route::version;
        m.allow = read_methods;
        allowed = reads;
    } else if (path == "/watch" || path.starts_with("/watch/")) {
        m.route = route::watch;
        m.allow = "GET";
        m.raw_key = path.size() > 6 ? path.substr(7) : std::string_view{};
        allowed = method == http::verb::get;
    } else if (path == "/backup") {
        m.route = route::backup;
        m.allow = "GET";
        allowed = method == http::verb::get;
    } else if (path == "/metrics") {
        m.route = route::metrics;
        m.allow = read_methods;
        allowed = reads;
    } else if (path.starts_with("/cluster/members/")) {
        std::string_view rest = path.substr(std::string_view("/cluster/members/").size());
        const std::size_t slash = rest.find('/');
        if (slash == std::string_view::npos) {
            m.route = route::member;
            m.allow = "PATCH, DELETE";
            allowed = method == http::verb::patch || method == http::verb::delete_;
        } else if (rest.substr(slash) == "/promote") {
            m.route = route::promote;
            m.allow = "POST";
            allowed = method == http::verb::post;
        } else {
            return m;
        }
        m.raw_id = rest.substr(0, slash);
    } else {
        return m;
    }
    m.result = allowed ? route_match::outcome::found : route_match::outcome::method_not_allowed;
    return m;
}

std::optional<std::string> percent_decode(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out.push_back(text[i]);
            continue;
        }
        if (text.size() - i < 3)
            return std::nullopt;
        const int hi = hex_digit(text[i + 1]);
        const int lo = hex_digit(text[i + 2]);
        if (hi < 0 || lo < 0)
            return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

std::optional<query_param> query_params::next()
{
    while (!rest_.empty()) {
        const std::size_t amp = rest_.find('&');
        const std::string_view param = rest_.substr(0, amp);
        rest_ = amp == std::string_view::npos ? std::string_view{} : rest_.substr(amp + 1);
        if (param.empty())
            continue;
        const std::size_t eq = param.find('=');
        const std::string_view name = param.substr(0, eq);
        const std::string_view value =
            eq == std::string_view::npos ? std::string_view{} : param.substr(eq + 1);
        std::optional<std::string> decoded_name = percent_decode(name);
        std::optional<std::string> decoded_value = percent_decode(value);
        if (!decoded_name || !decoded_value)
            return query_param{std::string(name), std::string(value), true};
        return query_param{std::move(*decoded_name), std::move(*decoded_value), false};
    }
    return std::nullopt;
}

std::string to_valid_utf8(std::string_view text)
{
    if (is_utf8(text))
        return std::string(text);
    std::string out;
    out.reserve(text.size() + 8);
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t len = utf8_sequence(text, i);
        if (len == 0) {
            out += "\xEF\xBF\xBD"; // U+FFFD REPLACEMENT CHARACTER
            ++i;
        } else {
            out.append(text.substr(i, len));
            i += len;
        }
    }
    return out;
}

std::string malformed_query_error(const query_param& param)
{
    return "malformed percent-encoding in '" + param.name.substr(0, 64) + "'";
}

checked_input check_key(std::string_view raw_key)
{
    std::optional<std::string> key = percent_decode(raw_key);
    if (!key)
        return rejected(http::status::bad_request, "malformed percent-encoding in the key");
    if (key->empty())
        return rejected(http::status::bad_request, "missing key");
    if (key->size() > max_key_bytes)
        return rejected(http::status::payload_too_large, "key too long: " + std::to_string(key->size()) +
                                                             " bytes (the limit is " +
                                                             std::to_string(max_key_bytes) + ")");
    if (!is_utf8(*key))
        return rejected(http::status::bad_request, "the key is not valid UTF-8");
    return {std::move(key), http::status::ok, {}};
}

namespace {

checked_scan_query scan_rejected(std::string error)
{
    return {std::nullopt, http::status::bad_request, std::move(error)};
}

// A prefix or an after key, decoded: like a key, but it may be empty. The error, if any.
std::optional<std::string> scan_key_error(std::string_view name, const std::string& key)
{
    // Not "'" + std::string(name) + ...: GCC 12 at -O3 reports a false -Wrestrict on it.
    std::string quoted = "'";
    quoted += name;
    quoted += "'";
    if (key.size() > max_key_bytes)
        return quoted + " too long: " + std::to_string(key.size()) + " bytes (the limit is " +
               std::to_string(max_key_bytes) + ")";
    if (!is_utf8(key))
        return quoted + " is not valid UTF-8";
    return std::nullopt;
}

std::optional<std::size_t> scan_limit(std::string_view text)
{
    if (text.empty() || text.size() > 4)
        return std::nullopt;
    std::size_t n = 0;
    for (const char c : text) {
        if (c < '0' || c > '9')
            return std::nullopt;
        n = n * 10 + static_cast<std::size_t>(c - '0');
    }
    if (n < 1 || n > max_scan_limit)
        return std::nullopt;
    return n;
}

} // namespace

checked_consistency parse_consistency(std::string_view raw)
{
    if (raw == "linearizable")
        return {read_consistency::linearizable, http::status::ok, {}};
    if (raw == "lease")
        return {read_consistency::lease, http::status::ok, {}};
    if (raw == "stale")
        return {read_consistency::stale, http::status::ok, {}};
    return {std::nullopt, http::status::bad_request,
            "'consistency' must be linearizable, lease or stale, not '" + std::string(raw.substr(0, 64)) +
                "'"};
}

std::string unknown_parameter_error(std::string_view name, std::string_view route,
                                    std::string_view takes_text)
{
    return "unknown parameter '" + std::string(name.substr(0, 64)) + "' (" + std::string(route) +
           (takes_text.empty() ? " takes none)" : " takes " + std::string(takes_text) + ")");
}

std::optional<std::string> unknown_parameter(std::string_view target, std::string_view route,
                                             std::initializer_list<std::string_view> takes,
                                             std::string_view takes_text)
{
    query_params params(target);
    while (const std::optional<query_param> param = params.next()) {
        if (param->malformed)
            return malformed_query_error(*param);
        if (std::find(takes.begin(), takes.end(), param->name) == takes.end())
            return unknown_parameter_error(param->name, route, takes_text);
    }
    return std::nullopt;
}

checked_consistency check_consistency(std::string_view target)
{
    checked_consistency found{read_consistency::linearizable, http::status::ok, {}};
    bool seen = false;
    query_params params(target);
    while (const std::optional<query_param> param = params.next()) {
        if (param->malformed)
            return {std::nullopt, http::status::bad_request, malformed_query_error(*param)};
        if (param->name != "consistency")
            return {std::nullopt, http::status::bad_request,
                    unknown_parameter_error(param->name, "GET /kv/{key}", "consistency")};
        if (seen)
            return {std::nullopt, http::status::bad_request, "parameter 'consistency' given more than once"};
        seen = true;
        found = parse_consistency(param->value);
        if (!found.value)
            return found;
    }
    return found;
}

checked_scan_query check_scan_query(std::string_view target)
{
    scan_query q;
    bool seen[5] = {false, false, false, false, false};
    static constexpr std::array<std::string_view, 5> names = {"prefix", "after", "limit", "keys_only",
                                                              "consistency"};
    query_params params(target);
    while (std::optional<query_param> param = params.next()) {
        if (param->malformed)
            return scan_rejected(malformed_query_error(*param));
        const std::string_view name = param->name;
        const std::string_view raw = param->value;
        const auto known = std::find(names.begin(), names.end(), name);
        if (known == names.end())
            return scan_rejected(
                unknown_parameter_error(name, "GET /kv", "prefix, after, limit, keys_only and consistency"));
        bool& once = seen[known - names.begin()];
        if (once)
            return scan_rejected("parameter '" + std::string(name) + "' given more than once");
        once = true;
        if (name == "prefix" || name == "after") {
            if (std::optional<std::string> error = scan_key_error(name, param->value))
                return scan_rejected(std::move(*error));
            (name == "prefix" ? q.prefix : q.after) = std::move(param->value);
        } else if (name == "limit") {
            const std::optional<std::size_t> limit = scan_limit(raw);
            if (!limit)
                return scan_rejected("'limit' must be a whole number from 1 to " +
                                     std::to_string(max_scan_limit));
            q.limit = *limit;
        } else if (name == "consistency") {
            checked_consistency c = parse_consistency(raw);
            if (!c.value)
                return scan_rejected(std::move(c.error));
            q.consistency = *c.value;
        } else if (raw == "true" || raw == "false") {
            q.keys_only = raw == "true";
        } else {
            return scan_rejected("'keys_only' must be true or false");
        }
    }
    return {std::move(q), http::status::ok, {}};
}

namespace {

/// Counts the members of the top-level object as written (a SAX pass of Boost.JSON's
/// basic_parser, which allocates nothing) and, when asked to, collects their names and keeps
/// the first name seen twice.
class member_names_handler {
public:
    static constexpr std::size_t max_object_size = std::size_t(-1);
    static constexpr std::size_t max_array_size = std::size_t(-1);
    static constexpr std::size_t max_key_size = std::size_t(-1);
    static constexpr std::size_t max_string_size = std::size_t(-1);

    explicit member_names_handler(bool collect_names) : collect_(collect_names) {}

    std::size_t members = 0;
    std::optional<std::string> duplicate;

    bool on_document_begin(boost::system::error_code&) { return true; }
    bool on_document_end(boost::system::error_code&) { return true; }
    bool on_object_begin(boost::system::error_code&) { return enter(); }
    bool on_object_end(std::size_t n, boost::system::error_code&)
    {
        if (depth_ == 1)
            members = n;
        return leave();
    }
    bool on_array_begin(boost::system::error_code&) { return enter(); }
    bool on_array_end(std::size_t, boost::system::error_code&) { return leave(); }
    bool on_key_part(json::string_view part, std::size_t, boost::system::error_code&)
    {
        if (collect_ && depth_ == 1)
            key_.append(part.data(), part.size());
        return true;
    }
    bool on_key(json::string_view part, std::size_t, boost::system::error_code&)
    {
        if (!collect_ || depth_ != 1)
            return true;
        key_.append(part.data(), part.size());
        if (!duplicate && !names_.insert(key_).second) // only the first one is reported
            duplicate = key_;
        key_.clear();
        return true;
    }
    bool on_string_part(json::string_view, std::size_t, boost::system::error_code&) { return true; }
    bool on_string(json::string_view, std::size_t, boost::system::error_code&) { return true; }
    bool on_number_part(json::string_view, boost::system::error_code&) { return true; }
    bool on_int64(std::int64_t, json::string_view, boost::system::error_code&) { return true; }
    bool on_uint64(std::uint64_t, json::string_view, boost::system::error_code&) { return true; }
    bool on_double(double, json::string_view, boost::system::error_code&) { return true; }
    bool on_bool(bool, boost::system::error_code&) { return true; }
    bool on_null(boost::system::error_code&) { return true; }
    bool on_comment_part(json::string_view, boost::system::error_code&) { return true; }
    bool on_comment(json::string_view, boost::system::error_code&) { return true; }

private:
    bool enter()
    {
        ++depth_;
        return true;
    }
    bool leave()
    {
        --depth_;
        return true;
    }

    bool collect_;
    int depth_ = 0;
    std::string key_;
    std::unordered_set<std::string> names_; // a body may have a million members
};

} // namespace

std::optional<std::string> duplicate_member_error(std::string_view text, std::size_t parsed_members)
{
    boost::system::error_code ec;
    json::basic_parser<member_names_handler> counter{json::parse_options{}, false};
    counter.write_some(false, text.data(), text.size(), ec);
    if (ec || counter.handler().members == parsed_members)
        return std::nullopt; // the common case: no name repeated, nothing allocated
    json::basic_parser<member_names_handler> names{json::parse_options{}, true};
    names.write_some(false, text.data(), text.size(), ec);
    const std::optional<std::string>& name = names.handler().duplicate;
    if (ec || !name)
        return std::nullopt;
    if (name->size() > 64)
        return "a member name appears twice in the body";
    return "\"" + *name + "\" appears twice in the body";
}

checked_input check_put_body(std::string_view body)
{
    // A small body parses into this buffer, without an allocation.
    unsigned char buffer[4096];
    json::monotonic_resource memory(buffer, sizeof buffer);
    boost::system::error_code ec;
    json::value doc = json::parse(body, ec, &memory);
    if (ec)
        return rejected(http::status::bad_request, "malformed JSON body: " + ec.message());
    const json::object* object = doc.if_object();
    if (!object)
        return rejected(http::status::bad_request, "the body must be a JSON object: {\"value\": \"...\"}");
    if (auto error = duplicate_member_error(body, object->size()))
        return rejected(http::status::bad_request, std::move(*error));
    const json::value* value = object->if_contains("value");
    if (!value)
        return rejected(http::status::bad_request, "missing \"value\" in the body");
    const json::string* text = value->if_string();
    if (!text)
        return rejected(http::status::bad_request, "\"value\" must be a string");
    if (text->size() > max_value_bytes)
        return rejected(http::status::payload_too_large, "value too large: " + std::to_string(text->size()) +
                                                             " bytes (the limit is " +
                                                             std::to_string(max_value_bytes) + ")");
    return {std::string(*text), http::status::ok, {}};
}

namespace {

std::string_view trim_ows(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

checked_precondition bad_precondition(std::string error)
{
    return checked_precondition{std::nullopt, http::status::bad_request, std::move(error)};
}

/// A decimal of 1 to 20 digits that fits 64 bits.
std::optional<std::uint64_t> parse_version(std::string_view digits)
{
    if (digits.empty() || digits.size() > 20)
        return std::nullopt;
    std::uint64_t v = 0;
    for (const char c : digits) {
        if (c < '0' || c > '9')
            return std::nullopt;
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10)
            return std::nullopt;
        v = v * 10 + d;
    }
    return v;
}

/// The one version an If-Match field names, quoted as an ETag ("7") or bare (7); nullopt
/// with `error` set if it names anything else.
std::optional<std::uint64_t> if_match_version(std::string_view field, std::string& error)
{
    std::string_view v = trim_ows(field);
    if (v == "*") {
        error = "If-Match: * is not supported; send the key's version, as in If-Match: \"7\"";
        return std::nullopt;
    }
    if (v.starts_with("W/")) {
        error = "If-Match: weak ETags are not supported; send the key's version, as in If-Match: \"7\"";
        return std::nullopt;
    }
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"')
        v = v.substr(1, v.size() - 2);
    const std::optional<std::uint64_t> version = parse_version(v);
    if (!version)
        error = "If-Match must be one version, a decimal number, quoted (\"7\") or bare (7)";
    return version;
}

} // namespace

checked_precondition check_precondition(http::verb method, const std::vector<std::string_view>& if_match,
                                        const std::vector<std::string_view>& if_none_match)
{
    if (if_match.empty() && if_none_match.empty())
        return checked_precondition{kv_precondition{}, http::status::ok, {}};
    if (!if_match.empty() && !if_none_match.empty())
        return bad_precondition("If-Match and If-None-Match cannot be combined");
    if (if_match.size() > 1 || if_none_match.size() > 1)
        return bad_precondition(if_match.empty() ? "more than one If-None-Match header"
                                                 : "more than one If-Match header");
    if (!if_none_match.empty()) {
        if (trim_ows(if_none_match[0]) != "*")
            return bad_precondition("If-None-Match must be * (create the key only if it does not exist)");
        if (method != http::verb::put)
            return bad_precondition("If-None-Match: * applies to PUT only");
        return checked_precondition{kv_precondition{std::nullopt, true}, http::status::ok, {}};
    }
    std::string error;
    const std::optional<std::uint64_t> version = if_match_version(if_match[0], error);
    if (!version)
        return bad_precondition(std::move(error));
    return checked_precondition{kv_precondition{*version, false}, http::status::ok, {}};
}

read_condition::outcome read_condition::evaluate(bool exists, std::uint64_t version) const noexcept
{
    if (match && (!exists || version != *match))
        return outcome::precondition_failed;
    if (exists &&
        (none_match_any || std::find(none_match.begin(), none_match.end(), version) != none_match.end()))
        return outcome::not_modified;
    return outcome::serve;
}

checked_read_condition check_read_condition(const std::vector<std::string_view>& if_match,
                                            const std::vector<std::string_view>& if_none_match)
{
    const auto bad = [](std::string_view error) {
        return checked_read_condition{std::nullopt, http::status::bad_request, std::string(error)};
    };
    constexpr std::string_view malformed =
        "If-None-Match must be * or a list of ETags, as in If-None-Match: \"7\", \"9\"";
    read_condition c;
    if (if_match.size() > 1)
        return bad("more than one If-Match header");
    if (!if_match.empty()) {
        std::string error;
        c.match = if_match_version(if_match[0], error);
        if (!c.match)
            return bad(error);
    }
    // Several If-None-Match fields are one list (RFC 9110 5.3).
    for (const std::string_view field : if_none_match) {
        std::string_view rest = field;
        while (true) {
            rest = trim_ows(rest);
            if (rest.empty())
                break;
            if (rest.front() == ',') { // an empty element, which a list may have
                rest.remove_prefix(1);
                continue;
            }
            if (rest.front() == '*') {
                c.none_match_any = true;
                rest.remove_prefix(1);
            } else if (const std::size_t open = rest.starts_with("W/") ? 2 : 0;
                       rest.size() > open && rest[open] == '"') {
                // An entity tag, strong or weak (compared weakly: the opaque tags alone).
                const std::size_t close = rest.find('"', open + 1);
                if (close == std::string_view::npos)
                    return bad(malformed);
                const std::string_view tag = rest.substr(open + 1, close - open - 1);
                const bool etagc = std::all_of(tag.begin(), tag.end(), [](char ch) {
                    const auto u = static_cast<unsigned char>(ch);
                    return u > 0x20 && u != 0x7f;
                });
                if (!etagc)
                    return bad(malformed);
                if (const std::optional<std::uint64_t> v = parse_version(tag))
                    c.none_match.push_back(*v); // a tag this server never issued matches nothing
                rest.remove_prefix(close + 1);
            } else {
                // A bare version, as If-Match also takes it.
                const std::size_t end = std::min(rest.find_first_of(", \t"), rest.size());
                const std::optional<std::uint64_t> v = parse_version(rest.substr(0, end));
                if (!v)
                    return bad(malformed);
                c.none_match.push_back(*v);
                rest.remove_prefix(end);
            }
            rest = trim_ows(rest);
            if (!rest.empty() && rest.front() != ',')
                return bad(malformed);
        }
    }
    return checked_read_condition{std::move(c), http::status::ok, {}};
}

checked_session check_session(const std::vector<std::string_view>& client_id,
                              const std::vector<std::string_view>& sequence)
{
    const auto bad = [](std::string error) {
        return checked_session{std::nullopt, http::status::bad_request, std::move(error)};
    };
    if (client_id.empty() && sequence.empty())
        return checked_session{};
    if (client_id.empty() || sequence.empty())
        return bad(std::string(client_id.empty() ? "Raftkv-Sequence" : "Raftkv-Client-Id") + " needs " +
                   std::string(client_id.empty() ? "Raftkv-Client-Id" : "Raftkv-Sequence") +
                   ": a client session is named by both headers");
    if (client_id.size() > 1 || sequence.size() > 1)
        return bad(client_id.size() > 1 ? "more than one Raftkv-Client-Id header"
                                        : "more than one Raftkv-Sequence header");
    const std::optional<std::uint64_t> client = parse_version(trim_ows(client_id[0]));
    if (!client || *client == 0)
        return bad("Raftkv-Client-Id must be a decimal number from 1 to 18446744073709551615");
    const std::optional<std::uint64_t> seq = parse_version(trim_ows(sequence[0]));
    if (!seq || *seq == 0)
        return bad("Raftkv-Sequence must be a decimal number from 1 to 18446744073709551615");
    kv_client_session s;
    s.client = *client;
    s.sequence = *seq;
    return checked_session{s, http::status::ok, {}};
}

} // namespace raftkv::server
