#ifndef RAFTKV_SERVER_REQUEST_PARSING_HPP
#define RAFTKV_SERVER_REQUEST_PARSING_HPP

// The pure part of raftkv-server's key-value API: routing a request by method and target,
// and checking the key in the target and the JSON body of a PUT. Nothing here needs a
// running node, so these functions are unit-tested and fuzzed on their own
// (test/fuzz/http_request.cpp); api.hpp declares the handlers that use them.

#include <raftkv/kv_command.hpp>

#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace raftkv::server {

/// The longest key, in bytes after percent-decoding.
inline constexpr std::size_t max_key_bytes = 1024;

/// The longest value, in bytes (UTF-8, after JSON unescaping).
inline constexpr std::size_t max_value_bytes = std::size_t{1} << 20;

enum class route {
    kv,
    /// /kv, without a key: a scan
    scan,
    status,
    health,
    /// /livez: the process serves HTTP.
    livez,
    /// /readyz: the node is caught up and serving.
    readyz,
    /// /cluster/members
    members,
    /// /cluster/members/{id}
    member,
    /// /cluster/members/{id}/promote
    promote,
    /// /cluster/leader
    leader,
    /// /cluster/status: every member's /status, gathered by this node
    cluster_status,
    /// /ui and /ui/{asset}: the cluster page
    ui,
    /// /version
    version,
    /// /watch/{key} and /watch: a stream of changes (watch.hpp)
    watch,
    /// /backup: the state machine at one applied index, as a backup file (backup.hpp)
    backup,
    /// /metrics (Prometheus text format, metrics.hpp); the last route
    metrics,
};

/// Where a request goes, decided from its method and target alone.
struct route_match {
    enum class outcome { found, not_found, method_not_allowed };
    outcome result = outcome::not_found;
    /// The route, unless not_found.
    server::route route = route::kv;
    /// The methods the route allows ("GET, HEAD, PUT, DELETE"), unless not_found.
    std::string_view allow;
    /// For route::kv and route::watch: the key as it appears in the target, still
    /// percent-encoded (may be empty). A view into the target.
    std::string_view raw_key;
    /// For route::member and route::promote: the {id} as it appears in the target (not
    /// checked yet). A view into the target.
    std::string_view raw_id;
    /// For route::ui: the path, "/ui" or "/ui/{asset}". A view into the target.
    std::string_view asset;
};

/// Matches `target` (its query string ignored) to a route, then `method` to the route.
route_match match_route(boost::beast::http::verb method, std::string_view target);

/// Decodes %XX escapes (either case of hex digit). Nothing if an escape is malformed.
/// '+' stays '+': in a path it is not a space.
std::optional<std::string> percent_decode(std::string_view text);

/// `text` with every byte that does not begin a valid UTF-8 sequence replaced by U+FFFD: a
/// message that quotes what a client sent (a decoded parameter, say) stays valid JSON text.
std::string to_valid_utf8(std::string_view text);

/// A validated input, or the status and message to answer with.
struct checked_input {
    std::optional<std::string> value;
    boost::beast::http::status status = boost::beast::http::status::ok;
    std::string error;
};

/// Decodes and checks a key from the target: a malformed escape, an empty key or one
/// that is not UTF-8 is 400; over max_key_bytes is 413.
checked_input check_key(std::string_view raw_key);

/// One `name=value` parameter of a query string, its name and value percent-decoded like a
/// key ('+' stays '+'); `value` is empty when there is no '='. `malformed`: an escape in
/// either is malformed, and both are left as sent.
struct query_param {
    std::string name;
    std::string value;
    bool malformed = false;
};

/// What to answer a query_param that is `malformed`: a message naming it.
std::string malformed_query_error(const query_param& param);

/// The parameters of the query of a request target (what follows its first '?'), in order,
/// skipping empty ones (`a=1&&b`).
class query_params {
public:
    explicit query_params(std::string_view target) noexcept
    {
        const std::size_t question = target.find('?');
        if (question != std::string_view::npos)
            rest_ = target.substr(question + 1);
    }

