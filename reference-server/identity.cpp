#include "identity.hpp"

#include "backup.hpp"
#include "durable_file.hpp"
#include "join.hpp"
#include "log.hpp"
#include "tls.hpp"

#include <raftkv/asio/detail/greeting.hpp>

#include <charconv>
#include <random>
#include <sstream>
#include <stdexcept>

namespace raftkv::server {

namespace {

std::string cluster_name(std::uint64_t id)
{
    return raftkv::asio::detail::cluster_id_name(id);
}

/// The line for one conflict: what the flag says, what the data directory says, what to do.
[[noreturn]] void conflict(const server_config& c, const identity& rec, const std::string& what,
                           const std::string& remedy)
{
    throw config_error(what + ", but data directory " + c.data_dir.string() + " belongs to node " +
                       std::to_string(rec.id) + " of cluster " + cluster_name(rec.cluster_id) + ": " +
                       remedy);
}

void check_against(const server_config& c, const identity& rec)
{
    if (c.id != rec.id)
        conflict(c, rec, "--id is " + std::to_string(c.id),
                 "start it with --id " + std::to_string(rec.id) + ", or give node " + std::to_string(c.id) +
                     " a data directory of its own");
    if (c.cluster_token && *c.cluster_token != rec.cluster_token)
        conflict(c, rec, "--cluster-token is '" + *c.cluster_token + "'",
                 rec.cluster_token.empty() ? std::string("start it without --cluster-token")
                                           : "start it with --cluster-token " + rec.cluster_token);
    if (c.peers_given && c.peers != rec.members && rec.joined)
        conflict(c, rec, "--peers is " + peers_to_string(c.peers),
                 "it joined that cluster (--join), which keeps its members in its log; start it without "
                 "--peers, or with an empty data directory to bootstrap a new cluster");
    if (c.peers_given && c.peers != rec.members)
        conflict(c, rec, "--peers is " + peers_to_string(c.peers),
                 "it was bootstrapped with " + peers_to_string(rec.members) +
                     "; start it without --peers to use that list, or with an empty data directory to "
                     "bootstrap a new cluster");
}

bool holds_raft_data(const std::filesystem::path& data_dir)
{
    std::error_code ec;
    return std::filesystem::exists(data_dir / "wal", ec) || std::filesystem::exists(data_dir / "state", ec);
}

// The TLS context of an https:// --join: the same trust and client certificate as
// forwarding to the leader. Null for http://.
std::shared_ptr<tls_context> join_tls(const server_config& c)
{
    if (!c.join_https)
        return nullptr;
    try {
        return make_client_tls(c.forward_ca.empty() ? c.client_ca : c.forward_ca, c.tls_cert, c.tls_key);
    } catch (const tls_error& e) {
        throw config_error(e.what());
    }
}

// A node joining a running cluster: it must have been added already (so the leader
// replicates to it), at the Raft address it listens on, and must bring no state of its own.
identity join_cluster(server_config& c)
{
    std::string url = (c.join_https ? "https://" : "http://") + c.join->to_string();
    if (holds_raft_data(c.data_dir))
        throw config_error("--join needs an empty data directory, but " + c.data_dir.string() +
                           " holds Raft data without an identity file; move it away first");
    // The members share the tokens file: any of its tokens may read the member list.
    const std::string_view bearer = c.auth_tokens.empty() ? std::string_view() : c.auth_tokens.front().token;
    cluster_view view = fetch_cluster(*c.join, std::chrono::seconds(5), bearer, join_tls(c));
    // A member that lags may not list this node (it has not applied the addition yet), may
    // still know the data directory of an earlier addition (nor applied the removal since),
    // or may not know this node's directory (it was down while the node joined): its
    // leader's list is the one to go by. Without it, this member's will do unless it lacks
    // this node or knows a directory for it.
    if (view.leader && view.leader != view.answered_by)
        if (const auto leader_http = view.http.find(*view.leader); leader_http != view.http.end()) {
            const host_port leader = leader_http->second; // a copy: `view` is replaced
            const std::string leader_url = (c.join_https ? "https://" : "http://") + leader.to_string();
            try {
                view = fetch_cluster(leader, std::chrono::seconds(5), bearer, join_tls(c));
                url = leader_url;
            } catch (const std::exception& e) {
                if (!view.raft.contains(c.id) || view.incarnations.contains(c.id))
                    throw;
                log(log_level::warn, "cannot ask the leader, node " + std::to_string(*view.leader) + " at " +
                                         leader_url + ", for its member list (" + e.what() +
                                         "); going by the list of the member at " + url);
            }
        }
    // A removed node still serves its last member list, which lacks the members added since.
    if (view.answered_by && !view.raft.contains(*view.answered_by))
        throw config_error("the node at " + url + " (node " + std::to_string(*view.answered_by) +
                           ") is not in its own member list: it was removed from the cluster, and what it "
                           "says of the members is out of date; give --join the HTTP address of a current "
                           "member");
    const auto self = view.raft.find(c.id);
    // A member that knows no leader (an election, or it is cut off) may be behind, and has
    // no leader to ask.
    if (self == view.raft.end() && view.answered_by && !view.leader)
        throw config_error(
            "node " + std::to_string(c.id) + " is not in the member list of the node at " + url +
            ", which knows no leader now (an election, or it is cut off) and may be behind: "
            "start this node again in a moment, or give --join another member; if node " +
            std::to_string(c.id) + " was never added, add it first with POST /cluster/members");
    if (self == view.raft.end())
        throw config_error("node " + std::to_string(c.id) + " is not a member of the cluster at " + url +
                           "; add it first: curl -X POST " + url + "/cluster/members -d '{\"id\": " +
                           std::to_string(c.id) + ", \"raft\": \"" + c.raft.to_string() + "\", \"http\": \"" +
                           c.advertise_http.to_string() + "\", \"learner\": true}'");
    // A member that greeted the cluster under this addition has a data directory of its own,
    // which holds the votes and entries it acknowledged: an empty one cannot take its place.
    if (const auto known = view.incarnations.find(c.id); known != view.incarnations.end())
        throw config_error(
            "node " + std::to_string(c.id) +
            " is a member the cluster already knows with a data directory of its own (incarnation " +
            raftkv::asio::detail::cluster_id_name(known->second) + ", recorded by the node at " + url +
            "), which an empty one cannot replace: it holds the votes and entries that member "
            "acknowledged. If that directory still exists, start the node from it, without --join; "
            "if it is lost, remove the member and add it back (raftkv member remove " +
            std::to_string(c.id) + ", then raftkv member add " + std::to_string(c.id) + " --raft " +
            self->second.to_string() + " --http " + c.advertise_http.to_string() +
            " --learner), then start this node with --join");
    // Where the members dial it; it listens there too unless --raft says where (0.0.0.0:9080,
    // say). Its log holds no configuration yet, so the start-up check of a restart has
    // nothing to go by: said here. (Only a warning: a port forwarded to another may be meant.)
    if (!c.raft_given)
        c.raft = self->second;
    else if (!listens_where_dialed(c.raft, self->second))
        log(log_level::warn, "the members dial node " + std::to_string(c.id) + " at " +
                                 self->second.to_string() + " (its address in the cluster at " + url +
                                 "), but it listens at " + c.raft.to_string() +
                                 " (--raft): unless something forwards one to the other, no peer reaches "
                                 "it and it waits for a leader for ever; start it with --raft " +
                                 self->second.to_string() +
                                 " (or without --raft), or give the member that "
                                 "address first (raftkv member update " +
                                 std::to_string(c.id) + " --raft " + c.raft.to_string() + ")");
    c.peers = view.raft;
    c.joined = true;
    identity id;
    id.cluster_id = view.cluster_id;
    id.id = c.id;
    id.members = view.raft;
    record_addresses(id, c);
    id.joined = true;
    id.incarnation = new_incarnation();
    return id;
}

} // namespace

std::uint64_t derive_cluster_id(const std::map<node_id, host_port>& members, std::string_view token)
{
    std::string text(token);
    text += '\n';
    for (const auto& [id, address] : members) // a std::map: sorted by id
        text.append(std::to_string(id)).append("=").append(address.to_string()).append("\n");
    std::uint64_t h = 14695981039346656037ull;
    for (const char ch : text) {
        h ^= static_cast<unsigned char>(ch);
        h *= 1099511628211ull;
    }
    return h == 0 ? 1 : h;
}

std::uint64_t expected_cluster_id(const identity& id)
{
    // A token has no spaces, so no token of a bootstrapped cluster reads like these.
    std::string token = id.cluster_token;
    if (id.restored_from_cluster != 0)
        token += " restored-from " + restored_from_text(id);
    if (id.forced_from != 0)
        token += " forced-from " + cluster_name(id.forced_from);
    return derive_cluster_id(id.members, token);
}

std::string restored_from_text(const identity& id)
{
    return cluster_name(id.restored_from_cluster) + " " + std::to_string(id.restored_from_index);
}

identity identity_from(const server_config& c)
{
    identity id;
    id.cluster_token = c.cluster_token.value_or("");
    id.cluster_id = derive_cluster_id(c.peers, id.cluster_token);
    id.id = c.id;
    id.members = c.peers;
    record_addresses(id, c);
    id.incarnation = new_incarnation();
    return id;
}

bool record_addresses(identity& id, const server_config& c)
{
    const std::optional<host_port> listen =
        c.http == c.advertise_http ? std::nullopt : std::optional<host_port>(c.http);
    const bool changed = !(id.http == c.advertise_http) || !(id.listen_http == listen);
    id.http = c.advertise_http;
    id.listen_http = listen;
    return changed;
}

std::uint64_t new_incarnation()
{
    std::random_device rd;
    std::uint64_t v = 0;
    while (v == 0)
        v = (std::uint64_t{rd()} << 32) ^ rd();
    return v;
}

std::string format_identity(const identity& id)
{
    std::string out(identity_header);
    out += "\ncluster-id " + cluster_name(id.cluster_id) + "\n";
    if (!id.cluster_token.empty())
        out += "cluster-token " + id.cluster_token + "\n";
    if (id.restored_from_cluster != 0)
        out += "restored-from " + restored_from_text(id) + "\n";
    if (id.forced_from != 0)
        out += "forced-from " + cluster_name(id.forced_from) + "\n";
    out += "node-id " + std::to_string(id.id) + "\n";
    if (id.incarnation != 0)
        out += "incarnation " + cluster_name(id.incarnation) + "\n";
    out += "http " + id.http.to_string() + "\n";
    if (id.listen_http)
        out += "listen-http " + id.listen_http->to_string() + "\n";
    if (id.joined)
        out += "joined\n";
    for (const auto& [member, address] : id.members)
        out += "member " + std::to_string(member) + " " + address.to_string() + "\n";
    return with_checksum(std::move(out));
}

std::optional<identity> parse_identity(std::string_view text, std::string& error)
{
    const auto bad = [&error](std::string why) {
        error = std::move(why);
        return std::optional<identity>();
    };
    const std::optional<std::string_view> body =
        versioned_text(text, identity_header, identity_header_v1, error);
    if (!body)
        return std::nullopt;
    std::istringstream in{std::string(*body)};
    std::string line;
    std::getline(in, line); // the header, checked above
    identity id;
    bool have_cluster = false, have_node = false, have_http = false;
    for (int n = 2; std::getline(in, line); ++n) {
        const std::size_t space = line.find(' ');
        const std::string key = line.substr(0, space);
        const std::string value = space == std::string::npos ? "" : line.substr(space + 1);
        const std::string where = "line " + std::to_string(n) + ": ";
        if (key == "cluster-id") {
            have_cluster = true;
            const auto v = parse_hex_id(value);
            if (!v)
                return bad(where + "bad cluster id");
            id.cluster_id = *v;
        } else if (key == "cluster-token" && !value.empty()) {
            id.cluster_token = value;
        } else if (key == "node-id") {
            have_node = true;
            const auto v = parse_node_id(value);
            if (!v)
                return bad(where + "bad node id");
            id.id = *v;
        } else if (key == "incarnation") {
            const auto v = parse_hex_id(value); // the same form: 0x and 16 digits, not 0
            if (!v)
                return bad(where + "bad incarnation");
            id.incarnation = *v;
        } else if (key == "http") {
            have_http = true;
            const auto v = parse_host_port(value);
            if (!v)
                return bad(where + "bad address");
            id.http = *v;
        } else if (key == "listen-http" && !id.listen_http) {
            const auto v = parse_host_port(value);
            if (!v)
                return bad(where + "bad address");
            id.listen_http = *v;
        } else if (key == "forced-from") {
            const auto v = parse_hex_id(value);
            if (!v)
                return bad(where + "bad cluster id");
            id.forced_from = *v;
        } else if (key == "restored-from") {
            const std::size_t sep = value.find(' ');
            const auto cluster = parse_hex_id(value.substr(0, sep));
            index_t index = 0;
            const std::string_view digits =
                sep == std::string::npos ? std::string_view() : std::string_view(value).substr(sep + 1);
            const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
            if (!cluster || digits.empty() || ec != std::errc() || end != digits.data() + digits.size())
                return bad(where + "bad restored-from (a cluster id and an index)");
            id.restored_from_cluster = *cluster;
            id.restored_from_index = index;
        } else if (key == "joined" && value.empty()) {
            id.joined = true;
        } else if (key == "member") {
            const std::size_t sep = value.find(' ');
            const auto member = parse_node_id(value.substr(0, sep));
            const auto address =
                sep == std::string::npos ? std::nullopt : parse_host_port(value.substr(sep + 1));
            if (!member || !address || !id.members.emplace(*member, *address).second)
                return bad(where + "bad member");
        } else {
            return bad(where + "unknown line '" + line + "'");
        }
    }
    if (!have_cluster || !have_node || !have_http || !id.members.contains(id.id))
        return bad("incomplete: it needs cluster-id, node-id, http and a member line for the node");
    if (!id.joined && expected_cluster_id(id) != id.cluster_id)
        return bad("the cluster id does not match the members and token");
    return id;
}

std::filesystem::path identity_path(const std::filesystem::path& data_dir)
{
    return data_dir / "identity";
}

std::optional<identity> read_identity(const std::filesystem::path& data_dir)
{
    const auto path = identity_path(data_dir);
    const auto text = read_small_file(path);
    if (!text)
        return std::nullopt;
    std::string error;
    auto id = parse_identity(*text, error);
    if (!id)
        throw std::runtime_error(
            path.string() + " is not a valid identity file (" + error +
            "); put it back from a file-system copy of the data directory (raftkv backups hold the keys, not "
            "this file), or move it away: the node then records a new identity from its flags, which the "
            "other members of a cluster refuse until it is removed and added back with --join");
    return id;
}

void write_identity(const std::filesystem::path& data_dir, const identity& id)
{
    write_file_atomically(identity_path(data_dir), format_identity(id));
}

namespace {

// Where the node last served HTTP, for what the flags leave out (record_addresses() then
// records what they moved, for the next start). A --http that repeats where it listened
// keeps what it advertised with it (a wildcard's advertised address, say).
void take_recorded_http(server_config& c, const identity& recorded)
{
    const host_port listened = recorded.listen_http.value_or(recorded.http);
    if (!c.http_given)
        c.http = listened;
    if (!c.advertise_http_given)
        c.advertise_http = c.http == listened ? recorded.http : c.http;
}

// --force-new-cluster: the member recorded in c.data_dir becomes the only member of a new
// cluster, whose id derives from the one it leaves as well, so that the old cluster's members
// are refused at their first greeting.
identity_plan plan_forced_identity(server_config& c)
{
    const std::uint64_t leaving = *c.force_new_cluster;
    auto recorded = read_identity(c.data_dir);
    if (!recorded)
        throw config_error("--force-new-cluster: data directory " + c.data_dir.string() +
                           " holds no member of a cluster; force a member that holds the cluster's data");
    if (c.id != recorded->id)
        conflict(c, *recorded, "--id is " + std::to_string(c.id),
                 "force it with --id " + std::to_string(recorded->id));
    if (recorded->cluster_id != leaving)
        conflict(c, *recorded, "--force-new-cluster names cluster " + cluster_name(leaving),
                 "if it was forced already, start it without --force-new-cluster; otherwise give the id of "
                 "the cluster it is a member of");
    identity_plan plan;
    plan.forced_from = leaving;
    plan.write = true;
    identity& id = plan.id;
    id.id = c.id;
    id.cluster_token = c.cluster_token.value_or(recorded->cluster_token);
    id.forced_from = leaving;
    if (!c.raft_given && recorded->members.contains(c.id))
        c.raft = recorded->members.at(c.id);
    take_recorded_http(c, *recorded);
    c.peers = {{c.id, c.raft}};
    id.members = c.peers;
    id.cluster_id = expected_cluster_id(id);
    record_addresses(id, c);
    id.incarnation = new_incarnation();
    c.cluster_id = id.cluster_id;
    c.incarnation = id.incarnation;
    c.incarnation_new = true;
    return plan;
}

} // namespace

identity_plan plan_identity(server_config& c)
{
    if (c.force_new_cluster)
        return plan_forced_identity(c);
    identity_plan plan;
    const bool restore_cut_short = restore_unfinished(c.data_dir);
    if (restore_cut_short && !c.restore_backup && !std::filesystem::exists(identity_path(c.data_dir)))
        throw config_error(c.data_dir.string() +
                           " holds a restore from a backup that did not finish (--restore-backup was "
                           "interrupted): run the same command, --restore-backup included, again; or empty "
                           "the directory");
    if (auto recorded = read_identity(c.data_dir)) {
        if (c.join && !recorded->joined)
            conflict(c, *recorded, "--join is given",
                     "it bootstrapped its cluster and never joins another; start it without --join");
        check_against(c, *recorded);
        c.joined = recorded->joined;
        c.peers = recorded->members;
        if (!c.raft_given)
            c.raft = c.peers.at(c.id);
        take_recorded_http(c, *recorded);
        plan.id = std::move(*recorded);
        plan.rewrite = record_addresses(plan.id, c);
        if (plan.id.incarnation == 0) { // written by a release without incarnations
            plan.id.incarnation = new_incarnation();
            plan.write = true;
        }
    } else if (c.join) {
        plan.id = join_cluster(c);
        plan.write = true;
    } else {
        plan.id = identity_from(c);
        plan.write = true;
        // What a restore cut short left is no node's: restoring again replaces it.
        plan.adopted = holds_raft_data(c.data_dir) && !restore_cut_short;
        if (c.restore_backup) {
            // Members restored from one backup agree on the id; from different ones (another
            // cluster's, or another index: a different state), they refuse each other.
            const backup_header h = read_backup_header(*c.restore_backup);
            plan.id.restored_from_cluster = h.cluster_id;
            plan.id.restored_from_index = h.index;
            plan.id.cluster_id = expected_cluster_id(plan.id);
        }
    }
    c.cluster_id = plan.id.cluster_id;
    c.incarnation = plan.id.incarnation;
    // An identity is written when its incarnation is new. A node that joins was added by
    // the cluster under its id, new directory and all: a peer that knows that id by another
    // directory only missed the change, so it does not count as new here.
    c.incarnation_new = plan.write && !c.join;
    c.joined_now = plan.write && c.join;
    return plan;
}

} // namespace raftkv::server
