// raftkv-server's membership operations on real processes: the member list, growing a
// three-node cluster with a learner that joins and is promoted, removing a follower and the
// leader while clients write, and handing leadership over by HTTP.
#define BOOST_TEST_MODULE raftkv_e2e_membership
#include <boost/test/unit_test.hpp>

#include "harness.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace raftkv::e2e;
namespace json = boost::json;

/// A member of a GET /cluster/members answer.
struct member {
    std::uint64_t id = 0;
    std::string raft;
    std::optional<std::string> http;
    std::string role;
    std::optional<std::uint64_t> match;
};

struct member_list {
    std::vector<member> members;
    std::uint64_t members_index = 0;
    bool joint = false;
    std::optional<std::uint64_t> leader;
    std::string cluster_id;

    std::set<std::uint64_t> ids(std::string_view role) const
    {
        std::set<std::uint64_t> out;
        for (const member& m : members)
            if (m.role == role)
                out.insert(m.id);
        return out;
    }
};

/// Parses a GET /cluster/members body strictly; nullopt (and BOOST_TEST failures) if its
/// shape is wrong.
std::optional<member_list> parse_members(std::string_view body)
{
    boost::system::error_code ec;
    const json::value v = json::parse(body, ec);
    BOOST_TEST_REQUIRE(!ec, body);
    const json::object& o = v.as_object();
    member_list out;
    BOOST_TEST_REQUIRE(o.at("cluster_id").is_string());
    out.cluster_id = std::string(o.at("cluster_id").get_string());
    out.members_index = o.at("members_index").to_number<std::uint64_t>();
    out.joint = o.at("joint").as_bool();
    if (!o.at("leader").is_null())
        out.leader = o.at("leader").to_number<std::uint64_t>();
    for (const json::value& mv : o.at("members").as_array()) {
        const json::object& mo = mv.as_object();
        member m;
        m.id = mo.at("id").to_number<std::uint64_t>();
        m.raft = std::string(mo.at("raft").as_string());
        if (!mo.at("http").is_null())
            m.http = std::string(mo.at("http").as_string());
        m.role = std::string(mo.at("role").as_string());
        if (const json::value* match = mo.if_contains("match"))
            m.match = match->to_number<std::uint64_t>();
        out.members.push_back(std::move(m));
    }
    return out;
}

std::optional<member_list> get_members(std::uint16_t port)
{
    const http_response r = request(port, "GET", "/cluster/members");
    if (r.status != 200)
        return std::nullopt;
    return parse_members(r.body);
}

/// `args` with the value of `flag` replaced, or the flag and its value removed if `value`
/// is empty.
std::vector<std::string> with_flag(std::vector<std::string> args, const std::string& flag,
                                   const std::string& value)
{
    for (std::size_t i = 0; i + 1 < args.size(); ++i)
        if (args[i] == flag) {
            if (value.empty())
                args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
                           args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
            else
                args[i + 1] = value;
            return args;
        }
    if (!value.empty()) {
        args.push_back(flag);
        args.push_back(value);
    }
    return args;
}

/// Four node slots, of which 1-3 start as a cluster (their --peers lists only them) and 4
/// is kept for a node that joins.
struct membership_fixture {
    cluster c{4, false};
    std::uint64_t leader = 0;

    membership_fixture()
    {
        std::string peers;
        for (std::uint64_t id = 1; id <= 3; ++id) {
            // Not (... ? "" : ",") + std::to_string(id) + ...: GCC 12 at -O3 reports a false
            // -Wrestrict on operator+(const char*, std::string&&).
            if (!peers.empty())
                peers += ",";
            peers += std::to_string(id) + "=" + c.spec(id).raft_address();
        }
        for (std::uint64_t id = 1; id <= 3; ++id)
            c.start(id, with_flag(c.args(id), "--peers", peers));
        const auto l = wait_for_leader_among({1, 2, 3}, 20s);
        BOOST_TEST_REQUIRE(l.has_value(), "no leader within 20 s");
        leader = *l;
    }

    /// A node among `ids` that says it leads and that every other one of `ids` names.
    std::optional<std::uint64_t> wait_for_leader_among(const std::vector<std::uint64_t>& ids,
                                                       milliseconds limit)
    {
        std::optional<std::uint64_t> found;
        wait_until(
            [&] {
                std::set<std::uint64_t> named;
                for (std::uint64_t id : ids) {
                    const auto s = get_status(c.http_port(id), 500ms);
                    if (!s || !s->leader)
                        return false;
                    named.insert(*s->leader);
                }
                if (named.size() != 1)
                    return false;
                const auto s = get_status(c.http_port(*named.begin()), 500ms);
                if (!s || s->role != "leader")
                    return false;
                found = *named.begin();
                return true;
            },
            limit, 50ms);
        return found;
    }

    std::vector<std::uint64_t> followers() const
    {
        std::vector<std::uint64_t> out;
        for (std::uint64_t id = 1; id <= 3; ++id)
            if (id != leader)
                out.push_back(id);
        return out;
    }
};

