#ifndef RAFTKV_ERROR_HPP
#define RAFTKV_ERROR_HPP

// Error codes reported by raftkv, as a std::error_code category.

#include <stdexcept>
#include <string>
#include <system_error>

namespace raftkv {

enum class errc {
    /// This node is not the leader; the caller should retry at the known leader, if any.
    not_leader = 1,
    /// The node lost leadership before the operation finished; its outcome is unknown
    /// for a proposal that was already in the log, and it had no effect for a read.
    leadership_lost,
    /// The proposed entry was overwritten by another leader's entry: it will never be applied.
    proposal_dropped,
    /// A leadership transfer is in progress; proposals are refused until it ends.
    transfer_in_progress,
    /// The operation did not finish in the time allowed.
    timeout,
    /// The node is shutting down.
    shutting_down,
    /// The request is invalid (for example, an empty command or an unknown node id).
    invalid_argument,
    /// The leader holds as much uncommitted data as it may (options::max_uncommitted_bytes);
    /// retry once commits catch up.
    overloaded,
    /// The node's storage contradicts what Raft requires of it (a log shorter than what
    /// was applied, a leader committing past anything the log could hold): the log was
    /// corrupted, truncated or lost. The node cannot go on safely.
    storage_inconsistent,
    /// A configuration change is in progress (not yet committed, or a joint configuration
    /// not yet left), or this leader has not committed an entry of its term yet; retry
    /// once it is done.
    change_in_progress,
    /// The learner to promote has not caught up with the leader's log
    /// (options::promote_max_lag); retry once it has.
    learner_behind,
    /// The node's log store or state machine failed (a write or sync error, a full disk):
    /// the node stopped, and completes what was pending, and everything after, with this
    /// error. A proposal's outcome is unknown (it may have been appended, even committed).
    node_failed,
    /// The node an operation names (a leadership transfer's target) has not answered the
    /// leader for at least an election timeout: it is down or cut off.
    peer_unreachable,
    /// A configuration change would leave fewer of its voters answering the leader than
    /// its majority needs (options::strict_membership_changes): it would stall the
    /// cluster. Bring the missing voters back, or remove them, or add new nodes as
    /// learners and promote them once they caught up.
    quorum_at_risk,
    /// The leader refused a follower's forwarded proposals: that node is not a member of the
    /// configuration in force (it was removed, or not added yet), so it proposes nothing.
    /// The commands did not take effect.
    not_a_member,
};

namespace detail {
class raftkv_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "raftkv"; }
    std::string message(int ev) const override
    {
        switch (static_cast<errc>(ev)) {
        case errc::not_leader: return "not leader";
        case errc::leadership_lost: return "leadership lost";
        case errc::proposal_dropped: return "proposal dropped";
        case errc::transfer_in_progress: return "leadership transfer in progress";
        case errc::timeout: return "timed out";
        case errc::shutting_down: return "shutting down";
        case errc::invalid_argument: return "invalid argument";
        case errc::overloaded: return "too much uncommitted data";
        case errc::storage_inconsistent: return "storage inconsistent with the cluster";
        case errc::change_in_progress: return "a configuration change is in progress";
        case errc::learner_behind: return "the learner has not caught up with the leader";
        case errc::node_failed: return "the node stopped after its storage failed";
        case errc::peer_unreachable: return "the node has not answered the leader lately";
        case errc::quorum_at_risk:
            return "the change would leave too few voters that answer the leader for a quorum";
        case errc::not_a_member: return "this node is not a member of the configuration in force";
        }
        return "unknown raftkv error";
    }
};
} // namespace detail

/// The category of every raftkv::errc.
inline const std::error_category& raftkv_category() noexcept
{
    static const detail::raftkv_category instance;
    return instance;
}

inline std::error_code make_error_code(errc e) noexcept
{
    return {static_cast<int>(e), raftkv_category()};
}

/** What a log store or a state machine throws when its storage fails: an I/O error, a
    full disk, a database that refuses a read or a write, data on the disk that no longer
    reads back. Anything else it throws from `restore_chunk()` or `finish_restore()` means
    the snapshot data it was given is bad (it does not decode, or the stream is
    incomplete): the node then abandons the restore, counts the message in
    node_status::malformed_dropped and asks the leader again, since bytes from the network
    must never stop a node. A storage_error is no verdict on the data: it propagates out
    of the node's call, so that the node stops (raftkv::asio::driver: on_failure), as for a
    failed append or apply, rather than retrying the transfer on a disk that fails.
*/
class storage_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

} // namespace raftkv

template <>
struct std::is_error_code_enum<raftkv::errc> : std::true_type {
};

#endif
