#ifndef RAFTKV_SERVER_JOIN_HPP
#define RAFTKV_SERVER_JOIN_HPP

// What a new node learns from a running cluster before it starts (--join): the cluster's
// id and every member's Raft address, from any member's GET /cluster/members. The node
// must have been added first (POST /cluster/members); docs/server.md gives the flow.

#include "config.hpp"

#include <raftkv/types.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace raftkv::server {

class tls_context;

/// A cluster as a member described it.
struct cluster_view {
    std::uint64_t cluster_id = 0;
    /// The node that answered ("id"; absent in answers of releases before it was added),
    /// and the leader it knows of.
    std::optional<node_id> answered_by;
    std::optional<node_id> leader;
    /// Every member's Raft address, learners included.
    std::map<node_id, host_port> raft;
    /// Members that are learners.
    std::vector<node_id> learners;
    /// The members' HTTP addresses, where known.
    std::map<node_id, host_port> http;
    /// The index of the configuration the answering node has ("members_index": a
    /// snapshot's index when its log no longer holds the entry); 0 if absent.
    index_t members_index = 0;
    /// Whether the answering node knew that configuration committed ("members_committed";
    /// false if absent).
    bool members_committed = false;
    /// The data directories (incarnations) the answering node recorded for members that
    /// greeted it under their current addition ("incarnation"; absent in answers of releases
    /// before it was added).
    std::map<node_id, std::uint64_t> incarnations;
};

/// Asks the member at `address` for GET /cluster/members and reads the cluster's id and
/// members from the answer; with "Authorization: Bearer <bearer>" unless `bearer` is empty.
/// Over HTTPS with `tls` (make_client_tls(): the member's certificate must chain to its CAs
/// and name `address.host`), plain HTTP when it is null. Throws std::runtime_error, saying
/// why, when the member cannot be reached within `timeout` or answers something else.
cluster_view fetch_cluster(const host_port& address, std::chrono::milliseconds timeout,
                           std::string_view bearer = {}, std::shared_ptr<tls_context> tls = nullptr);

/// Parses a GET /cluster/members answer; throws std::runtime_error when it is not one.
cluster_view parse_cluster_view(std::string_view body);

} // namespace raftkv::server

#endif
