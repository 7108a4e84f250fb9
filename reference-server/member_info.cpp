#include "member_info.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace raftkv::server {

namespace {

std::optional<host_port> address_field(const boost::json::object& o, std::string_view name)
{
    const boost::json::value* v = o.if_contains(name);
    if (!v || !v->is_string())
        return std::nullopt;
    return parse_host_port(std::string_view(v->get_string()));
}

} // namespace

std::string encode_member_info(const host_port& raft, const std::optional<host_port>& http)
{
    boost::json::object o;
    o["raft"] = raft.to_string();
    if (http)
        o["http"] = http->to_string();
    return boost::json::serialize(o);
}

member_info decode_member_info(std::string_view info)
{
    boost::system::error_code ec;
    const boost::json::value doc = boost::json::parse(info, ec);
    const boost::json::object* o = ec ? nullptr : doc.if_object();
    if (!o)
        return {};
    return {address_field(*o, "raft"), address_field(*o, "http")};
}

} // namespace raftkv::server
