#ifndef RAFTKV_DETAIL_QUORUM_HPP
#define RAFTKV_DETAIL_QUORUM_HPP

// Every quorum decision a node makes (commit index, election outcome, CheckQuorum,
// ReadIndex confirmation) goes through these functions, which know about joint
// configurations: a decision needs a majority of the incoming voters and, during a
// joint change, also a majority of the outgoing ones (Raft §6).

#include <raftkv/types.hpp>

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace raftkv::detail {

/// The largest value that at least `quorum` of `values` reach: the `quorum`-th largest.
/// Reorders `values`. REQUIRES: 1 <= quorum <= values.size().
inline std::uint64_t quorum_value(std::vector<std::uint64_t>& values, std::size_t quorum)
{
    assert(quorum >= 1 && quorum <= values.size());
    auto nth = values.begin() + static_cast<std::ptrdiff_t>(quorum - 1);
    std::nth_element(values.begin(), nth, values.end(), std::greater<>{});
    return *nth;
}

/// The largest value a majority of `voters` reach, `value_of(id)` giving each one's;
/// 0 when `voters` is empty. `scratch` is reused to avoid allocating.
template <class ValueOf>
std::uint64_t majority_value(const std::vector<node_id>& voters, ValueOf&& value_of,
                             std::vector<std::uint64_t>& scratch)
{
    if (voters.empty())
        return 0;
    scratch.clear();
    for (node_id id : voters)
        scratch.push_back(value_of(id));
    return quorum_value(scratch, voters.size() / 2 + 1);
}

/// The largest value a quorum of configuration `m` reaches: a majority of its voters and,
/// during a joint change, of its outgoing voters too.
template <class ValueOf>
std::uint64_t joint_value(const membership& m, ValueOf&& value_of, std::vector<std::uint64_t>& scratch)
{
    const std::uint64_t incoming = majority_value(m.voters, value_of, scratch);
    if (m.outgoing.empty())
        return incoming;
    return std::min(incoming, majority_value(m.outgoing, value_of, scratch));
}

enum class vote_outcome : std::uint8_t { pending, won, lost };

/// The outcome of an election among `voters` given who granted and who refused.
inline vote_outcome majority_vote(const std::vector<node_id>& voters, const std::vector<node_id>& granted,
                                  const std::vector<node_id>& rejected)
{
    if (voters.empty())
        return vote_outcome::won;
    std::size_t yes = 0;
    std::size_t no = 0;
    for (node_id id : voters) {
        if (std::find(granted.begin(), granted.end(), id) != granted.end())
            ++yes;
        else if (std::find(rejected.begin(), rejected.end(), id) != rejected.end())
            ++no;
    }
    const std::size_t quorum = voters.size() / 2 + 1;
    if (yes >= quorum)
        return vote_outcome::won;
    if (voters.size() - no < quorum)
        return vote_outcome::lost;
    return vote_outcome::pending;
}

/// The outcome of an election under configuration `m`: won with a majority of its voters
/// and of its outgoing voters, lost once either majority can no longer be reached.
/// REQUIRES: m.voters is not empty.
inline vote_outcome joint_vote(const membership& m, const std::vector<node_id>& granted,
                               const std::vector<node_id>& rejected)
{
    assert(!m.voters.empty());
    const vote_outcome incoming = majority_vote(m.voters, granted, rejected);
    const vote_outcome outgoing = majority_vote(m.outgoing, granted, rejected);
    if (incoming == vote_outcome::lost || outgoing == vote_outcome::lost)
        return vote_outcome::lost;
    if (incoming == vote_outcome::won && outgoing == vote_outcome::won)
        return vote_outcome::won;
    return vote_outcome::pending;
}

} // namespace raftkv::detail

#endif
