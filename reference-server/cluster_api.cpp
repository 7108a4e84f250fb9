#include "cluster_api.hpp"

#include "api.hpp"
#include "kv_service.hpp"
#include "request_parsing.hpp"

#include <raftkv/asio/detail/greeting.hpp>
#include <raftkv/error.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <initializer_list>

namespace raftkv::server {

namespace {

namespace http = boost::beast::http;
namespace json = boost::json;

template <class T>
checked<T> bad(std::string error)
{
    return {std::nullopt, http::status::bad_request, std::move(error)};
}

const std::string id_range = "an integer from 1 to " + std::to_string(UINT64_MAX);

/// A JSON object body, or why not; `expected` shows the shape in the message.
std::optional<json::object> parse_object(std::string_view body, std::string_view expected, std::string& error)
{
    boost::system::error_code ec;
    json::value doc = json::parse(body, ec);
    if (ec) {
        error = "malformed JSON body: " + ec.message();
        return std::nullopt;
    }
    if (!doc.is_object()) {
        error = "the body must be a JSON object: " + std::string(expected);
        return std::nullopt;
    }
    if (auto duplicate = duplicate_member_error(body, doc.as_object().size())) {
        error = std::move(*duplicate);
        return std::nullopt;
    }
    return std::move(doc.as_object());
}

/// A member of the body not in `known`: a typo ("lerner") must not silently change what
/// is asked for.
std::optional<std::string> unknown_member(const json::object& o,
                                          std::initializer_list<std::string_view> known)
{
    for (const auto& member : o)
        if (std::find(known.begin(), known.end(), member.key()) == known.end())
            return std::string(member.key());
    return std::nullopt;
}

std::optional<node_id> as_node_id(const json::value& v)
{
    if (v.is_uint64() && v.get_uint64() != 0)
        return v.get_uint64();
    if (v.is_int64() && v.get_int64() > 0)
        return static_cast<node_id>(v.get_int64());
    return std::nullopt;
}

/// The "id" member: required, 1 to 2^64-1.
std::optional<node_id> id_member(const json::object& o, std::string& error)
{
    const json::value* v = o.if_contains("id");
    if (!v) {
        error = "missing \"id\" in the body";
        return std::nullopt;
    }
    const std::optional<node_id> id = as_node_id(*v);
    if (!id)
        error = "\"id\" must be " + id_range;
    return id;
}

/// An address member; `error` set if present and not a string "host:port".
std::optional<host_port> address_member(const json::object& o, std::string_view name, std::string& error)
{
    const json::value* v = o.if_contains(name);
    if (!v)
        return std::nullopt;
    const json::string* text = v->if_string();
    std::optional<host_port> address = text ? parse_host_port(std::string_view(*text)) : std::nullopt;
    if (!address) {
        // Not "\"" + std::string(name) + ...: GCC 12 at -O3 reports a false -Wrestrict on it.
        error.assign(1, '"').append(name).append(
            "\" must be a string \"host:port\" (a port from 1 to 65535)");
    }
    return address;
}

/// Why a member's addresses cannot be dialed, or "": the others dial the Raft address and
/// forward to the HTTP one, and a wildcard reaches neither.
std::string wildcard_address(const std::optional<host_port>& raft, const std::optional<host_port>& http)
{
    const bool raft_wild = raft && is_wildcard(*raft);
    if (!raft_wild && !(http && is_wildcard(*http)))
        return {};
    std::string why(raft_wild ? "\"raft\": " : "\"http\": ");
    why += (raft_wild ? *raft : *http).to_string();
    why += " is a wildcard address; give the address the other members reach it at";
    return why;
}

} // namespace

std::string cluster_id_hex(std::uint64_t id)
{
    return raftkv::asio::detail::cluster_id_name(id).substr(2);
}

checked<member_request> check_member_body(std::string_view body)
{
    constexpr std::string_view shape =
        R"({"id": N, "raft": "host:port", "http": "host:port", "learner": true})";
    std::string error;
    const std::optional<json::object> o = parse_object(body, shape, error);
    if (!o)
        return bad<member_request>(error);
    if (const auto unknown = unknown_member(*o, {"id", "raft", "http", "learner"}))
        return bad<member_request>("unknown member \"" + *unknown + "\" in the body (expected " +
                                   std::string(shape) + ")");
    member_request r;
    if (const auto id = id_member(*o, error))
        r.id = *id;
    else
        return bad<member_request>(error);
    if (const auto raft = address_member(*o, "raft", error))
        r.raft = *raft;
    else
        return bad<member_request>(error.empty() ? "missing \"raft\" in the body" : error);
    r.http = address_member(*o, "http", error);
    if (!error.empty())
        return bad<member_request>(error);
    if (std::string why = wildcard_address(r.raft, r.http); !why.empty())
        return bad<member_request>(std::move(why));
    if (const json::value* learner = o->if_contains("learner")) {
        if (!learner->is_bool())
            return bad<member_request>("\"learner\" must be true or false");
        r.learner = learner->get_bool();
    }
    return {std::move(r), http::status::ok, {}};
}

checked<member_update> check_member_update_body(std::string_view body)
{
    constexpr std::string_view shape = R"({"raft": "host:port", "http": "host:port"})";
    std::string error;
    const std::optional<json::object> o = parse_object(body, shape, error);
    if (!o)
        return bad<member_update>(error);
    if (const auto unknown = unknown_member(*o, {"raft", "http"}))
        return bad<member_update>("unknown member \"" + *unknown + "\" in the body (expected " +
                                  std::string(shape) + "; the id is in the path)");
    member_update u;
    u.raft = address_member(*o, "raft", error);
    if (error.empty())
        u.http = address_member(*o, "http", error);
    if (!error.empty())
        return bad<member_update>(error);
    if (!u.raft && !u.http)
        return bad<member_update>("nothing to change: give \"raft\", \"http\" or both (" +
                                  std::string(shape) + ")");
    if (std::string why = wildcard_address(u.raft, u.http); !why.empty())
        return bad<member_update>(std::move(why));
    return {std::move(u), http::status::ok, {}};
}

checked<node_id> check_leader_body(std::string_view body)
{
    std::string error;
    const std::optional<json::object> o = parse_object(body, R"({"id": N})", error);
    if (!o)
        return bad<node_id>(error);
    if (const auto unknown = unknown_member(*o, {"id"}))
        return bad<node_id>("unknown member \"" + *unknown + "\" in the body (expected {\"id\": N})");
    const std::optional<node_id> id = id_member(*o, error);
    if (!id)
        return bad<node_id>(error);
    return {id, http::status::ok, {}};
}

checked<node_id> check_member_id(std::string_view raw_id)
{
    const std::optional<node_id> id = parse_node_id(raw_id);
    if (!id)
        return bad<node_id>("malformed member id in the path: expected " + id_range);
    return {id, http::status::ok, {}};
}

std::string members_json(const service_status& s, const std::map<node_id, index_t>& match,
                         std::optional<bool> changed)
{
    json::array members;
    for (const member_status& m : s.members) {
        json::object member{{"id", m.id}, {"raft", m.raft}};
        member["http"] = m.http ? json::value(*m.http) : json::value(nullptr);
        member["role"] = to_string(m.role);
        if (const auto i = match.find(m.id); i != match.end())
            member["match"] = i->second;
        if (m.incarnation)
            member["incarnation"] = cluster_id_hex(*m.incarnation);
        members.push_back(std::move(member));
    }
    json::object body;
    body["id"] = s.node.id;
    body["cluster_id"] = cluster_id_hex(s.cluster_id);
    body["members"] = std::move(members);
    body["members_index"] = s.node.members_index;
    // Whether that configuration is committed as far as the answering node knows: a node
    // missing from a committed one was removed (kv_service's address check relies on it).
    body["members_committed"] = s.node.members_index <= s.node.commit_index;
    body["joint"] = s.node.members.joint();
    body["leader"] = s.node.leader == no_node ? json::value(nullptr) : json::value(s.node.leader);
    if (changed)
        body["changed"] = *changed;
    return json::serialize(body);
}

http_response membership_failure_response(std::error_code ec, node_id id, std::optional<index_t> lag)
{
    using raftkv::errc;
    if (ec == errc::change_in_progress)
        return error_response(http::status::conflict,
                              "a membership change is in progress (or the leader is new and has not "
                              "committed an entry yet); retry once it has committed");
    if (ec == errc::learner_behind)
        return error_response(
            http::status::conflict,
            "learner " + std::to_string(id) + " has not caught up" +
                (lag ? ": it is " + std::to_string(*lag) + " entries behind the leader" : std::string()) +
                "; retry once it has");
    if (ec == errc::quorum_at_risk)
        return error_response(http::status::conflict,
                              "refused: too few of the voters the change would leave answer the leader for a "
                              "quorum, so the cluster would stall");
    if (ec == errc::invalid_argument)
        return error_response(http::status::bad_request,
                              "the change does not apply to the configuration in force");
    const auto unavailable = [](std::string_view message) {
        return error_response(http::status::service_unavailable, message);
    };
    if (ec == errc::timeout)
        return unavailable("timed out; the outcome of the change is unknown");
    if (ec == errc::leadership_lost)
        return unavailable("leadership lost before the change was applied; the outcome is unknown");
    if (ec == errc::proposal_dropped)
        return unavailable("the change was overwritten by a new leader and did not take effect; retry");
    return failure_response(ec, request_kind::write);
}

http_response quorum_at_risk_response(const std::vector<node_id>& next_voters,
                                      const std::set<node_id>& answering)
{
    const auto add = [](std::string& list, node_id id) {
        if (!list.empty())
            list += ',';
        list += std::to_string(id);
    };
    std::string voters;
    std::string silent;
    std::size_t silent_count = 0;
    for (node_id id : next_voters) {
        add(voters, id);
        if (!answering.contains(id)) {
            add(silent, id);
            ++silent_count;
        }
    }
    const bool one = silent_count == 1;
    return error_response(
        http::status::conflict,
        "refused: voters " + voters + " would remain, and " + (one ? "node " : "nodes ") + silent +
            (one ? " does" : " do") + " not answer the leader (down, cut off or never started), so " +
            std::to_string(next_voters.size() - silent_count) + " of them could not make the quorum of " +
            std::to_string(next_voters.size() / 2 + 1) + " and the cluster would stall. Bring " +
            (one ? "it" : "them") + " back or remove " + (one ? "it" : "them") +
            " first; to add a node, add it as a learner and promote it once it has caught up");
}

} // namespace raftkv::server