/// Writers that PUT their own keys through the given nodes until stopped, remembering
/// what was acknowledged, and counting answers that were neither 200 nor a retryable 503.
struct writers {
    std::mutex m;
    std::map<std::string, std::string> acked;
    std::atomic<bool> stop{false};
    std::atomic<int> odd{0};
    std::atomic<int> transfer_refusals{0}; // 503s saying a transfer is in progress
    std::atomic<int> no_leader{0};         // 503s saying there is no leader
    std::atomic<int> unknown{0};           // 503s saying the write's outcome is unknown
    std::vector<std::thread> pool;

    writers(cluster& c, std::vector<std::uint64_t> via, int count = 4)
    {
        for (int w = 0; w < count; ++w)
            pool.emplace_back([this, &c, via, w] {
                for (int i = 0; !stop; ++i) {
                    std::string key = "w"; // not "w" + std::to_string(w): a false -Wrestrict (GCC 12, -O3)
                    key += std::to_string(w) + "-" + std::to_string(i);
                    const auto node = via[static_cast<std::size_t>(i + w) % via.size()];
                    const http_response r = put(c.http_port(node), key, "v-" + key, 3s);
                    if (r.status == 200) {
                        std::lock_guard lock(m);
                        acked[key] = "v-" + key;
                    } else if (r.status == 503 && r.body.find("transfer") != std::string::npos) {
                        ++transfer_refusals;
                    } else if (r.status == 503 && r.body.find("no leader") != std::string::npos) {
                        ++no_leader;
                    } else if (r.status == 503 && r.body.find("outcome is unknown") != std::string::npos) {
                        ++unknown;
                    } else if (r.status != 503 && r.status != 0) {
                        ++odd;
                    }
                }
            });
    }

    /// How many writes were acknowledged so far.
    std::size_t count()
    {
        std::lock_guard lock(m);
        return acked.size();
    }

    void wait_for(std::size_t n)
    {
        wait_until(
            [&] {
                std::lock_guard lock(m);
                return acked.size() >= n;
            },
            20s, 5ms);
    }

    void finish()
    {
        stop = true;
        for (auto& t : pool)
            t.join();
        pool.clear();
    }

    ~writers() { finish(); }
};

/// How many acknowledged writes node `id` does not serve back.
std::size_t lost_writes(std::uint16_t port, const std::map<std::string, std::string>& acked)
{
    std::size_t lost = 0;
    http_client client(port);
    for (const auto& [key, value] : acked) {
        const http_response g = client.request("GET", kv_target(key), {}, 5s);
        if (g.status != 200 || parse_json(g.body).string("value") != value)
            if (++lost <= 5)
                BOOST_TEST_MESSAGE(key << ": " << describe(g));
    }
    return lost;
}

