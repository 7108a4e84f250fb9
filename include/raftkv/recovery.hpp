#ifndef RAFTKV_RECOVERY_HPP
#define RAFTKV_RECOVERY_HPP

// Disaster recovery: starting a new cluster from one member's own log, for a cluster that
// lost a majority of its voters for good. Raft cannot commit anything without a quorum, so
// no change proposed through the cluster can remove the lost members; this rewrites a
// stopped member's log instead, offline, so that at its next start it is the only voter.
//
// It gives up Raft's guarantee that an acknowledged write is never lost: a write that the
// lost members acknowledged without this one is gone. Everything this member's log holds
// is kept, committed or not (an entry that was never committed was never acknowledged
// either, so applying it is as if its client's request had succeeded late). Whoever uses
// it must make sure the lost members never come back as members of the old cluster: the
// two would then serve diverging histories under one name. docs/membership.md, "Losing a
// majority", says how the reference server does both.

#include <raftkv/concepts.hpp>
#include <raftkv/membership.hpp>
#include <raftkv/types.hpp>

#include <algorithm>
#include <span>
#include <stdexcept>
#include <string>

namespace raftkv {

/// What force_single_voter() found and did.
struct forced_configuration {
    /// The configuration in force in the log before: its last config entry, or the
    /// store's record of the configuration at its start.
    membership previous;
    /// The index of the config entry appended; 0 when the log already made `self` its
    /// only member and nothing was appended.
    index_t index = 0;
    /// The term it was appended in: the store's current term (never below the last entry's).
    term_t term = 0;
};

/// The configuration in force at the end of `store`'s log: its last config entry, else the
/// store's record of the configuration at the log's start. Throws std::runtime_error if a
/// config entry does not decode.
template <log_store LogStore>
membership configuration_in_force(const LogStore& store)
{
    membership in_force = store.base_members();
    for_each_config_entry(store, [&in_force](const log_entry& e) {
        auto m = decode_config_entry(e.data);
        if (!m)
            throw std::runtime_error("the config entry at index " + std::to_string(e.index) +
                                     " does not hold a valid configuration");
        in_force = std::move(*m);
    });
    return in_force;
}

/// Makes `self` the only member of the log in `store`: appends, after its last entry, a
/// config entry whose only voter is `self` (with `info` as its member data), in the
/// store's current term. A node opened on the store then elects itself at once and commits
/// every entry of its log with its first entry as leader. Nothing is removed and the hard
/// state is unchanged. `self` must be a member of the configuration in force (a voter, a
/// learner, or either side of a joint configuration): a node that is not was removed, and
/// its log is not the cluster's latest (std::invalid_argument otherwise).
///
/// Offline only: no node may have the store open. The entry is appended, not synced:
/// call the store's own sync (wal::log_store::sync()) before anything depends on it. Run
/// again on the result, it appends nothing (`index` 0), so an interrupted recovery can be
/// run again.
template <log_store LogStore>
forced_configuration force_single_voter(LogStore& store, node_id self, std::string info)
{
    forced_configuration out;
    out.previous = configuration_in_force(store);
    if (!out.previous.contains(self))
        throw std::invalid_argument("node " + std::to_string(self) +
                                    " is not a member of the configuration at the end of its log: it was "
                                    "removed, and its log is not the cluster's latest");
    membership next;
    next.voters = {self};
    next.info.emplace(self, std::move(info));
    const index_t last = store.last_index();
    out.term = std::max(store.saved_hard_state().term, store.term_at(last));
    if (out.previous == next)
        return out;
    out.index = last + 1;
    const log_entry e{out.term, out.index, entry_type::config, encode_membership(next)};
    store.append(std::span<const log_entry>(&e, 1));
    return out;
}

} // namespace raftkv

#endif
