#ifndef RAFTKV_TYPES_HPP
#define RAFTKV_TYPES_HPP

// Plain value types shared by every part of raftkv: identifiers, log entries,
// the persistent hard state and cluster membership.

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace raftkv {

/// Identifies a cluster member. Ids are chosen by the operator and are never 0.
using node_id = std::uint64_t;

/// A Raft term. Term 0 is the term before any election.
using term_t = std::uint64_t;

/// The largest term_t, which no node adopts or creates, so that no term ever wraps: a
/// message carrying it is dropped as malformed, and a node at the term before it no
/// longer campaigns (its cluster can still be led by a leader of that term).
inline constexpr term_t max_term = ~term_t{0};

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
    /// A configuration: the membership in force from this entry on (encode_membership()).
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

/** The configuration of a cluster: who votes, who only listens, and what the application
    attached to each member.

    A quorum is a strict majority of `voters` and, while a joint change is in progress
    (`outgoing` not empty), also a strict majority of `outgoing` (Raft §6, joint consensus).
    Learners receive the log but never vote and never count toward a quorum. A node is in at
    most one of `voters` and `learners`; during a joint change a node may be in `outgoing`
    only, in `voters` only, or in both.

    Configurations travel in the log as entries of type `entry_type::config` (their data is
    encode_membership()), take effect on a node as soon as it appends them, and are part of
    every snapshot (`snapshot_meta::members`).

    The fields after `voters` have default initializers, so `membership{{1, 2, 3}}` (three
    voters) compiles without missing-initializer warnings.
*/
struct membership {
    /// The voters of the configuration (the new one, during a joint change).
    std::vector<node_id> voters;
    /// During a joint change, the voters of the configuration being left; empty otherwise.
    std::vector<node_id> outgoing = {};
    /// Members that receive the log but do not vote.
    std::vector<node_id> learners = {};
    /// Opaque data the application keeps with each member (the reference server: its
    /// addresses). Replicated with the configuration; raftkv never looks inside.
    std::map<node_id, std::string> info = {};

    bool is_voter(node_id id) const noexcept
    {
        return std::find(voters.begin(), voters.end(), id) != voters.end() ||
               std::find(outgoing.begin(), outgoing.end(), id) != outgoing.end();
    }
    bool is_learner(node_id id) const noexcept
    {
        return std::find(learners.begin(), learners.end(), id) != learners.end();
    }
    bool contains(node_id id) const noexcept { return is_voter(id) || is_learner(id); }
    bool joint() const noexcept { return !outgoing.empty(); }
    bool empty() const noexcept { return voters.empty() && outgoing.empty() && learners.empty(); }
    /// A strict majority of `voters` (of the incoming configuration only, during a joint change).
    std::size_t quorum() const noexcept { return voters.size() / 2 + 1; }

    friend bool operator==(const membership&, const membership&) = default;
};

/// One change to the configuration, proposed with basic_node::change_membership().
struct config_change {
    enum class kind : std::uint8_t {
        /// Adds a voter: a new member, or a learner promoted (which must have caught up,
        /// see options::promote_max_lag).
        add_voter,
        /// Adds a member that receives the log but does not vote.
        add_learner,
        /// Removes a voter or a learner.
        remove,
        /// Replaces the info of a member (its addresses, say, after it moved), which must
        /// not be empty. Changes no vote: it takes effect in one config entry.
        update,
    };
    kind type = kind::add_voter;
    node_id id = no_node;
    /// For add_voter and add_learner: replaces membership::info of `id` when not empty.
    /// For update: the member's new info.
    std::string info;

    friend bool operator==(const config_change&, const config_change&) = default;
};

/// Identifies a snapshot of the state machine: the state after applying every entry up
/// to and including `index`, whose term is `term`, under configuration `members`.
struct snapshot_meta {
    index_t index = 0;
    term_t term = 0;
    membership members;

    friend bool operator==(const snapshot_meta&, const snapshot_meta&) = default;
};

/// Why a leader stopped leading (node_status::last_step_down).
enum class step_down_reason : std::uint8_t {
    /// It has not stepped down since it started.
    none,
    /// A message carried a newer term: another node started an election (it stopped hearing
    /// from this leader in time), or a partition healed.
    newer_term,
    /// The target of its leadership transfer started the election it was told to.
    transferred,
    /// CheckQuorum: it heard from no quorum of voters within an election timeout.
    check_quorum,
    /// Its own appends stayed non-durable for an election timeout (its disk hangs).
    log_stalled,
    /// It committed a configuration in which it is no longer a voter.
    removed,
};

/// A short lower-case name for a reason ("none", "newer_term", "transferred",
/// "check_quorum", "log_stalled", "removed").
constexpr const char* to_string(step_down_reason r) noexcept
{
    switch (r) {
    case step_down_reason::none: return "none";
    case step_down_reason::newer_term: return "newer_term";
    case step_down_reason::transferred: return "transferred";
    case step_down_reason::check_quorum: return "check_quorum";
    case step_down_reason::log_stalled: return "log_stalled";
    case step_down_reason::removed: return "removed";
    }
    return "unknown";
}

/// The last time a node stopped leading, and why.
struct step_down {
    step_down_reason reason = step_down_reason::none;
    /// The term it led.
    term_t term = 0;
    /// newer_term and transferred: the node whose message carried the newer term, and that term.
    node_id from = no_node;
    term_t newer_term = 0;
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
    /// The configuration in force, and the index of the config entry it comes from (the
    /// log's start when none is in the log). Committed once commit_index reaches it.
    membership members;
    index_t members_index = 0;
    /// Messages dropped since start because a correct peer never sends them (a term of
    /// max_term, entries out of order or with a config that does not decode, a snapshot
    /// with no voters or that the state machine could not decode), so that a transport
    /// that lets a hostile peer through shows up.
    std::uint64_t malformed_dropped = 0;
    /// A snapshot from the leader is being received and installed: the state machine
    /// holds it only in part until it is finished.
    bool restoring_snapshot = false;
    /// The last time this node stopped leading since it started, and why.
    raftkv::step_down last_step_down;
};

} // namespace raftkv

#endif