/// POSTs or DELETEs until the answer is not a 409 (another change still committing) or 503.
http_response change_until_settled(std::uint16_t port, std::string_view method, const std::string& target,
                                   const std::string& body = {})
{
    http_response r;
    wait_until(
        [&] {
            r = request(port, method, target, body, 8s);
            return r.status != 409 && r.status != 503 && r.status != 0;
        },
        20s, 100ms);
    return r;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(membership, membership_fixture)

BOOST_AUTO_TEST_CASE(the_member_list_has_its_shape_on_the_leader_and_on_a_follower)
{
    const auto on_leader = get_members(c.http_port(leader));
    BOOST_TEST_REQUIRE(on_leader.has_value());
    BOOST_TEST(on_leader->members.size() == 3u);
    BOOST_TEST((on_leader->ids("voter") == std::set<std::uint64_t>{1, 2, 3}));
    BOOST_TEST(!on_leader->joint);
    BOOST_TEST((on_leader->leader == leader));
    BOOST_TEST(on_leader->cluster_id.size() == 16u);
    for (const member& m : on_leader->members) {
        BOOST_TEST(m.raft == c.spec(m.id).raft_address());
        BOOST_TEST(m.match.has_value(), "the leader reports each member's match index");
    }

    const auto on_follower = get_members(c.http_port(followers().front()));
    BOOST_TEST_REQUIRE(on_follower.has_value());
    BOOST_TEST((on_follower->ids("voter") == std::set<std::uint64_t>{1, 2, 3}));
    BOOST_TEST(on_follower->cluster_id == on_leader->cluster_id);
    // GET /status names the same cluster, on every node.
    for (std::uint64_t id : {std::uint64_t{1}, std::uint64_t{2}, std::uint64_t{3}}) {
        const auto status = get_status(c.http_port(id));
        BOOST_TEST_REQUIRE(status.has_value());
        BOOST_TEST(status->cluster_id == on_leader->cluster_id, "node " << id);
    }
    for (const member& m : on_follower->members)
        BOOST_TEST(!m.match.has_value(), "a follower knows no match index");

    // Bad requests are refused where they arrive, follower or leader.
    const auto f = c.http_port(followers().front());
    BOOST_TEST(is_error(request(f, "POST", "/cluster/members", R"({"id": 4})"), 400));
    BOOST_TEST(is_error(request(f, "POST", "/cluster/members", "not json"), 400));
    BOOST_TEST(is_error(request(f, "DELETE", "/cluster/members/zero"), 400));
    BOOST_TEST(is_error(request(f, "DELETE", "/cluster/members/9"), 404));
    BOOST_TEST(is_error(request(f, "POST", "/cluster/members/9/promote"), 404));
    BOOST_TEST(is_error(request(f, "POST", "/cluster/members/1/promote"), 400));
    BOOST_TEST(is_error(request(f, "POST", "/cluster/leader", R"({"id": 9})"), 404));
    BOOST_TEST(is_error(request(f, "PUT", "/cluster/leader", R"({"id": 1})"), 405));
    const std::string taken = R"({"id": 5, "raft": ")" + c.spec(1).raft_address() + R"("})";
    BOOST_TEST(is_error(request(f, "POST", "/cluster/members", taken), 409));
    BOOST_TEST(is_error(request(f, "POST", "/cluster/members", R"({"id": 2, "raft": "127.0.0.1:1"})"), 409));
}

// A change asked with a parameter it would ignore (a dry run, a "force") is refused, and
// changes nothing.
BOOST_AUTO_TEST_CASE(a_member_is_not_added_at_another_members_raft_address)
{
    // Written as the member's address is, and as another name of it: both are refused.
    const std::uint64_t follower = followers().front();
    const std::string raft = c.spec(follower).raft_address(); // 127.0.0.1:PORT
    const std::string port = raft.substr(raft.rfind(':') + 1);
    for (const std::string& address : {raft, "localhost:" + port}) {
        const http_response r = request(c.http_port(leader), "POST", "/cluster/members",
                                        R"({"id": 9, "raft": ")" + address + R"(", "learner": true})");
        BOOST_TEST(is_error(r, 409), address << ": " << describe(r));
        BOOST_TEST(r.body.find("is member " + std::to_string(follower) + "'s") != std::string::npos,
                   describe(r));
    }
    const std::string members = request(c.http_port(leader), "GET", "/cluster/members").body;
    BOOST_TEST(members.find("\"id\":9") == std::string::npos, members);
}

BOOST_AUTO_TEST_CASE(membership_requests_refuse_parameters)
{
    const std::uint64_t follower = followers().front();
    const std::string id = std::to_string(follower);
    for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
             {"DELETE", "/cluster/members/" + id + "?dry_run=true"},
             {"POST", "/cluster/members/" + id + "/promote?force=1"},
             {"POST", "/cluster/leader?dry_run=true"},
             {"POST", "/cluster/members?dry_run=true"},
             {"GET", "/cluster/members?verbose"}}) {
        const std::string body = target.starts_with("/cluster/leader") ? R"({"id": )" + id + "}"
                                 : target.starts_with("/cluster/members?")
                                     ? R"({"id": 9, "raft": "127.0.0.1:1", "learner": true})"
                                     : "";
        const http_response r = request(c.http_port(leader), method, target, body);
        BOOST_TEST(is_error(r, 400), method << " " << target << ": " << describe(r));
        BOOST_TEST(r.body.find("unknown parameter") != std::string::npos, describe(r));
    }
    const auto s = get_status(c.http_port(leader));
    BOOST_TEST_REQUIRE(s.has_value());
    BOOST_TEST(s->role == "leader");
    const std::string members = request(c.http_port(leader), "GET", "/cluster/members").body;
    BOOST_TEST(members.find("\"id\":" + id) != std::string::npos, members);
    BOOST_TEST(members.find("\"id\":9") == std::string::npos, members);
}

