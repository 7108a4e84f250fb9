#include "join.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <charconv>
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
        if (role && role->is_string() && role->get_string() == "learner")
            view.learners.push_back(node);
    }
    return view;
}

cluster_view fetch_cluster(const host_port& address, std::chrono::milliseconds timeout,
                           std::string_view bearer)
{
    const std::string where = "http://" + address.to_string();
    try {
        asio::io_context io;
        asio::ip::tcp::resolver resolver(io);
        beast::tcp_stream stream(io);
        stream.expires_after(timeout);
        stream.connect(resolver.resolve(address.host, std::to_string(address.port)));
        http::request<http::empty_body> req{http::verb::get, "/cluster/members", 11};
        req.set(http::field::host, address.to_string());
        if (!bearer.empty())
            req.set(http::field::authorization, "Bearer " + std::string(bearer));
        http::write(stream, req);
        beast::flat_buffer buffer;
        http::response_parser<http::string_body> parser;
        parser.body_limit(16 * 1024 * 1024);
        http::read(stream, buffer, parser);
        const auto& res = parser.get();
        if (res.result() != http::status::ok)
            throw std::runtime_error(where + " answered GET /cluster/members with " +
                                     std::to_string(res.result_int()) + ": " + res.body().substr(0, 300));
        return parse_cluster_view(res.body());
    } catch (const boost::system::system_error& e) {
        throw std::runtime_error("cannot ask " + where + " for the cluster's members: " + e.code().message());
    }
}

} // namespace raftkv::server
