#ifndef RAFTKV_MESSAGES_HPP
#define RAFTKV_MESSAGES_HPP

// The messages Raft nodes exchange. Plain aggregates with no behaviour, so a
// transport can encode them however it likes (the Asio transport uses
// Boost.Serialization through non-intrusive functions).

#include <raftkv/types.hpp>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace raftkv {

/// RequestVote (Raft §5.2), or a PreVote probe (thesis §9.6) when `pre_vote` is set.
/// A PreVote carries the term the sender would campaign in, without having adopted it.
struct vote_request {
    index_t last_log_index = 0;
    term_t last_log_term = 0;
    bool pre_vote = false;
    /// Set when the election was requested by the leader (leadership transfer), so
    /// voters must not ignore it for having heard from a leader recently.
    bool transfer = false;
    friend bool operator==(const vote_request&, const vote_request&) = default;
};

struct vote_response {
    bool granted = false;
    bool pre_vote = false;
    friend bool operator==(const vote_response&, const vote_response&) = default;
};

/// AppendEntries (Raft §5.3): entries follow the entry at `prev_index`, whose term is `prev_term`.
struct append_request {
    index_t prev_index = 0;
    term_t prev_term = 0;
    /// The leader's commit index.
    index_t commit = 0;
    std::vector<log_entry> entries;
    friend bool operator==(const append_request&, const append_request&) = default;
};

/// The answer to an append_request.
/// On success, `match_index` is the last index the follower has durably stored that
/// matches the leader's log. On rejection, `reject_index` echoes the request's
/// `prev_index`, and `conflict_term` / `conflict_index` let the leader skip a whole
/// divergent term per round trip: `conflict_term` is the follower's term at
/// `prev_index` (0 when its log is shorter) and `conflict_index` the first index the
/// follower holds of that term (or its last index + 1 when its log is shorter).
struct append_response {
    bool success = false;
    index_t match_index = 0;
    index_t reject_index = 0;
    index_t conflict_index = 0;
    term_t conflict_term = 0;
    /// Set on a rejection by a node whose state machine is behind the start of its own
    /// log (it lost its state, or crashed while installing a snapshot): only an
    /// install_snapshot can bring it back.
    bool snapshot_needed = false;
    friend bool operator==(const append_response&, const append_response&) = default;
};

/// The leader's periodic proof of life. `commit` is never beyond what the follower is
/// known to match; `read_seq` numbers the round so a quorum of echoes can confirm
/// leadership for ReadIndex reads.
struct heartbeat {
    index_t commit = 0;
    std::uint64_t read_seq = 0;
    friend bool operator==(const heartbeat&, const heartbeat&) = default;
};

struct heartbeat_response {
    std::uint64_t read_seq = 0;
    friend bool operator==(const heartbeat_response&, const heartbeat_response&) = default;
};

/// Sent by a leader to the target of a leadership transfer: campaign now.
struct timeout_now {
    friend bool operator==(const timeout_now&, const timeout_now&) = default;
};

/// One chunk of a snapshot a leader streams to a follower whose next entry it no longer
/// holds (Raft §7). A transfer is the chunks of one snapshot, numbered by `transfer`
/// (unique per leader and term), sent in order from offset 0; the chunk with `done` set
/// is the last.
struct install_snapshot_request {
    snapshot_meta meta;
    std::uint64_t transfer = 0;
    /// Where `data` starts in the snapshot's byte stream.
    std::uint64_t offset = 0;
    std::string data;
    bool done = false;
    friend bool operator==(const install_snapshot_request&, const install_snapshot_request&) = default;
};

/// The follower's answer to an install_snapshot_request: how far it has received
/// `transfer` in order (`offset`, the next byte it expects), or that it has installed the
/// snapshot (`done`), after which it matches the leader up to `index`.
struct install_snapshot_response {
    std::uint64_t transfer = 0;
    index_t index = 0;
    std::uint64_t offset = 0;
    bool done = false;
    friend bool operator==(const install_snapshot_response&, const install_snapshot_response&) = default;
};

/// A follower asks its leader for a read index (ReadIndex at a follower, thesis §6.4), on
/// behalf of every read that arrived before it sent this. `request` numbers the request
/// among the follower's, in the order they are sent; it has at most
/// options::max_read_rounds in flight, and an answer to one answers the older ones too.
struct read_index_request {
    std::uint64_t request = 0;
    friend bool operator==(const read_index_request&, const read_index_request&) = default;
};

/// The leader's answer to a read_index_request, echoing its `request`. With `success`,
/// `index` is the leader's commit index when the request arrived (once it had committed an
/// entry of its term), confirmed by a quorum's answers to a heartbeat round started after
/// that: the follower serves the reads once it has applied `index`. Without `success`, the
/// sender is not the leader of its term.
struct read_index_response {
    std::uint64_t request = 0;
    index_t index = 0;
    bool success = false;
    friend bool operator==(const read_index_response&, const read_index_response&) = default;
};

/// A follower hands its clients' commands to its leader of the message's term, which
/// proposes them as one batch (basic_node::forward). `id` is the caller's, echoed in the
/// answer. `nonce` is drawn once per node instance and `seq` increases with each request
/// it sends, so the leader proposes a duplicated request only once.
struct forward_request {
    std::uint64_t id = 0;
    std::uint64_t nonce = 0;
    std::uint64_t seq = 0;
    std::vector<std::string> commands;
    friend bool operator==(const forward_request&, const forward_request&) = default;
};

/// The leader's answer to a forward_request, echoing its `id`: the commands were appended
/// at `index`, `index + 1`, ... in the message's term (`error` 0), or were not, with
/// `error` the raftkv::errc value that propose() returned (not_leader, overloaded,
/// transfer_in_progress).
struct forward_response {
    std::uint64_t id = 0;
    index_t index = 0;
    std::uint8_t error = 0;
    friend bool operator==(const forward_response&, const forward_response&) = default;
};

/// Every message body, in a fixed order that the wire format relies on: append new
/// alternatives at the end only.
using message_body =
    std::variant<vote_request, vote_response, append_request, append_response, heartbeat, heartbeat_response,
                 timeout_now, install_snapshot_request, install_snapshot_response, read_index_request,
                 read_index_response, forward_request, forward_response>;

/// A message between two nodes, stamped with the sender's current term.
struct message {
    node_id from = no_node;
    node_id to = no_node;
    term_t term = 0;
    message_body body;
    friend bool operator==(const message&, const message&) = default;
};

/// A short name for the message's body type, for logs and traces.
inline const char* type_name(const message& m) noexcept
{
    static constexpr const char* names[] = {"vote_request",
                                            "vote_response",
                                            "append_request",
                                            "append_response",
                                            "heartbeat",
                                            "heartbeat_response",
                                            "timeout_now",
                                            "install_snapshot_request",
                                            "install_snapshot_response",
                                            "read_index_request",
                                            "read_index_response",
                                            "forward_request",
                                            "forward_response"};
    static_assert(std::size(names) == std::variant_size_v<message_body>);
    return names[m.body.index()];
}

} // namespace raftkv

#endif