// A member moved to new ports: its addresses are changed on the running cluster while it
// is down (PATCH, through a follower), it starts at the new ones and catches up; started
// later with yet another --http, it publishes that one itself.
BOOST_AUTO_TEST_CASE(a_member_moves_to_new_addresses_and_rejoins_there)
{
    const std::uint64_t moved = followers().front();
    const std::uint64_t via = followers().back();
    const std::string path = "/cluster/members/" + std::to_string(moved);
    const std::uint16_t f = c.http_port(via);
    BOOST_TEST(is_error(request(f, "PATCH", path, "{}"), 400));
    BOOST_TEST(is_error(request(f, "PATCH", path, R"({"id": 2, "http": "127.0.0.1:1"})"), 400));
    BOOST_TEST(is_error(request(f, "PATCH", path, R"({"raft": "0.0.0.0:1"})"), 400));
    BOOST_TEST(is_error(request(f, "PATCH", path, R"({"http": "nowhere"})"), 400));
    BOOST_TEST(is_error(request(f, "PATCH", "/cluster/members/9", R"({"http": "127.0.0.1:1"})"), 404));
    const std::string taken = R"({"raft": ")" + c.spec(via).raft_address() + R"("})";
    const http_response refused = request(f, "PATCH", path, taken);
    BOOST_TEST(is_error(refused, 409), describe(refused));
    BOOST_TEST(is_error(request(f, "PATCH", path + "?force=1", R"({"http": "127.0.0.1:1"})"), 400));
    BOOST_TEST(request(c.http_port(leader), "GET", "/cluster/members").body.find("127.0.0.1:1\"") ==
               std::string::npos);

    const std::string leaders_http = R"({"raft": ")" + c.spec(leader).http_address() + R"("})";
    const http_response on_http = request(f, "PATCH", path, leaders_http);
    BOOST_TEST(is_error(on_http, 409), describe(on_http));
    BOOST_TEST(on_http.body.find("HTTP address") != std::string::npos, describe(on_http));
    const http_response http_on_raft =
        request(f, "PATCH", path, R"({"http": ")" + c.spec(leader).raft_address() + R"("})");
    BOOST_TEST(is_error(http_on_raft, 409), describe(http_on_raft));
    BOOST_TEST(http_on_raft.body.find("is member " + std::to_string(leader) + "'s Raft address") !=
                   std::string::npos,
               describe(http_on_raft));
    // The leader would not hear its followers at a new address: it hands over first.
    const http_response leads =
        request(f, "PATCH", "/cluster/members/" + std::to_string(leader), R"({"raft": "127.0.0.1:1"})");
    BOOST_TEST(is_error(leads, 409), describe(leads));
    BOOST_TEST(leads.body.find("hand leadership to another voter first") != std::string::npos,
               describe(leads));

    BOOST_TEST_REQUIRE(put(c.http_port(leader), "before", "1").status == 200);
    c.terminate(moved);
    // With `moved` down (once the leader counts it silent), moving `via` too would leave the
    // leader alone: refused.
    const std::string silent = "raftkv_peer_active{peer=\"" + std::to_string(moved) + "\"} 0\n";
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            return request(c.http_port(leader), "GET", "/metrics").body.find(silent) != std::string::npos;
        },
        10s));
    const http_response stall =
        request(c.http_port(leader), "PATCH", "/cluster/members/" + std::to_string(via),
                R"({"raft": "127.0.0.1:1"})");
    BOOST_TEST(is_error(stall, 409), describe(stall));
    BOOST_TEST(stall.body.find("stops answering the leader") != std::string::npos, describe(stall));
    const std::vector<std::uint16_t> ports = free_ports(3);
    const std::string raft = "127.0.0.1:" + std::to_string(ports[0]);
    const std::string http = "127.0.0.1:" + std::to_string(ports[1]);
    const http_response r =
        change_until_settled(f, "PATCH", path, R"({"raft": ")" + raft + R"(", "http": ")" + http + R"("})");
    BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    const auto listed = [&](std::uint16_t port, const std::string& raft_address,
                            const std::string& http_address) {
        const auto m = get_members(port);
        if (!m)
            return false;
        for (const member& x : m->members)
            if (x.id == moved)
                return x.raft == raft_address && x.http == http_address;
        return false;
    };
    BOOST_TEST(listed(f, raft, http), r.body);
    BOOST_TEST(parse_json(r.body).text["changed"] == "true", r.body);
    BOOST_TEST(wait_until([&] { return listed(c.http_port(leader), raft, http); }, 5s));
    // Asked again, nothing changes (and nothing is proposed), and the answer says so.
    const auto index = get_members(f)->members_index;
    const http_response again = request(f, "PATCH", path, R"({"raft": ")" + raft + R"("})");
    BOOST_TEST(again.status == 200);
    BOOST_TEST(parse_json(again.body).text["changed"] == "false", again.body);
    BOOST_TEST(get_members(f)->members_index == index);
    BOOST_TEST_REQUIRE(put(c.http_port(leader), "while-away", "2").status == 200);

    c.start(moved,
            with_flag(with_flag(with_flag(c.args(moved), "--peers", ""), "--raft", raft), "--http", http));
    BOOST_TEST(wait_until(
        [&] {
            const http_response g = request(ports[1], "GET", kv_target("while-away"), {}, 2s);
            return g.status == 200 && parse_json(g.body).string("value") == "2";
        },
        20s, 100ms));
    BOOST_TEST(listed(ports[1], raft, http));
    // Its log had the old address until it caught up: it said so, then that it is reached.
    const std::string log = read_tail(c.spec(moved).log_file, 1 << 20);
    BOOST_TEST(log.find("listens for Raft at " + raft + " (--raft), but the configuration at index") !=
                   std::string::npos,
               log);
    BOOST_TEST(
        log.find("has the members dial this node where it listens (" + raft + ")") != std::string::npos, log);

    // Restarted with another --http, the member publishes it: every node lists it.
    c.terminate(moved);
    const std::string elsewhere = "127.0.0.1:" + std::to_string(ports[2]);
    c.start(moved, with_flag(with_flag(with_flag(c.args(moved), "--peers", ""), "--raft", raft), "--http",
                             elsewhere));
    BOOST_TEST(wait_until([&] { return listed(c.http_port(leader), raft, elsewhere); }, 10s));
    BOOST_TEST(wait_until([&] { return listed(f, raft, elsewhere); }, 5s));

    // Restarted with neither --raft nor --http, it listens for Raft where its log's
    // configuration has the members dial it (not where it was first started), and serves
    // HTTP where it last did: it catches up with a write made while it was down.
    c.terminate(moved);
    BOOST_TEST_REQUIRE(put(c.http_port(leader), "while-away-again", "3").status == 200);
    c.start(moved, with_flag(with_flag(with_flag(c.args(moved), "--peers", ""), "--raft", ""), "--http", ""));
    BOOST_TEST(wait_until(
        [&] {
            const http_response g = request(ports[2], "GET", kv_target("while-away-again"), {}, 2s);
            return g.status == 200 && parse_json(g.body).string("value") == "3";
        },
        20s, 100ms));
    const std::string restarted_log = read_tail(c.spec(moved).log_file, 1 << 20);
    BOOST_TEST(restarted_log.find("listens for Raft at " + raft +
                                  ", where the configuration in its log has the members dial it") !=
                   std::string::npos,
               restarted_log);
}

