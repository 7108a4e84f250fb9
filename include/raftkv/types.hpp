#ifndef RAFTKV_TYPES_HPP
#define RAFTKV_TYPES_HPP

// Plain value types shared by every part of raftkv: identifiers, log entries,
// the persistent hard state and cluster membership.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace raftkv {

/// Identifies a cluster member. Ids are chosen by the operator and are never 0.
using node_id = std::uint64_t;

/// A Raft term. Term 0 is the term before any election.
using term_t = std::uint64_t;

/// A log position. Log indexes are 1-based; index 0 means "before the first entry".
using index_t = std::uint64_t;

/// The "no node" id: no vote cast, no leader known.
inline constexpr node_id no_node = 0;

/// What a log entry carries.
enum class entry_type : std::uint8_t {
    /// A command for the state machine, proposed by a client.
    normal = 0,
    /// The empty entry a new leader appends to commit entries of earlier terms (Raft §5.4.2).
    noop = 1,
    /// A membership change (reserved for configuration changes; never produced yet).
    config = 2,
};

/// One entry of the replicated log.
struct log_entry {
    term_t term = 0;
    index_t index = 0;
    entry_type type = entry_type::normal;
    std::string data;

    friend bool operator==(const log_entry&, const log_entry&) = default;
};

/// The state a node must persist before it answers any message that depends on it:
/// the latest term it has seen and whom it voted for in that term.
struct hard_state {
    term_t term = 0;
    node_id vote = no_node;

    friend bool operator==(const hard_state&, const hard_state&) = default;
};

/// The role a node plays in its current term.
enum class role : std::uint8_t {
    follower,
    /// Running a PreVote round: asking whether it could win before disturbing the cluster.
    pre_candidate,
    candidate,
    leader,
};

/// A short lower-case name for a role ("follower", "pre_candidate", "candidate", "leader").
constexpr const char* to_string(role r) noexcept
{
    switch (r) {
    case role::follower: return "follower";
    case role::pre_candidate: return "pre_candidate";
    case role::candidate: return "candidate";
    case role::leader: return "leader";
    }
    return "unknown";
}

/// The voting members of the cluster. A quorum is a strict majority of `voters`.
struct membership {
    std::vector<node_id> voters;

    bool is_voter(node_id id) const noexcept
    {
        return std::find(voters.begin(), voters.end(), id) != voters.end();
    }
    std::size_t quorum() const noexcept { return voters.size() / 2 + 1; }

    friend bool operator==(const membership&, const membership&) = default;
};

/// Identifies a snapshot of the state machine: the state after applying every entry up
/// to and including `index`, whose term is `term`, under configuration `members`.
struct snapshot_meta {
    index_t index = 0;
    term_t term = 0;
    membership members;

    friend bool operator==(const snapshot_meta&, const snapshot_meta&) = default;
};

/// A snapshot of a node's externally visible state.
struct node_status {
    node_id id = no_node;
    raftkv::role role = role::follower;
    term_t term = 0;
    node_id leader = no_node;
    index_t commit_index = 0;
    index_t applied_index = 0;
    /// The first index the log holds; entries before it were compacted into a snapshot.
    index_t first_index = 1;
    index_t last_index = 0;
    /// The latest snapshot of the state machine: taken, installed from a leader, or the
    /// state the node started from (0 and 0 before any). The log keeps
    /// snapshot_catchup_entries before it, so first_index may be well below it.
    index_t snapshot_index = 0;
    term_t snapshot_term = 0;
    membership members;
};

} // namespace raftkv

#endif