    /// The next parameter, or nothing after the last.
    std::optional<query_param> next();

private:
    std::string_view rest_;
};

/// How a GET is served, from its `consistency` query parameter.
enum class read_consistency : std::uint8_t {
    /// ReadIndex: reflects every write acknowledged before the request. The default.
    linearizable,
    /// From the leader's state machine while its lease holds, else as linearizable.
    lease,
    /// From this node's state machine as it is: no Raft round, never forwarded.
    stale,
};

/// A read_consistency, or the status (400) and message to answer with.
struct checked_consistency {
    std::optional<read_consistency> value;
    boost::beast::http::status status = boost::beast::http::status::ok;
    std::string error;
};

/// Parses the value of a `consistency` parameter: "linearizable", "lease" or "stale"; anything
/// else is 400.
checked_consistency parse_consistency(std::string_view raw);

/// The `consistency` parameter of the query of `target` (linearizable when absent); given
/// more than once, or with another value, is 400, as is any other parameter: a misspelt
/// `consitency=stale` must not quietly read linearizably.
checked_consistency check_consistency(std::string_view target);

/// "unknown parameter 'name' (<route> takes <takes_text>)", or "takes none)" when
/// `takes_text` is empty; the name cut at 64 bytes. Every route's answer to a parameter it
/// does not take.
std::string unknown_parameter_error(std::string_view name, std::string_view route,
                                    std::string_view takes_text);

/// The message for the first parameter of `target`'s query that `route` ("PUT /kv/{key}")
/// does not take, or nothing when it has none. `takes` lists what it does take, and
/// `takes_text` says so for the message ("" when nothing: then every parameter is refused).
std::optional<std::string> unknown_parameter(std::string_view target, std::string_view route,
                                             std::initializer_list<std::string_view> takes,
                                             std::string_view takes_text);

/// How many keys GET /kv lists when the query names no limit, and the most it may name.
inline constexpr std::size_t default_scan_limit = 100;
inline constexpr std::size_t max_scan_limit = 1000;

/// The query of GET /kv?prefix=p&after=k&limit=n&keys_only=true, decoded.
struct scan_query {
    /// Only keys that start with this. Default: every key.
    std::string prefix;
    /// Only keys after this one, bytewise (the `next` of the page before). Default: none.
    std::string after;
    std::size_t limit = default_scan_limit;
    bool keys_only = false;
    read_consistency consistency = read_consistency::linearizable;
};

/// A scan_query, or the status (400) and message to answer with.
struct checked_scan_query {
    std::optional<scan_query> value;
    boost::beast::http::status status = boost::beast::http::status::ok;
    std::string error;
};

/// Decodes the query string of `target` (after '?'; none is the defaults): each parameter
/// at most once, percent-decoded like a key ('+' stays '+'); prefix and after valid UTF-8
/// of at most max_key_bytes; limit a decimal from 1 to max_scan_limit; keys_only "true" or
/// "false"; consistency as parse_consistency(). Anything else, an unknown parameter
/// included, is 400.
checked_scan_query check_scan_query(std::string_view target);

/// If the JSON object `text`, of which a DOM parse kept `parsed_members` members, gives one
/// name to two of its own members (compared after unescaping), the error that says so:
/// `"value" appears twice in the body` (a name over 64 bytes is not repeated). nullopt if
/// not, and when `text` is not one well-formed value. A DOM parse keeps one of the two
/// members, and parsers differ on which one, so the server refuses such a body rather than
/// guess which the client meant. Without a repeated name it only counts members.
std::optional<std::string> duplicate_member_error(std::string_view text, std::size_t parsed_members);

/// Extracts the value of a PUT body `{"value": "..."}`: malformed JSON, a body that is not
/// an object, a member named twice, or a missing or non-string "value" is 400; over
/// max_value_bytes is 413.
checked_input check_put_body(std::string_view body);