BOOST_AUTO_TEST_CASE(a_learner_joins_catches_up_is_promoted_and_removed_again)
{
    BOOST_TEST_REQUIRE(put_many(c.http_port(leader), "before-", 200, 4).ok == 200u);
    const auto& s4 = c.spec(4);
    const std::string body = R"({"id": 4, "raft": ")" + s4.raft_address() + R"(", "http": ")" +
                             s4.http_address() + R"(", "learner": true})";
    const http_response added =
        request(c.http_port(followers().front()), "POST", "/cluster/members", body, 8s);
    BOOST_TEST_REQUIRE(added.status == 201, describe(added));
    const auto after_add = parse_members(added.body);
    BOOST_TEST((after_add->ids("learner") == std::set<std::uint64_t>{4}));

    c.start(4, with_flag(with_flag(c.args(4), "--peers", ""), "--join",
                         "http://" + c.spec(leader).http_address()));
    // The learner serves what was written before it joined.
    BOOST_TEST(wait_until(
                   [&] {
                       const http_response g = get(s4.http_port, "before-199", 1s);
                       return g.status == 200 &&
                              parse_json(g.body).string("value") == load_value("before-199");
                   },
                   20s),
               "the learner never served an earlier write");

    const http_response promoted =
        change_until_settled(c.http_port(leader), "POST", "/cluster/members/4/promote");
    BOOST_TEST_REQUIRE(promoted.status == 200, describe(promoted));
    BOOST_TEST((parse_members(promoted.body)->ids("voter") == std::set<std::uint64_t>{1, 2, 3, 4}));
    BOOST_TEST(put(s4.http_port, "via-4", "x").status == 200);

    const http_response removed = change_until_settled(c.http_port(leader), "DELETE", "/cluster/members/4");
    BOOST_TEST_REQUIRE(removed.status == 200, describe(removed));
    BOOST_TEST((parse_members(removed.body)->ids("voter") == std::set<std::uint64_t>{1, 2, 3}));
    BOOST_TEST(c.terminate(4).has_value());
    BOOST_TEST(put(c.http_port(leader), "after-4", "y").status == 200);
}

BOOST_AUTO_TEST_CASE(removing_a_follower_while_clients_write_loses_no_acknowledged_write)
{
    const std::uint64_t gone = followers().front();
    const std::uint64_t stays = followers().back();
    writers w(c, {leader, stays});
    w.wait_for(100);
    const http_response r =
        request(c.http_port(stays), "DELETE", "/cluster/members/" + std::to_string(gone), {}, 8s);
    BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    BOOST_TEST(!parse_members(r.body)->ids("voter").contains(gone));
    // The leader stops sending to it at once; once it misses the leader and asks for votes,
    // the leader answers with the entry that removed it, and it says so.
    BOOST_TEST(wait_until(
                   [&] {
                       const http_response s = request(c.http_port(gone), "GET", "/status");
                       return s.status == 200 && parse_json(s.body).string("role") == "removed";
                   },
                   10s),
               "the removed follower's /status never said role \"removed\"");
    const http_response put_there = put(c.http_port(gone), "x", "y");
    BOOST_TEST(put_there.body.find("not a member of the cluster") != std::string::npos, put_there.body);
    const http_response stale_there =
        request(c.http_port(gone), "GET", kv_target("x") + "?consistency=stale");
    BOOST_TEST(stale_there.status == 503);
    BOOST_TEST(stale_there.body.find("it was removed and serves nothing") != std::string::npos,
               stale_there.body);
    // Dialed nowhere now, it is not told to listen elsewhere.
    const std::string gone_log = read_tail(c.spec(gone).log_file, 1 << 20);
    BOOST_TEST(gone_log.find("has the members dial it at") == std::string::npos, gone_log);
    BOOST_TEST(c.terminate(gone).has_value());
    const std::size_t before = w.count();
    w.wait_for(before + 100); // the two that remain are a majority of two: writes go on
    w.finish();
    BOOST_TEST(w.acked.size() >= before + 100, "writes stalled after the removal");
    BOOST_TEST(w.odd == 0);
    BOOST_TEST(lost_writes(c.http_port(leader), w.acked) == 0u);
    BOOST_TEST(lost_writes(c.http_port(stays), w.acked) == 0u);
}

