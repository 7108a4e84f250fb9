#include "join.hpp"

#include "client_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>

namespace raftkv::server {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

[[noreturn]] void malformed(const std::string& why)
{
    throw std::runtime_error("the answer to GET /cluster/members is not a member list: " + why);
}

} // namespace

cluster_view parse_cluster_view(std::string_view body)
{
    boost::system::error_code ec;
    const json::value v = json::parse(body, ec);
    if (ec || !v.is_object())
        malformed("not a JSON object");
    const json::object& o = v.get_object();
    cluster_view view;
    const json::value* id = o.if_contains("cluster_id");
    if (!id || !id->is_string())
        malformed("no \"cluster_id\" string");
    const json::string& hex = id->get_string();
    auto [end, err] = std::from_chars(hex.data(), hex.data() + hex.size(), view.cluster_id, 16);
    if (err != std::errc{} || end != hex.data() + hex.size() || view.cluster_id == 0)
        malformed("\"cluster_id\" is not a hexadecimal id");
    if (const json::value* self = o.if_contains("id")) {
        const auto node = self->is_number() ? self->to_number<std::uint64_t>(ec) : no_node;
        if (ec || node == no_node)
            malformed("\"id\" is not a node id");
        view.answered_by = node;
    }
    if (const json::value* leader = o.if_contains("leader"); leader && leader->is_number()) {
        const auto node = leader->to_number<std::uint64_t>(ec);
        if (ec || node == no_node)
            malformed("\"leader\" is not a node id");
        view.leader = node;
    }
    if (const json::value* index = o.if_contains("members_index"); index && index->is_number()) {
        view.members_index = index->to_number<index_t>(ec);
        if (ec)
            malformed("\"members_index\" is not a log index");
    }
    if (const json::value* committed = o.if_contains("members_committed")) {
        if (!committed->is_bool())
            malformed("\"members_committed\" is not true or false");
        view.members_committed = committed->get_bool();
    }
    const json::value* members = o.if_contains("members");
    if (!members || !members->is_array())
        malformed("no \"members\" array");
    for (const json::value& m : members->get_array()) {
        const json::object* mo = m.if_object();
        const json::value* mid = mo ? mo->if_contains("id") : nullptr;
        const json::value* raft = mo ? mo->if_contains("raft") : nullptr;
        const json::value* role = mo ? mo->if_contains("role") : nullptr;
        if (!mid || !mid->is_number() || !raft || !raft->is_string())
            malformed("a member without a numeric \"id\" and a \"raft\" address");
        const auto node = mid->to_number<std::uint64_t>(ec);
        auto address = parse_host_port(std::string_view(raft->get_string()));
        if (ec || node == no_node || !address)
            malformed("member " + json::serialize(m) + " has a bad id or address");
        view.raft[node] = *address;
        if (const json::value* http = mo->if_contains("http"); http && http->is_string())
            if (auto h = parse_host_port(std::string_view(http->get_string())))
                view.http[node] = *h;
        if (role && role->is_string() && role->get_string() == "learner")
            view.learners.push_back(node);
        if (const json::value* incarnation = mo->if_contains("incarnation")) {
            const json::string* text = incarnation->if_string();
            std::uint64_t value = 0;
            const auto [end, err] =
                text ? std::from_chars(text->data(), text->data() + text->size(), value, 16)
                     : std::from_chars_result{nullptr, std::errc::invalid_argument};
            if (err != std::errc{} || end != text->data() + text->size() || value == 0)
                malformed("member " + json::serialize(m) + " has a bad \"incarnation\"");
            view.incarnations[node] = value;
        }
    }
    return view;
}

cluster_view fetch_cluster(const host_port& address, std::chrono::milliseconds timeout,
                           std::string_view bearer, std::shared_ptr<tls_context> tls)
{
    const std::string where = (tls ? "https://" : "http://") + address.to_string();
    asio::io_context io;
    beast::error_code failure;
    std::string verify; // why the server's certificate was not accepted
    std::optional<http::response<http::string_body>> answer;
    const auto ask = [&]() -> asio::awaitable<void> {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        asio::ip::tcp::resolver resolver(io.get_executor());
        const std::string port = std::to_string(address.port);
        constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
        auto [resolve_ec, endpoints] = co_await resolver.async_resolve(address.host, port, nothrow);
        if (resolve_ec) {
            failure = resolve_ec;
            co_return;
        }
        http_client_stream stream{io.get_executor(), tls};
        const beast::error_code connect_ec = co_await stream.connect(endpoints, address.host, deadline);
        if (connect_ec) {
            failure = connect_ec;
            verify = stream.verify_failure();
            co_return;
        }
        stream.expires_at(deadline);
        http_request req{http::verb::get, "/cluster/members", 11};
        req.set(http::field::host, address.to_string());
        if (!bearer.empty())
            req.set(http::field::authorization, "Bearer " + std::string(bearer));
        const beast::error_code write_ec = co_await stream.write(req);
        if (write_ec) {
            failure = write_ec;
            co_return;
        }
        beast::flat_buffer buffer;
        http::response_parser<http::string_body> parser;
        parser.body_limit(16 * 1024 * 1024);
        const beast::error_code read_ec = co_await stream.read(buffer, parser);
        stream.close();
        if (read_ec) {
            failure = read_ec;
            co_return;
        }
        answer.emplace(parser.release());
    };
    std::exception_ptr thrown;
    asio::co_spawn(io, ask, [&thrown](std::exception_ptr e) { thrown = e; });
    io.run();
    if (thrown)
        std::rethrow_exception(thrown);
    if (!answer)
        throw std::runtime_error("cannot ask " + where + " for the cluster's members: " +
                                 (failure ? failure.message() : std::string("no answer")) +
                                 (verify.empty() ? std::string() : " (" + verify + ")"));
    if (answer->result() != http::status::ok)
        throw std::runtime_error(where + " answered GET /cluster/members with " +
                                 std::to_string(answer->result_int()) + ": " + answer->body().substr(0, 300));
    return parse_cluster_view(answer->body());
}

} // namespace raftkv::server
