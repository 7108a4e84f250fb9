#include "cluster_status.hpp"

#include "client_stream.hpp"
#include "config.hpp"
#include "kv_service.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <exception>
#include <map>
#include <optional>
#include <utility>
#include <vector>

// GCC 12 reports Asio's coroutine frame allocation, once one coroutine's start is inlined
// into another, as a mismatched new and delete (GCC PR 109224): a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace raftkv::server {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

// A /status or /cluster/members answer is a few KiB; anything far larger is not one.
constexpr std::size_t answer_limit = std::size_t{1} << 20;

// How long past the members' deadline the gathering waits for a resolver that ignores it.
constexpr std::chrono::milliseconds grace{100};

/// What one GET to a member came to: an answer (`status` not 0) or why none came.
struct fetch_result {
    unsigned status = 0;
    std::string body;
    std::string error = "timed out";
};

// A timeout is the member's (or the network's) fault: say so, not "operation canceled".
std::string describe(const beast::error_code& ec)
{
    return ec == beast::error::timeout ? "timed out" : ec.message();
}

asio::awaitable<fetch_result> fetch(asio::any_io_executor ex, std::shared_ptr<tls_context> tls,
                                    std::string address, std::string target, std::string authorization,
                                    clock::time_point deadline)
{
    fetch_result out;
    const std::optional<host_port> hp = parse_host_port(address);
    if (!hp) {
        out.error = "malformed HTTP address " + address;
        co_return out;
    }
    tcp::resolver resolver(ex);
    const std::string port = std::to_string(hp->port);
    auto [resolve_ec, endpoints] = co_await resolver.async_resolve(hp->host, port, nothrow_awaitable);
    if (resolve_ec) {
        out.error = "cannot resolve " + hp->host + ": " + resolve_ec.message();
        co_return out;
    }
    http_client_stream stream(ex, tls);
    const beast::error_code connect_ec = co_await stream.connect(endpoints, hp->host, deadline);
    if (connect_ec) {
        const std::string verify = stream.verify_failure();
        out.error = "cannot connect to " + address + ": " + describe(connect_ec) +
                    (verify.empty() ? std::string() : " (" + verify + ")");
        co_return out;
    }
    http_request req{http::verb::get, target, 11};
    req.set(http::field::host, address);
    if (!authorization.empty())
        req.set(http::field::authorization, authorization);
    req.keep_alive(false);
    stream.expires_at(deadline);
    const beast::error_code write_ec = co_await stream.write(req);
    if (write_ec) {
        out.error = "cannot send to " + address + ": " + describe(write_ec);
        stream.close();
        co_return out;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(answer_limit);
    const beast::error_code read_ec = co_await stream.read(buffer, parser);
    stream.close();
    if (read_ec) {
        out.error = "no answer from " + address + ": " + describe(read_ec);
        co_return out;
    }
    out.status = parser.get().result_int();
    out.body = parser.get().body();
    out.error.clear();
    co_return out;
}

/// The GETs in flight, shared by their coroutines and the gathering one; used on one strand.
struct fan_out {
    explicit fan_out(asio::any_io_executor ex) : done(std::move(ex)) {}

    std::vector<fetch_result> results;
    std::size_t remaining = 0;
    asio::steady_timer done;
};

/// The error object of an answer other than 200 with a JSON object.
std::optional<std::string> refusal(const fetch_result& r)
{
    if (r.status == 0)
        return r.error;
    std::string error = "answered " + std::to_string(r.status);
    boost::system::error_code ec;
    const json::value body = json::parse(r.body, ec);
    const json::object* o = ec ? nullptr : body.if_object();
    if (r.status == 200 && o)
        return std::nullopt;
    if (r.status == 200)
        return "answered 200 with a body that is not a JSON object";
    if (const json::value* e = o ? o->if_contains("error") : nullptr; e && e->is_string())
        error += ": " + std::string(e->get_string());
    return error;
}

/// The "match" of each member in a leader's GET /cluster/members answer.
std::map<node_id, index_t> match_of(const fetch_result& r)
{
    std::map<node_id, index_t> match;
    if (refusal(r))
        return match;
    boost::system::error_code ec;
    const json::value body = json::parse(r.body, ec);
    const json::value* members = body.as_object().if_contains("members");
    if (!members || !members->is_array())
        return match;
    for (const json::value& m : members->get_array()) {
        const json::object* o = m.if_object();
        const json::value* id = o ? o->if_contains("id") : nullptr;
        const json::value* index = o ? o->if_contains("match") : nullptr;
        if (id && index && id->is_uint64() && index->is_uint64())
            match[id->get_uint64()] = index->get_uint64();
        else if (id && index && id->is_int64() && index->is_int64() && id->get_int64() > 0 &&
                 index->get_int64() >= 0)
            match[static_cast<node_id>(id->get_int64())] = static_cast<index_t>(index->get_int64());
    }
    return match;
}

} // namespace