BOOST_AUTO_TEST_CASE(removing_the_leader_hands_over_quickly_and_writes_continue)
{
    const std::vector<std::uint64_t> rest = followers();
    writers w(c, rest);
    w.wait_for(50);
    const auto started = std::chrono::steady_clock::now();
    const http_response r =
        request(c.http_port(rest.front()), "DELETE", "/cluster/members/" + std::to_string(leader), {}, 8s);
    BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    const auto next = wait_for_leader_among(rest, 5s);
    BOOST_TEST_REQUIRE(next.has_value(), "no new leader among the others");
    BOOST_TEST_MESSAGE(
        "new leader "
        << *next << " after "
        << std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - started).count()
        << " ms");

    // Still running, the removed node says what it is rather than "no leader" forever.
    const std::uint16_t gone = c.http_port(leader);
    BOOST_TEST(
        wait_until(
            [&] { return parse_json(request(gone, "GET", "/status").body).string("role") == "removed"; }, 5s),
        "the removed node's /status never said role \"removed\"");
    const http_response put_there = put(gone, "x", "y");
    BOOST_TEST(is_error(put_there, 503));
    BOOST_TEST(put_there.body.find("not a member of the cluster") != std::string::npos, put_there.body);
    const http_response health = request(gone, "GET", "/health");
    BOOST_TEST(health.status == 503);
    BOOST_TEST((parse_json(health.body).string("reason") == "not a member"), health.body);
    BOOST_TEST((parse_json(request(gone, "GET", "/readyz").body).string("reason") == "not a member"));
    BOOST_TEST(read_tail(c.spec(leader).log_file).find("is not a member of the cluster") != std::string::npos,
               "its log says so too");
    BOOST_TEST(c.terminate(leader).has_value());
    const std::size_t before = w.count();
    w.wait_for(before + 100);
    w.finish();
    BOOST_TEST(w.acked.size() >= before + 100, "writes stalled after the leader left");
    BOOST_TEST(w.odd == 0);
    BOOST_TEST(lost_writes(c.http_port(*next), w.acked) == 0u);
    const auto members = get_members(c.http_port(*next));
    BOOST_TEST((members->ids("voter") == std::set<std::uint64_t>(rest.begin(), rest.end())));
}

BOOST_AUTO_TEST_CASE(leadership_moves_by_http_and_writes_wait_for_the_transfer)
{
    writers w(c, {1, 2, 3});
    w.wait_for(50);
    for (int round = 0; round < 8; ++round) {
        const std::uint64_t target = followers()[static_cast<std::size_t>(round) % 2];
        const http_response r = request(c.http_port(followers().back()), "POST", "/cluster/leader",
                                        R"({"id": )" + std::to_string(target) + "}", 8s);
        BOOST_TEST_REQUIRE(r.status == 200, describe(r));
        BOOST_TEST(r.body == R"({"leader":)" + std::to_string(target) + "}");
        const auto s = get_status(c.http_port(target));
        BOOST_TEST_REQUIRE(s.has_value());
        BOOST_TEST(s->role == "leader");
        leader = target;
        const std::size_t before = w.count();
        w.wait_for(before + 20);
    }
    // Asking the leader to lead changes nothing.
    const http_response same =
        request(c.http_port(leader), "POST", "/cluster/leader", R"({"id": )" + std::to_string(leader) + "}");
    BOOST_TEST(same.status == 200, describe(same));
    w.finish();
    BOOST_TEST(w.odd == 0);
    BOOST_TEST(w.transfer_refusals == 0, "writes failed during a transfer instead of waiting");
    // The moment between the old leader stepping down and a node hearing of the new one is
    // waited out too.
    BOOST_TEST(w.no_leader == 0, "writes answered 'no leader' during a transfer instead of waiting");
    // A write a follower handed to the old leader just before it stepped down is answered by
    // it all the same, so its outcome is known.
    BOOST_TEST(w.unknown == 0, "writes whose outcome became unknown during a transfer");
    BOOST_TEST(lost_writes(c.http_port(leader), w.acked) == 0u);
}

BOOST_AUTO_TEST_CASE(leadership_is_not_moved_to_a_voter_that_is_down)
{
    const std::uint64_t down = followers().front();
    c.kill9(down);
    // CheckQuorum periods are an election timeout (300 ms) long: after two, the leader has
    // heard nothing from it in a whole one. (Earlier, or on a machine so loaded that ticks
    // run late, the leader still tries, and answers 503 when the transfer times out.)
    std::this_thread::sleep_for(900ms);
    http_response r;
    auto took = 0ms;
    wait_until(
        [&] {
            const auto sent = std::chrono::steady_clock::now();
            r = request(c.http_port(followers().back()), "POST", "/cluster/leader",
                        R"({"id": )" + std::to_string(down) + "}", 8s);
            took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - sent);
            return r.status != 503;
        },
        20s, 100ms);
    BOOST_TEST(is_error(r, 409), describe(r));
    BOOST_TEST(r.body.find("has not answered the leader") != std::string::npos, describe(r));
    BOOST_TEST(took < 1s, "refused after " << took.count() << " ms: " << describe(r));
    const auto s = get_status(c.http_port(leader));
    BOOST_TEST_REQUIRE(s.has_value());
    BOOST_TEST(s->role == "leader");
    BOOST_TEST(put(c.http_port(leader), "after-refusal", "v").status == 200);

    std::string peers;
    for (std::uint64_t id = 1; id <= 3; ++id) {
        if (!peers.empty())
            peers += ",";
        peers += std::to_string(id) + "=" + c.spec(id).raft_address();
    }
    c.start(down, with_flag(c.args(down), "--peers", peers));
    const bool moved = wait_until(
        [&] {
            return request(c.http_port(leader), "POST", "/cluster/leader",
                           R"({"id": )" + std::to_string(down) + "}", 8s)
                       .status == 200;
        },
        20s, 200ms);
    BOOST_TEST(moved, "leadership never moved to node " << down << " once it was back");
}

