#ifndef RAFTKV_SERVER_MEMBER_INFO_HPP
#define RAFTKV_SERVER_MEMBER_INFO_HPP

// What raftkv-server keeps in each member's raftkv::membership::info: the member's
// addresses, as a compact JSON object {"raft":"host:port","http":"host:port","added":"0x...",
// "replaces":"0x..."} ("http", "added" and "replaces" optional). The info is replicated with the
// configuration, so every node learns where to dial a member (and where to forward HTTP requests to it) from
// the log.
//
//     std::string info = encode_member_info({"10.0.0.4", 9080}, host_port{"10.0.0.4", 8080});
//     member_info m = decode_member_info(info); // m.raft->port == 9080

#include "config.hpp"

#include <raftkv/types.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace raftkv::server {

struct member_info {
    /// Where the member accepts Raft connections; nothing if the info does not say.
    std::optional<host_port> raft;
    /// Where the member serves HTTP; nothing if the info does not say.
    std::optional<host_port> http;
    /// A random number drawn when the member was added (POST /cluster/members); 0 for the
    /// members a cluster was bootstrapped with. A member removed and added back under its
    /// id (with a new data directory) has another one, which tells every node to forget the
    /// data directory it recorded for that id, even a node that never saw the removal.
    std::uint64_t added = 0;
    /// The data directory (incarnation) the member's id had before it was removed, as the
    /// node that added it back had recorded it; 0: none known. A process still running on
    /// that directory (a removed member is not stopped by its removal) is refused under
    /// this id, so it cannot pass for the member added back.
    std::uint64_t replaces = 0;
};

/// The info string for a member: always the same bytes for the same addresses, so every
/// node that builds the bootstrap configuration from the same --peers builds it alike.
/// `added` and `replaces` are written only when not 0.
std::string encode_member_info(const host_port& raft, const std::optional<host_port>& http = std::nullopt,
                               std::uint64_t added = 0, std::uint64_t replaces = 0);

/// Reads an info string written by encode_member_info(). Never throws: a field that is
/// missing, not a string, or not a valid host:port is left empty (the address is unknown),
/// whatever else the string holds.
member_info decode_member_info(std::string_view info);

/// A configuration for people: "voters 1,2,3", "voters 1,3 (joint, leaving 1,2), learners 4".
std::string describe_members(const membership& m);

/// Every member of `m`: its voters, the voters it leaves during a joint change, its learners.
std::set<node_id> member_ids(const membership& m);

} // namespace raftkv::server

#endif
