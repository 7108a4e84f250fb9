#ifndef RAFTKV_SERVER_CLUSTER_STATUS_HPP
#define RAFTKV_SERVER_CLUSTER_STATUS_HPP

// GET /cluster/status: every member's GET /status, gathered by the node asked, so that a
// page served by one node (ui.hpp) shows the whole cluster without reaching other origins.
// docs/server.md describes the answer.

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace raftkv::server {

class kv_service;
class tls_context;

struct cluster_status_options {
    /// How long each member has to answer, connecting included. Default: 500 ms.
    std::chrono::milliseconds timeout{500};

    /// Ask the members over TLS with this client context (as forwarding does); null: plain HTTP.
    std::shared_ptr<tls_context> tls;

    /// The value of the client's Authorization header, sent along to every member, which
    /// checks it as it checks any /status request; empty: none.
    std::string authorization;
};

/** Asks every member of the configuration in force, at the HTTP address this node knows for
    it, for GET /status, all at once, and answers

        {"id": <this node>, "leader": <id or null>, "time": <Unix time in ms>,
         "members": [{"id": 1, "http": "h:p" or null, "reachable": true, "status": {...},
                      "match": 120}, {"id": 2, ..., "reachable": false, "error": "..."}]}

    in id order. This node's own entry is `self` (its /status body). "reachable" says whether
    the member answered at all; "status" is its /status body when it answered 200, "error"
    says why not otherwise. "match" is the leader's match index for the member (this node's
    when it leads, else from the leader's GET /cluster/members), absent when unknown.
    Completes within options.timeout and a little more, whatever the members do.

    REQUIRES: `service` outlives the operation.
*/
boost::asio::awaitable<boost::json::object>
gather_cluster_status(kv_service& service, boost::json::object self, cluster_status_options options);

} // namespace raftkv::server

#endif