asio::awaitable<json::object> gather_cluster_status(kv_service& service, json::object self,
                                                    cluster_status_options options)
{
    const asio::any_io_executor ex = co_await asio::this_coro::executor;
    const service_status s = service.status();
    const node_id leader = service.leader();
    const clock::time_point deadline = clock::now() + options.timeout;

    // One GET /status per other member with an address, and the leader's member list for
    // the match indexes when another member leads.
    auto state = std::make_shared<fan_out>(ex);
    std::vector<std::optional<std::size_t>> status_request(s.members.size());
    std::optional<std::size_t> members_request;
    const auto start = [&](const std::string& address, std::string target) {
        const std::size_t k = state->results.size();
        state->results.emplace_back();
        ++state->remaining;
        asio::co_spawn(ex,
                       fetch(ex, options.tls, address, std::move(target), options.authorization, deadline),
                       [state, k](std::exception_ptr e, fetch_result r) {
                           if (e)
                               r.error = "internal error";
                           state->results[k] = std::move(r);
                           if (--state->remaining == 0)
                               state->done.cancel();
                       });
        return k;
    };
    for (std::size_t i = 0; i < s.members.size(); ++i) {
        const member_status& m = s.members[i];
        if (m.id != service.id() && m.http)
            status_request[i] = start(*m.http, "/status");
        if (m.id == leader && m.id != service.id() && m.http)
            members_request = start(*m.http, "/cluster/members");
    }
    std::map<node_id, index_t> match;
    if (leader == service.id()) {
        std::map<node_id, index_t> own = co_await service.match_indexes();
        match = std::move(own);
    }
    state->done.expires_at(deadline + grace);
    while (state->remaining > 0 && clock::now() < deadline + grace)
        co_await state->done.async_wait(nothrow_awaitable);
    if (members_request)
        match = match_of(state->results[*members_request]);

    json::array members;
    for (std::size_t i = 0; i < s.members.size(); ++i) {
        const member_status& m = s.members[i];
        json::object member{{"id", m.id}};
        member["http"] = m.http ? json::value(*m.http) : json::value(nullptr);
        if (m.id == service.id()) {
            member["reachable"] = true;
            member["status"] = std::move(self);
        } else if (!status_request[i]) {
            member["reachable"] = false;
            member["error"] = "its HTTP address is not known yet";
        } else {
            const fetch_result& r = state->results[*status_request[i]];
            member["reachable"] = r.status != 0;
            if (const std::optional<std::string> error = refusal(r))
                member["error"] = *error;
            else
                member["status"] = json::parse(r.body);
        }
        if (const auto it = match.find(m.id); it != match.end())
            member["match"] = it->second;
        members.push_back(std::move(member));
    }
    json::object body{{"id", service.id()}};
    body["leader"] = leader == no_node ? json::value(nullptr) : json::value(leader);
    body["time"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
    body["members"] = std::move(members);
    co_return body;
}

} // namespace raftkv::server
