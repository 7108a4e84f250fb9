#ifndef RAFTKV_SERVER_CLUSTER_API_HPP
#define RAFTKV_SERVER_CLUSTER_API_HPP

// The membership part of raftkv-server's HTTP API: validation of the bodies and paths of
// /cluster/members and /cluster/leader, the JSON member list, and how a refused change is
// answered. The handlers themselves are in api.cpp; docs/server.md describes the routes.

#include "config.hpp"
#include "http_server.hpp"

#include <raftkv/types.hpp>

#include <boost/beast/http/status.hpp>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace raftkv::server {

struct service_status;

/// A new member, as POST /cluster/members asks for it.
struct member_request {
    node_id id = no_node;
    host_port raft;
    std::optional<host_port> http;
    /// Added as a learner (true) or straight as a voter (false, the default, as etcd's
    /// `member add`).
    bool learner = false;
};

/// New addresses for a member, as PATCH /cluster/members/{id} asks for them: at least one.
struct member_update {
    std::optional<host_port> raft;
    std::optional<host_port> http;
};

/// A validated body or path, or the status and message to answer with.
template <class T>
struct checked {
    std::optional<T> value;
    boost::beast::http::status status = boost::beast::http::status::ok;
    std::string error;
};

/// Reads `{"id": N, "raft": "host:port", "http": "host:port", "learner": bool}`: "id" (an
/// integer 1 to 2^64-1) and "raft" are required, "http" and "learner" optional. Malformed
/// JSON, another type, a bad address or an unknown member is 400.
checked<member_request> check_member_body(std::string_view body);

/// Reads `{"raft": "host:port", "http": "host:port"}` (PATCH /cluster/members/{id}): one
/// of them at least, neither a wildcard address; 400 as above.
checked<member_update> check_member_update_body(std::string_view body);

/// Reads `{"id": N}` (POST /cluster/leader); 400 as above.
checked<node_id> check_leader_body(std::string_view body);

/// Reads the {id} of /cluster/members/{id}: 400 unless an id 1 to 2^64-1.
checked<node_id> check_member_id(std::string_view raw_id);

/// A cluster id as the API shows it (GET /cluster/members, GET /status): 16 lowercase hex
/// digits, without "0x" (what a joining node reads, join.cpp).
std::string cluster_id_hex(std::uint64_t id);

/// The body of GET /cluster/members: {"cluster_id" (16 hex digits), "members": [{"id",
/// "raft", "http" (string or null),
/// "role" ("voter", "learner" or "outgoing"), "match" (only for the members in
/// `match`)}...], "members_index", "members_committed", "joint", "leader" (id or null)}, and
/// "changed" when `changed` is given (the answer to PATCH: whether it changed anything).
std::string members_json(const service_status& s, const std::map<node_id, index_t>& match,
                         std::optional<bool> changed = {});

/// How a membership change refused with `ec` is answered: 409 for change_in_progress,
/// learner_behind (whose message says how far behind) and quorum_at_risk (api.cpp names
/// the voters with quorum_at_risk_response), 400 for invalid_argument, 503 for the
/// cluster's transient states (saying whether the change may have happened), 500 for
/// anything unexpected. `lag`: for learner_behind, how many entries behind.
http_response membership_failure_response(std::error_code ec, node_id id = no_node,
                                          std::optional<index_t> lag = std::nullopt);

/// The 409 for a change refused with errc::quorum_at_risk: the voters the change would
/// leave (`next_voters`), and the members that answer the leader (`answering`).
http_response quorum_at_risk_response(const std::vector<node_id>& next_voters,
                                      const std::set<node_id>& answering);

} // namespace raftkv::server

#endif