// With one of three voters down, removing another live one, or adding a voter that is not
// running, would leave a configuration whose quorum cannot answer: refused, naming the
// voter that does not answer. Removing the dead one is what goes through.
BOOST_AUTO_TEST_CASE(a_change_that_would_stall_the_cluster_is_refused)
{
    const std::uint64_t down = followers().front();
    const std::uint64_t up = followers().back();
    c.kill9(down);
    // Only once the leader counts it silent (a change accepted before would wait for it).
    const std::string silent = "raftkv_peer_active{peer=\"" + std::to_string(down) + "\"} 0\n";
    BOOST_TEST_REQUIRE(wait_until(
                           [&] {
                               return request(c.http_port(leader), "GET", "/metrics").body.find(silent) !=
                                      std::string::npos;
                           },
                           10s),
                       "the leader never counted node " << down << " silent");
    const auto refused_naming_down = [&](const http_response& r) {
        return is_error(r, 409) &&
               r.body.find("node " + std::to_string(down) + " does not answer") != std::string::npos;
    };
    http_response r = request(c.http_port(up), "DELETE", "/cluster/members/" + std::to_string(up), {}, 8s);
    BOOST_TEST(refused_naming_down(r), describe(r));
    r = request(c.http_port(leader), "POST", "/cluster/members", R"({"id": 7, "raft": "127.0.0.1:1"})");
    BOOST_TEST(is_error(r, 409), describe(r));
    BOOST_TEST(r.body.find("nodes " + std::to_string(down) + ",7 do not answer") != std::string::npos,
               describe(r));
    BOOST_TEST(put(c.http_port(leader), "after-refusals", "v").status == 200, "the cluster still serves");

    r = change_until_settled(c.http_port(leader), "DELETE", "/cluster/members/" + std::to_string(down));
    BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    const std::set<std::uint64_t> two{leader, up};
    BOOST_TEST((parse_members(r.body)->ids("voter") == two));
    BOOST_TEST(put(c.http_port(up), "with-two", "v").status == 200);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

/// Where a member moved to: its Raft address, and the port of its HTTP address.
struct new_addresses {
    std::string raft;
    std::uint16_t http_port = 0;
};

/// Moves member `moved` to new addresses through `leader` while it is down, starts it there,
/// and hands it the leadership.
new_addresses move_and_lead(cluster& c, std::uint64_t leader, std::uint64_t moved)
{
    c.terminate(moved);
    const std::vector<std::uint16_t> ports = free_ports(2);
    const std::string raft = "127.0.0.1:" + std::to_string(ports[0]);
    const std::string http = "127.0.0.1:" + std::to_string(ports[1]);
    const http_response r =
        change_until_settled(c.http_port(leader), "PATCH", "/cluster/members/" + std::to_string(moved),
                             R"({"raft": ")" + raft + R"(", "http": ")" + http + R"("})");
    BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    c.start(moved,
            with_flag(with_flag(with_flag(c.args(moved), "--peers", ""), "--raft", raft), "--http", http));
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            return request(c.http_port(leader), "POST", "/cluster/leader",
                           R"({"id": )" + std::to_string(moved) + "}", 3s)
                       .status == 200;
        },
        20s, 200ms));
    return {raft, ports[1]};
}

} // namespace

// A node whose log missed a member's move (it was down) dials the member where it no longer
// listens; once that member leads, nothing it sends reaches the leader. It finds the new
// address in a member's list (GET /cluster/members) and catches up.
BOOST_AUTO_TEST_CASE(a_node_that_missed_a_move_finds_the_moved_leader)
{
    cluster c(5);
    auto leader = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(leader.has_value());
    std::vector<std::uint64_t> others;
    for (std::uint64_t id = 1; id <= 5; ++id)
        if (id != *leader)
            others.push_back(id);
    const std::uint64_t behind = others[0], moved = others[1];
    c.terminate(behind);
    // The moved node takes over, and a write commits without `behind`.
    const auto [raft, http_port] = move_and_lead(c, *leader, moved);
    BOOST_TEST_REQUIRE(put(http_port, "after-move", "1").status == 200);

    c.start(behind);
    BOOST_TEST(wait_until(
        [&] {
            const http_response g = request(c.http_port(behind), "GET", kv_target("after-move"), {}, 2s);
            return g.status == 200 && parse_json(g.body).string("value") == "1";
        },
        30s, 200ms));
    const std::string log = read_tail(c.spec(behind).log_file, 1 << 20);
    BOOST_TEST(log.find("has member " + std::to_string(moved) + " at " + raft) != std::string::npos, log);
}

