#include "member_info.hpp"

#include <raftkv/asio/detail/greeting.hpp>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <vector>

namespace raftkv::server {

namespace {

std::optional<host_port> address_field(const boost::json::object& o, std::string_view name)
{
    const boost::json::value* v = o.if_contains(name);
    if (!v || !v->is_string())
        return std::nullopt;
    return parse_host_port(std::string_view(v->get_string()));
}

std::string join_ids(const std::vector<node_id>& ids)
{
    std::string out;
    for (node_id id : ids) {
        // Two appends, not `"," + std::to_string(id)`: GCC 12 warns falsely (-Wrestrict,
        // its bug 105329) about the inserting operator+.
        if (!out.empty())
            out += ',';
        out += std::to_string(id);
    }
    return out.empty() ? "none" : out;
}

} // namespace

std::string encode_member_info(const host_port& raft, const std::optional<host_port>& http,
                               std::uint64_t added, std::uint64_t replaces)
{
    boost::json::object o;
    o["raft"] = raft.to_string();
    if (http)
        o["http"] = http->to_string();
    if (added != 0)
        o["added"] = raftkv::asio::detail::cluster_id_name(added);
    if (replaces != 0)
        o["replaces"] = raftkv::asio::detail::cluster_id_name(replaces);
    return boost::json::serialize(o);
}

member_info decode_member_info(std::string_view info)
{
    boost::system::error_code ec;
    const boost::json::value doc = boost::json::parse(info, ec);
    const boost::json::object* o = ec ? nullptr : doc.if_object();
    if (!o)
        return {};
    const auto hex_field = [&](std::string_view name) -> std::uint64_t {
        if (const boost::json::value* v = o->if_contains(name); v && v->is_string())
            return parse_hex_id(std::string_view(v->get_string())).value_or(0);
        return 0;
    };
    return {address_field(*o, "raft"), address_field(*o, "http"), hex_field("added"), hex_field("replaces")};
}

std::set<node_id> member_ids(const membership& m)
{
    std::set<node_id> ids(m.voters.begin(), m.voters.end());
    ids.insert(m.outgoing.begin(), m.outgoing.end());
    ids.insert(m.learners.begin(), m.learners.end());
    return ids;
}

std::string describe_members(const membership& m)
{
    std::string out = "voters " + join_ids(m.voters);
    if (m.joint())
        out += " (joint, leaving " + join_ids(m.outgoing) + ")";
    if (!m.learners.empty())
        out += ", learners " + join_ids(m.learners);
    return out;
}

} // namespace raftkv::server
