#ifndef RAFTKV_SIM_KV_WORKLOAD_HPP
#define RAFTKV_SIM_KV_WORKLOAD_HPP

// Simulated key-value clients: each issues one get, put or delete at a time against a
// simulated cluster, follows leader hints, retries what certainly had no effect, and
// records a history for the linearizability checker.

#include <raftkv/error.hpp>
#include <raftkv/kv_command.hpp>
#include <raftkv/sim/cluster.hpp>
#include <raftkv/sim/history.hpp>
#include <raftkv/types.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

namespace raftkv::sim {

struct workload_config {
    /// Concurrent clients; each has one operation in flight at a time. Default: 3.
    std::size_t clients = 3;
    /// Operations pick keys "k0".."k<keys-1>"; few keys make conflicts likely. Default: 3.
    std::size_t keys = 3;
    /// The probability that an operation is a get, or a put; a delete otherwise.
    /// Defaults: 0.4 and 0.45.
    double get_share = 0.4;
    double put_share = 0.45;
    /// The probability that an operation is a create: a put applied only if the key is
    /// absent (kv_precondition::expect_absent), drawn after get_share and put_share.
    /// Concurrent creates of one key race; the linearizability check fails if two win
    /// without a delete between them. Default: 0 (none).
    double create_share = 0.0;
    /// The probability that a get goes to a random node rather than to the one the client
    /// believes leads: a follower serves it through its leader (ReadIndex at followers).
    /// Default: 0.3.
    double follower_reads = 0.3;
    /// The probability that a put or delete goes to a random node rather than to the one
    /// the client believes leads: a follower forwards it to its leader
    /// (basic_node::forward) and the client waits for that follower to apply it.
    /// Default: 0.3.
    double follower_writes = 0.3;
    /// A write not acknowledged within this time is recorded as indeterminate and
    /// abandoned; a read is dropped. Default: 2 s.
    std::chrono::microseconds op_timeout{2'000'000};
    /// A client waits a random time in [min_backoff, max_backoff] before retrying.
    std::chrono::microseconds min_backoff{5'000};
    std::chrono::microseconds max_backoff{20'000};
    /// A client pauses a random time in [0, max_think] between operations. Default: 10 ms.
    std::chrono::microseconds max_think{10'000};
    /// Of the gets, the share that are lease reads: served at once by the node the client
    /// believes leads when basic_node::lease_valid() says so (and it applied its commit
    /// index), else by ReadIndex as any get. They are checked for linearizability like
    /// the others. Default: 0.
    double lease_reads = 0;
    /// Of the gets, the share that are stale reads: served at once by a random node's state
    /// machine, with no Raft round. They are left out of the history (they need not be
    /// linearizable); instead each node incarnation must never answer one at a lower
    /// applied index than an earlier one (workload_stats::stale_regressions). Default: 0.
    double stale_reads = 0;
    /// Whether writes carry a client session (kv_client_session: the client's number as its
    /// id, one sequence per operation). A write whose outcome is unknown (its node crashed,
    /// leadership was lost, the leader's answer came after the entry was applied) is then
    /// sent again, with the same session, until op_timeout: the state machine applies it
    /// once and answers the first application's result, so the operation completes instead
    /// of staying indeterminate. Default: false.
    bool sessions = false;
};

/// A write a client saw acknowledged, and where it sits in the log.
struct acknowledged_write {
    std::uint64_t client = 0;
    index_t index = 0;
    term_t term = 0;
    std::string command;
};

struct workload_stats {
    std::uint64_t completed = 0;
    std::uint64_t indeterminate = 0;
    /// Reads and never-appended writes abandoned at their timeout (not recorded).
    std::uint64_t abandoned = 0;
    std::uint64_t retries = 0;
    /// Writes a follower forwarded and the leader appended; of those, overwritten.
    std::uint64_t forwarded = 0;
    std::uint64_t forward_dropped = 0;
    /// Gets served under a leader's lease, stale reads served, and stale reads answered
    /// at a lower applied index than an earlier one of the same node incarnation (a bug).
    std::uint64_t lease_served = 0;
    std::uint64_t stale_served = 0;
    std::uint64_t stale_regressions = 0;
    /// With workload_config::sessions: writes of unknown outcome sent again, and answers
    /// that were replays of an earlier application.
    std::uint64_t session_retries = 0;
    std::uint64_t replayed = 0;
};

/** K clients running random gets, puts and deletes on a simulated cluster.

    A client sends to the node it believes leads (at first a random one). On not_leader
    it retries, after a short backoff, at the hinted leader or a random node. A write is
    proposed; when its node applies that index with the proposal's term the write is
    acknowledged, with another term it was overwritten and certainly had no effect, so
    it is retried as a new attempt of the same operation. A read runs ReadIndex, at the
    node the client believes leads or, some of the time, at a random node (a follower
    serves it through its leader), and then reads that node's state machine; if the read
    fails it is retried. Some writes go to a random follower, which forwards them to its
    leader; the leader's answer names the index and term, and the write then waits for that
    follower to apply them as above. A write whose
    node crashes or that outlives `op_timeout` is recorded indeterminate; a read that
    times out is dropped. With workload_config::sessions, a write whose outcome is unknown
    is sent again with its session instead, and only one that outlives `op_timeout` is
    indeterminate. Every value a put writes is unique ("c<client>-<n>").

    @tparam StateMachine a key-value state machine whose result_type is kv_result and
    that offers `std::optional<std::string> get(std::string_view) const`.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe.
*/
template <class StateMachine = kv_state_machine, class LogStore = sim_log_store>
class kv_workload {
    static_assert(std::same_as<typename StateMachine::result_type, kv_result>,
                  "kv_workload drives a key-value state machine whose results are kv_result");

public:
    /// Attaches to `c`. REQUIRES: the workload outlives every later step of `c`.
    kv_workload(cluster<StateMachine, LogStore>& c, workload_config config = {});

    kv_workload(const kv_workload&) = delete;
    kv_workload& operator=(const kv_workload&) = delete;

    /// Schedules every client's first operation.
    void start();
    /// Clients start no new operation; those in flight finish or time out.
    void stop() noexcept { stopped_ = true; }
    /// Whether no operation is in flight.
    bool idle() const noexcept;

    /// The operations recorded so far. Call and ret are in virtual nanoseconds: the
    /// cluster's clock counts microseconds, and the calls and returns within one
    /// microsecond are stamped a nanosecond apart in the order they happened, so the
    /// checker orders them as they were (a lease read served at t before a put returned at
    /// t would otherwise count as called after it: returns sort before calls at equal times).
    const kv_history& history() const noexcept { return history_; }
    /// Every write acknowledged to a client.
    const std::vector<acknowledged_write>& acknowledged() const noexcept { return acked_; }
    const workload_stats& stats() const noexcept { return stats_; }

private:
    enum class waiting_for : std::uint8_t { nothing, write, read };
    enum class read_kind : std::uint8_t { linearizable, lease, stale };

    struct client {
        std::uint64_t id = 0;
        node_id target = no_node;
        std::uint64_t puts = 0;
        /// The session sequence of the last write (workload_config::sessions).
        std::uint64_t sequence = 0;
        bool busy = false;
        /// Bumped whenever the client schedules a timer, so stale timers do nothing.
        std::uint64_t op_seq = 0;
        std::uint64_t retry_seq = 0;
        kv_op op;
        std::string command;
        waiting_for waiting = waiting_for::nothing;
        node_id at = no_node;
        index_t index = 0;
        term_t term = 0;
        read_kind reading = read_kind::linearizable;
    };

    void issue(std::size_t ci);
    bool try_lease_read(client& c, std::size_t ci);
    void stale_read(client& c, std::size_t ci);
    void attempt(std::size_t ci);
    void attempt_write(client& c, std::size_t ci);
    void attempt_read(client& c, std::size_t ci);
    void retry(client& c, std::size_t ci, node_id hint);
    void handle_apply(node_id node, index_t index, term_t term, const kv_result& result);
    void handle_read(node_id node, std::uint64_t read_id, std::error_code ec);
    void handle_drop(node_id node, index_t index, term_t term, std::error_code ec);
    void handle_forward(node_id node, std::uint64_t forward_id, std::error_code ec, index_t index,
                        term_t term);
    void forget_forward(std::size_t ci);
    std::optional<std::size_t> take_write(node_id node, index_t index, term_t term);
    void indeterminate(client& c, std::size_t ci);
    void unknown_outcome(client& c, std::size_t ci);
    void handle_crash(node_id node);
    void handle_timeout(std::size_t ci, std::uint64_t op_seq);
    void complete(client& c, std::size_t ci, bool found, std::string value);
    void finish(client& c, std::size_t ci);
    std::chrono::microseconds draw(std::chrono::microseconds lo, std::chrono::microseconds hi);
    std::uint64_t stamp();
    node_id random_node();

    cluster<StateMachine, LogStore>& cluster_;
    workload_config config_;
    std::vector<client> clients_;
    /// Writes waiting for their outcome, by (node, index, term) of their proposal.
    std::map<std::tuple<node_id, index_t, term_t>, std::size_t> writes_;
    std::map<std::uint64_t, std::size_t> reads_;
    /// The applied index of the last stale read each node incarnation answered.
    std::map<std::pair<node_id, std::uint64_t>, index_t> stale_seen_;
    std::uint64_t next_read_id_ = 1;
    /// Writes handed to a follower, waiting for the leader's answer, by forward id.
    std::map<std::uint64_t, std::size_t> forwards_;
    std::uint64_t next_forward_id_ = 1;
    bool stopped_ = false;
    /// The microsecond of the last stamp() and how many stamps it gave in it.
    std::uint64_t stamp_us_ = 0;
    std::uint64_t stamps_in_us_ = 0;
    kv_history history_;
    std::vector<acknowledged_write> acked_;
    workload_stats stats_;
};

} // namespace raftkv::sim

#include <raftkv/sim/impl/kv_workload.hpp>

#endif