namespace {

/// Listens on a given loopback port and counts the connections made to it (closing each):
/// a stranger at an address a node should no longer dial.
class connection_counter {
public:
    explicit connection_counter(std::uint16_t port)
    {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        BOOST_TEST_REQUIRE(fd_ >= 0);
        const int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        BOOST_TEST_REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        BOOST_TEST_REQUIRE(::listen(fd_, 16) == 0);
        thread_ = std::thread([this] {
            while (!stop_) {
                pollfd p{fd_, POLLIN, 0};
                if (::poll(&p, 1, 50) <= 0)
                    continue;
                if (const int c = ::accept(fd_, nullptr, nullptr); c >= 0) {
                    ++count_;
                    ::close(c);
                }
            }
        });
    }
    connection_counter(const connection_counter&) = delete;
    connection_counter& operator=(const connection_counter&) = delete;
    ~connection_counter()
    {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    int count() const { return count_; }

private:
    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::atomic<int> count_{0};
    std::thread thread_;
};

} // namespace

// A member restarted with the --peers it was bootstrapped with dials a member that moved
// since where the configuration in its log has it, from its first message on: not at the
// old address, where another process may listen now.
BOOST_AUTO_TEST_CASE(a_restarted_member_dials_a_moved_member_where_its_log_says)
{
    cluster c(3);
    const auto leader = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(leader.has_value());
    std::vector<std::uint64_t> others;
    for (std::uint64_t id = 1; id <= 3; ++id)
        if (id != *leader)
            others.push_back(id);
    const std::uint64_t moved = others[0], restarted = others[1];
    const std::uint16_t old_raft_port = c.raft_port(moved);
    // The moved member leads, so the restarted one's first messages are answers to it.
    const auto [raft, http_port] = move_and_lead(c, *leader, moved);
    BOOST_TEST_REQUIRE(put(http_port, "after-move", "1").status == 200);

    c.terminate(restarted);
    const connection_counter stranger(old_raft_port);
    BOOST_TEST_REQUIRE(put(http_port, "while-restarting", "2").status == 200);
    c.start(restarted); // with the --peers that has `moved` at its old address
    BOOST_TEST(wait_until(
        [&] {
            const http_response g =
                request(c.http_port(restarted), "GET", kv_target("while-restarting"), {}, 2s);
            return g.status == 200 && parse_json(g.body).string("value") == "2";
        },
        20s, 100ms));
    BOOST_TEST(stranger.count() == 0, "the restarted member dialed the moved one's old address");
    const std::string log = read_tail(c.spec(restarted).log_file, 1 << 20);
    BOOST_TEST(log.find("dialing member " + std::to_string(moved) + " at " + raft +
                        ", where the configuration in this node's log has it, not at 127.0.0.1:" +
                        std::to_string(old_raft_port) + " (--peers)") != std::string::npos,
               log);
}

// A follower removed while it was down, whose removal the members' logs compacted away before
// it came back, hears from no leader: the leader's log no longer holds the entry that would
// tell it. It finds itself missing from a member's committed list (GET /cluster/members) and
// says it was removed, as a node that saw its removal does.
BOOST_AUTO_TEST_CASE(a_node_removed_while_down_learns_it_from_a_members_list)
{
    cluster c(3, true, {"--snapshot-entries", "50", "--snapshot-catchup-entries", "10"});
    const auto leader = c.wait_ready(20s);
    BOOST_TEST_REQUIRE(leader.has_value());
    const std::uint64_t gone = *leader == 3 ? 2 : 3;
    BOOST_TEST_REQUIRE(put(c.http_port(*leader), "before", "1").status == 200);
    c.terminate(gone);
    const http_response r =
        change_until_settled(c.http_port(*leader), "DELETE", "/cluster/members/" + std::to_string(gone), {});
    BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    for (int k = 0; k < 150; ++k)
        BOOST_TEST_REQUIRE(put(c.http_port(*leader), "after-" + std::to_string(k), "x").status == 200);

    c.start(gone);
    BOOST_TEST(wait_until(
                   [&] {
                       const http_response s = request(c.http_port(gone), "GET", "/status", {}, 2s);
                       return s.status == 200 && parse_json(s.body).string("role") == "removed";
                   },
                   40s, 250ms),
               "the node removed while down never said role \"removed\"");
    const http_response health = request(c.http_port(gone), "GET", "/health", {}, 2s);
    BOOST_TEST(health.status == 503);
    BOOST_TEST(health.body.find("it was removed and serves nothing") != std::string::npos, health.body);
    const http_response put_there = put(c.http_port(gone), "x", "y");
    BOOST_TEST(put_there.status == 503);
    BOOST_TEST(put_there.body.find("it was removed") != std::string::npos, put_there.body);
    // Its state never catches up: no stale read, no watch; its list leaves it out, as out of date.
    for (const std::string& target :
         {kv_target("before") + "?consistency=stale", std::string("/watch/before")}) {
        const http_response r = request(c.http_port(gone), "GET", target, {}, 2s);
        BOOST_TEST(r.status == 503, target);
        BOOST_TEST(r.body.find("it was removed and serves nothing") != std::string::npos, r.body);
    }
    const auto list = parse_members(request(c.http_port(gone), "GET", "/cluster/members", {}, 2s).body);
    BOOST_TEST_REQUIRE(list.has_value());
    BOOST_TEST(!list->ids("voter").contains(gone));
    const std::string log = read_tail(c.spec(gone).log_file, 1 << 20);
    BOOST_TEST(log.find("does not include it, though the one in its own log") != std::string::npos, log);
}