/// A PUT's or DELETE's precondition from its If-Match and If-None-Match headers, or the
/// status (400) and message to answer with.
struct checked_precondition {
    std::optional<kv_precondition> value;
    boost::beast::http::status status = boost::beast::http::status::ok;
    std::string error;
};

/// Reads the precondition of a PUT or a DELETE from the values of its If-Match and
/// If-None-Match headers (each header's every occurrence, in order). If-Match names one
/// version, quoted as an ETag ("7") or bare (7): a decimal of at most 2^64 - 1. If-None-Match
/// is "*", on a PUT only: create the key only if absent. None of them: an empty
/// precondition. Both headers, a header given twice, a list, "*" in If-Match, a weak ETag
/// (W/"7") or anything else is 400.
checked_precondition check_precondition(boost::beast::http::verb method,
                                        const std::vector<std::string_view>& if_match,
                                        const std::vector<std::string_view>& if_none_match);

/// The conditions of a GET or HEAD of one key (RFC 9110 13.1.1 and 13.1.2), held until the
/// key's version is read.
struct read_condition {
    /// If-Match: the key exists at this version, or the answer is 412.
    std::optional<std::uint64_t> match;
    /// If-None-Match "*": an existing key, whatever its version, is 304 Not Modified.
    bool none_match_any = false;
    /// If-None-Match with entity tags: a key at one of these versions is 304.
    std::vector<std::uint64_t> none_match;

    enum class outcome { serve, not_modified, precondition_failed };
    /// What to answer for a key that exists at `version`, or does not (`exists` false):
    /// If-Match first, then If-None-Match, as RFC 9110 13.2.2 orders them.
    outcome evaluate(bool exists, std::uint64_t version) const noexcept;
};

struct checked_read_condition {
    std::optional<read_condition> value;
    boost::beast::http::status status = boost::beast::http::status::ok;
    std::string error;
};

/// Reads the conditions of a GET or HEAD of one key from its If-Match and If-None-Match
/// headers (each header's every occurrence, in order). If-Match takes the forms a PUT's
/// does: one version, quoted ("7") or bare (7). If-None-Match is "*" or a list of entity
/// tags as a cache sends them: quoted, weak (W/"7", compared weakly as RFC 9110 8.8.3.2
/// says) or bare, over one header or several; a tag that names no version matches no
/// version. Both headers may be given. A malformed value is 400.
checked_read_condition check_read_condition(const std::vector<std::string_view>& if_match,
                                            const std::vector<std::string_view>& if_none_match);

/// The headers naming a write's client session (docs/server.md, Exactly-once writes).
inline constexpr std::string_view client_id_header = "Raftkv-Client-Id";
inline constexpr std::string_view sequence_header = "Raftkv-Sequence";
/// Set to "true" on the answer to a write that repeated a sequence already applied.
inline constexpr std::string_view replayed_header = "Raftkv-Replayed";
/// On every answer to a GET of keys: how it was served (read-index, lease or stale), and
/// the applied index the state was read at (docs/server.md, Read modes).
inline constexpr std::string_view read_header = "Raftkv-Read";
inline constexpr std::string_view applied_index_header = "Raftkv-Applied-Index";

struct checked_session {
    /// Nothing when the request names no session (or on an error).
    std::optional<kv_client_session> value;
    boost::beast::http::status status = boost::beast::http::status::ok;
    /// Empty unless the headers are bad (status 400).
    std::string error;
};

/// Reads the client session of a PUT or a DELETE from the values of its Raftkv-Client-Id
/// and Raftkv-Sequence headers (each header's every occurrence, in order): each a decimal
/// number from 1 to 2^64 - 1, with optional surrounding spaces. Neither header: no session.
/// One without the other, a header given twice, or a value out of range is 400. The
/// session gets the default expiry and bound (kv_session_default_expiry,
/// kv_session_default_max_sessions).
checked_session check_session(const std::vector<std::string_view>& client_id,
                              const std::vector<std::string_view>& sequence);

} // namespace raftkv::server

#endif
