#ifndef RAFTKV_NODE_HPP
#define RAFTKV_NODE_HPP

#include <raftkv/concepts.hpp>
#include <raftkv/detail/applied_bytes.hpp>
#include <raftkv/detail/progress.hpp>
#include <raftkv/detail/quorum.hpp>
#include <raftkv/detail/random.hpp>
#include <raftkv/detail/read_queue.hpp>
#include <raftkv/detail/snapshot_sender.hpp>
#include <raftkv/error.hpp>
#include <raftkv/messages.hpp>
#include <raftkv/metrics.hpp>
#include <raftkv/options.hpp>
#include <raftkv/types.hpp>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace raftkv {

/// What propose() tells the caller at once.
struct propose_result {
    /// Empty when the command was appended to the leader's log; errc::not_leader,
    /// errc::transfer_in_progress or errc::overloaded otherwise.
    std::error_code ec;
    /// Where the command was appended. It is applied at that index if the entry found
    /// there at apply time has the same term; otherwise it was dropped.
    index_t index = 0;
    term_t term = 0;
    /// The leader this node knows of (no_node if none), for redirecting the caller.
    node_id leader = no_node;
};

/** One Raft node: election, log replication, commitment and ReadIndex reads.

    `basic_node` is pure logic. It owns no threads, clocks or sockets: time enters only
    through `tick()`, messages only through `step()`, commands through `propose()`.
    Outputs go through the policies: messages to the Transport, log and hard state to the
    LogStore, committed entries to the StateMachine. Given the same inputs it produces the
    same outputs, which is what makes the simulator in <raftkv/sim/> possible.

    The contract with the storage follows "persist, then send": the hard state is saved
    before any vote or message that depends on it is sent, and a follower acknowledges
    entries only once the LogStore reports them durable. A leader replicates entries
    before its own copy is durable and counts itself toward a quorum once it is.

    A node whose disk hangs gives way. A leader whose own entries have stayed not durable,
    with its durable index standing still, for longer than an election timeout
    (`options::election_ticks` ticks, counted from the oldest such entry and restarted
    whenever the durable index advances) steps down to follower in the same term: it could
    neither count itself toward a quorum nor apply, so nothing it holds would complete. A
    node campaigns only when its whole log is durable (when the election timer fires, or
    on campaign() or a transfer's timeout_now), so it does not win back the leadership
    while its disk hangs (a hang shows only as entries that stay not durable: a node that
    restarts on a hung disk may lead once more, for an election timeout). It still votes,
    and a follower acknowledges only what is durable.

    @par Example
    @code
    raftkv::options o{.id = 1, .members = {{1}}};
    raftkv::basic_node node{o, transport, store, machine};
    node.on_apply([](raftkv::index_t i, raftkv::term_t t, auto& result) { ... });
    for (;;) { node.tick(); deliver_messages_to(node); }
    @endcode

    @tparam Transport a type satisfying `raftkv::transport`.
    @tparam LogStore a type satisfying `raftkv::log_store`.
    @tparam StateMachine a type satisfying `raftkv::state_machine`.

    @par Thread Safety
    Distinct objects: safe. Shared objects: unsafe; every call, including the observers,
    must come from one thread or strand. The policies are called only from within the
    node's member functions.
*/
template <transport Transport, log_store LogStore, state_machine StateMachine>
class basic_node {
public:
    using result_type = typename StateMachine::result_type;

    /// Called once for every applied entry, in log order, after the state machine applied
    /// it. Entries that are not commands (noop) come with a default result. Entries
    /// restored from a snapshot are not reported one by one.
    using apply_handler = std::function<void(index_t index, term_t term, result_type& result)>;

    /// Called for a proposal of this node that will not be reported by the apply handler
    /// (see Outcomes above), with its index and term.
    using drop_handler = std::function<void(index_t index, term_t term, std::error_code ec)>;

    /// Called when this node's role, term or known leader changed.
    using leader_handler = std::function<void(raftkv::role role, term_t term, node_id leader)>;

    /// Called when the state machine was replaced by a snapshot received from the leader:
    /// applied_index() jumped to `meta.index`.
    using restore_handler = std::function<void(const snapshot_meta& meta)>;

    /// Called once for each forward(`id`) that returned no error. When the leader answered:
    /// the commands were appended at `index`, `index + 1`, ... in `term` (empty `ec`), or
    /// were not (`ec` is what the leader's propose() returned: errc::not_leader,
    /// errc::overloaded, errc::transfer_in_progress; errc::not_leader also when it had
    /// stopped leading before the forward reached it). The answer counts even when this
    /// node has moved to another term or leader since: it is a fact about where the node
    /// it was sent to put the commands. Without an answer within two election timeouts
    /// (`index` and `term` 0): errc::timeout. That node may then have appended them:
    /// whether they take effect is unknown.
    using forward_handler =
        std::function<void(std::uint64_t id, std::error_code ec, index_t index, term_t term)>;

    /// Called when the configuration in force on this node changed: a config entry at
    /// `index` was appended, or entries were discarded back to an older one, or a snapshot
    /// installed (`index` is then the snapshot's). Also called once from the first call
    /// into the node after construction, with the configuration it started with.
    using config_handler = std::function<void(index_t index, const membership& members)>;

    /// Called when a read started by read_index() may proceed (empty error code: the
    /// state machine now reflects every write acknowledged before the read began), or
    /// can no longer (errc::leadership_lost): on the leader or the follower it started on.
    using read_handler = std::function<void(std::uint64_t read_id, std::error_code ec)>;

    /// Restores the node from `store` (hard state and log) and `machine` (applied index).
    /// The policies must outlive the node. Throws std::system_error: errc::invalid_argument
    /// when `opts` breaks the REQUIRES of a field, errc::storage_inconsistent when the
    /// state machine has applied entries the log does not hold.
    basic_node(options opts, Transport& transport, LogStore& store, StateMachine& machine);

    basic_node(const basic_node&) = delete;
    basic_node& operator=(const basic_node&) = delete;

    /// Advances the node's logical clock by one tick: election and heartbeat timers.
    void tick();

    /// Processes one message from another node. Messages for another node, from an
    /// unknown node or from an older term are answered or dropped as Raft requires.
    void step(message m);

    /// Appends `command` to the log if this node is the leader. The result says where;
    /// the apply or drop handler reports the outcome later, never before propose()
    /// returns. The entry commits once it is durable on a quorum: the driver
    /// calls on_log_durable() after proposing (a batch of proposals needs one call), as
    /// it does whenever the store's durable index advances. Failing that, the next tick
    /// notices.
    propose_result propose(std::string command);

    /// Appends every command of `commands` (moving them out) as consecutive entries, in
    /// one append to the log store: the result names the first, the others follow it.
    /// REQUIRES: `commands` is not empty.
    propose_result propose(std::span<std::string> commands);

    /// On a follower that knows its leader, sends `commands` (moving them out) to the
    /// leader, which proposes them as one batch and answers through the forward handler
    /// with where it appended them. Each command then takes effect if this node applies
    /// its index with that term, and never if it applies another entry there (the apply
    /// handler reports every entry applied, with its index and term); if the answer never
    /// comes, the outcome is unknown. Returns errc::not_leader at once when no leader is
    /// known, errc::invalid_argument on the leader itself or for no commands. `id` is the
    /// caller's, echoed in the answer. A leader answers errc::not_a_member to a node outside
    /// its configuration (one removed that did not learn it yet): nothing was proposed.
    std::error_code forward(std::uint64_t id, std::span<std::string> commands);

    /// Proposes a change of the configuration, on the leader: `changes` are applied in
    /// order to the configuration in force. A change of at most one voter takes effect in
    /// one config entry; a change of more (a replacement, say) goes through a joint
    /// configuration (Raft §6), which the leader leaves by itself once it commits. Returns
    /// where the entry was appended (the apply handler reports it like any entry) or, at
    /// once: errc::not_leader; errc::transfer_in_progress; errc::change_in_progress while
    /// a change is not yet committed (or a joint configuration not yet left), or before
    /// this leader committed an entry of its term; errc::learner_behind when a learner to
    /// promote has acknowledged nothing yet, has not answered within the last one to two
    /// election timeouts, or lags more than options::promote_max_lag entries;
    /// errc::quorum_at_risk when the new voters would not hold a majority that answers
    /// this leader (options::strict_membership_changes); errc::invalid_argument
    /// for an empty list, id 0, adding a voter or learner that already is one (a learner
    /// may be promoted with add_voter), removing or updating a non-member, an update
    /// without info, or leaving no voter.
    propose_result change_membership(std::span<const config_change> changes);

    /// Starts a linearizable read (ReadIndex, thesis §6.4) on the leader or on a follower.
    /// Returns errc::not_leader at once when this node neither leads nor knows a leader;
    /// otherwise the read handler is called with `read_id` when the call that confirms it
    /// ends (possibly this one). Each call starts a heartbeat round while fewer than
    /// options::max_read_rounds are out; the reads that arrive while that many are share the
    /// next one. A follower asks its leader for the index to read at (up to max_read_rounds
    /// requests in flight, each for every read waiting when it was sent) and serves the reads
    /// once it applied that index; they fail with
    /// errc::leadership_lost when it stops following that leader or the leader does not
    /// answer within an election timeout (the caller may retry, here or at the leader).
    std::error_code read_index(std::uint64_t read_id);

    /// Tells the node the LogStore's durable_index() may have advanced: after appends to a
    /// store that is durable on append, or when a background sync completes.
    void on_log_durable();

    /// Starts an election at once (skipping PreVote), as if the election timer fired.
    /// Does nothing on a leader, or on a node that may not campaign: one whose log holds
    /// entries not yet durable, or whose state machine waits for a snapshot.
    void campaign();

    /// Hands leadership to `target` (thesis §3.10): the leader stops taking proposals,
    /// brings `target` up to date and tells it to campaign at once. Returns an error at once
    /// when this node is not the leader, `target` is not a voter, or (with CheckQuorum)
    /// `target` has not answered for at least an election timeout (errc::peer_unreachable).
    /// The transfer is abandoned if it has not happened within an election timeout. To
    /// this node itself: nothing to do, and no error.
    std::error_code transfer_leadership(node_id target);

    /// Whether this leader may serve a read from its state machine without a ReadIndex
    /// round (a lease read): a quorum (of both configurations during a joint change)
    /// acknowledged a heartbeat round sent less than lease_ticks() ticks ago, the leader
    /// has committed an entry of its term, and it has not handed its leadership on
    /// (timeout_now sent) in this term. Serve the read at commit_index(), once applied.
    /// False on followers, and always when lease_ticks() is 0. The lease is counted in this
    /// node's ticks: a driver whose ticks may fall behind real time (a paused process,
    /// a busy thread) must also check real time since lease_sent_tick(), as
    /// raftkv::asio::driver does. See options::lease_margin_ticks.
    bool lease_valid() const noexcept;
    /// How many ticks a lease lasts from when its round was sent: election_ticks -
    /// lease_margin_ticks, or 0 when leases are off (see options::lease_margin_ticks).
    std::uint32_t lease_ticks() const noexcept;
    /// The tick (see ticks()) at which the round that holds the current lease was sent.
    /// Meaningful while lease_valid().
    std::uint64_t lease_sent_tick() const noexcept { return lease_sent_; }
    /// How many times tick() was called since construction.
    std::uint64_t ticks() const noexcept { return ticks_; }

    void on_apply(apply_handler h) { apply_handler_ = std::move(h); }
    void on_read(read_handler h) { read_handler_ = std::move(h); }
    void on_drop(drop_handler h) { drop_handler_ = std::move(h); }
    void on_leader_change(leader_handler h) { leader_handler_ = std::move(h); }
    void on_restore(restore_handler h) { restore_handler_ = std::move(h); }
    void on_forward(forward_handler h) { forward_handler_ = std::move(h); }
    void on_config_change(config_handler h) { config_handler_ = std::move(h); }

    node_id id() const noexcept { return opts_.id; }
    raftkv::role role() const noexcept { return role_; }
    term_t term() const noexcept { return term_; }
    node_id leader() const noexcept { return leader_; }
    index_t commit_index() const noexcept { return commit_; }
    index_t applied_index() const noexcept { return applied_; }
    index_t last_index() const noexcept { return store_.last_index(); }
    index_t first_index() const noexcept { return store_.first_index(); }
    /// The latest snapshot: taken, installed from a leader, or the state the node started
    /// from; never before the log's start. See node_status::snapshot_index.
    index_t snapshot_index() const noexcept { return std::max(snapshot_taken_, store_.first_index() - 1); }
    term_t snapshot_term() const { return store_.term_at(snapshot_index()); }
    /// The configuration in force: that of the last config entry in the log, or of the
    /// log's start. May not be committed yet.
    const membership& members() const noexcept { return configs_.back().members; }
    /// The index of the config entry members() comes from (the log's start when none).
    index_t members_index() const noexcept { return configs_.back().index; }
    /// On the leader, the voter (other than itself) best placed to take over: the one that
    /// matches the most of the log among those heard from in the current CheckQuorum
    /// period, else among all. no_node when this node does not lead or has no other voter.
    node_id successor() const noexcept;
    /// The match index the leader knows of `id`, or nullopt when this node does not lead
    /// or `id` is not a member it replicates to.
    std::optional<index_t> match_of(node_id id) const noexcept;
    /// On the leader, whether `id` answers it, as a membership change counts voters
    /// (options::strict_membership_changes): the leader itself, or a peer heard from within
    /// the last one to two election timeouts that acknowledged an entry of this leader.
    /// False when this node does not lead or `id` is not a member it replicates to.
    bool answers(node_id id) const noexcept;
    const options& config() const noexcept { return opts_; }
    /// See node_status::malformed_dropped.
    std::uint64_t malformed_dropped() const noexcept { return malformed_dropped_; }
    /// See node_status::restoring_snapshot.
    bool restoring_snapshot() const noexcept { return restore_.active; }
    node_status status() const;
    /// status() but for `members`, left empty: for a caller that keeps the configuration
    /// and copies it only when it changes (members_index says when).
    node_status status_except_members() const;
    /// The node's counters, and on the leader its followers' replication progress.
    node_metrics metrics() const;

private:
    struct applied_output {
        index_t index;
        term_t term;
        result_type result;
    };
    struct read_output {
        std::uint64_t id;
        std::error_code ec;
    };
    struct drop_output {
        index_t index;
        term_t term;
        std::error_code ec;
    };
    struct forward_output {
        std::uint64_t id;
        std::error_code ec;
        index_t index;
        term_t term;
    };
    struct config_output {
        index_t index;
    };
    using output =
        std::variant<applied_output, read_output, drop_output, snapshot_meta, forward_output, config_output>;

    /// A proposal of this node waiting for its outcome.
    struct tracked_proposal {
        index_t index;
        term_t term;
    };

    /// A configuration and the index it takes effect at.
    struct config_record {
        index_t index = 0;
        membership members;
    };

    /// A snapshot being received from the leader.
    struct restore_progress {
        bool active = false;
        node_id leader = no_node;
        term_t term = 0;
        std::uint64_t transfer = 0;
        std::uint64_t offset = 0;
    };

    // impl/node.hpp
    static void validate(const options& o);
    void check_storage() const;
    void deliver_outputs();
    void deliver(output& o);
    void fail_read(std::uint64_t id, std::error_code ec) { outputs_.push_back(read_output{id, ec}); }
    void drop_proposal(const drop_output& d)
    {
        ++metrics_.proposals_dropped;
        outputs_.push_back(d);
    }
    bool accept_term(message& m);
    void dispatch(message& m);
    void send(node_id to, message_body body) { send(to, std::move(body), term_); }
    void send(node_id to, message_body body, term_t term);
    detail::progress* progress_of(node_id id) noexcept;
    const detail::progress* progress_of(node_id id) const noexcept;

    // impl/election.hpp
    void become_follower(term_t term, node_id leader);
    /// A leader records why it steps down (node_status::last_step_down) before it does.
    void note_step_down(step_down_reason why, node_id from = no_node, term_t newer_term = 0);
    void become_pre_candidate();
    void become_candidate();
    void become_leader();
    void leave_leadership();
    void start_election(bool pre_vote, bool transfer);
    void handle_vote_request(const message& m, const vote_request& r);
    void handle_vote_response(const message& m, const vote_response& r);
    void handle_timeout_now();
    void reset_election_timer();
    void tick_election();
    void tick_leader();
    bool in_leader_lease() const noexcept;
    bool may_campaign() const noexcept;
    bool removed_pending() const noexcept;
    bool own_log_stalled();
    bool log_is_up_to_date(index_t last_index, term_t last_term) const;
    void set_hard_state(term_t term, node_id vote);

    // impl/replication.hpp
    void handle_append_request(const message& m, append_request& r);
    void handle_append_response(const message& m, const append_response& r);
    void handle_heartbeat(const message& m, const heartbeat& h);
    void handle_heartbeat_response(const message& m, const heartbeat_response& r);
    void send_append(detail::progress& p, bool allow_empty);
    bool send_one_append(detail::progress& p, bool allow_empty);
    void broadcast_append(bool allow_empty);
    void broadcast_heartbeat();
    void maybe_commit();
    void acknowledge(index_t match);
    void flush_pending_ack();
    void apply_committed();
    append_response reject_hint(index_t prev_index) const;
    index_t next_after_rejection(index_t match, const append_response& r) const;
    index_t last_index_with_term_at_most(term_t t, index_t from) const;
    void maybe_send_timeout_now(detail::progress& p);
    void to_probe(detail::progress& p);
    void check_stalled(detail::progress& p);
    void resolve_proposals(std::span<const log_entry> applied);
    void forget_proposals_from(index_t from);
    void release_uncommitted();

    // impl/snapshot.hpp
    void maybe_snapshot();
    void maybe_compact();
    bool counts_applied_bytes() const;
    std::uint32_t hold_silence_ticks() const;
    void start_snapshot_transfer(detail::progress& p);
    void send_snapshot_chunks(detail::progress& p);
    void handle_install_snapshot(const message& m, const install_snapshot_request& r);
    void handle_install_snapshot_response(const message& m, const install_snapshot_response& r);
    bool accept_snapshot_chunk(const message& m, const install_snapshot_request& r);
    bool finish_install(const snapshot_meta& meta);
    void fail_restore();
    void abort_restore();
    detail::snapshot_sender<typename StateMachine::snapshot_reader>& sender_of(const detail::progress& p);

    // impl/membership.hpp
    void load_configs();
    membership decode_config(const log_entry& e) const;
    static bool holds_valid_config(const log_entry& e);
    const membership& config_at(index_t i) const;
    void note_appended(std::span<const log_entry> es);
    void note_installed(const snapshot_meta& meta);
    void compact_log(index_t to);
    void config_changed();
    void tell_removed(const message& m);
    propose_result append_config(const membership& next);
    bool answering_majority(const std::vector<node_id>& voters) const noexcept;
    void complete_config_change();
    index_t quorum_match();

    // impl/lease.hpp
    void begin_round();
    void update_lease();
    void forget_old_rounds();
    void send_timeout_now(node_id to);

    // impl/forward.hpp
    void handle_forward_request(const message& m, forward_request& r);
    void handle_forward_response(const message& m, const forward_response& r);

    // impl/read_index.hpp
    void queue_read(detail::pending_read r);
    void handle_read_index_request(const message& m, const read_index_request& r);
    void start_read_round();
    void unblock_reads();
    void advance_reads();
    bool answered_at_once(const detail::pending_read& r);
    std::uint64_t confirmed_read_seq();
    std::uint64_t read_rounds_in_flight();
    void fail_leader_reads();
    void read_through_leader(std::uint64_t read_id);
    void send_read_request();
    void handle_read_index_response(const message& m, const read_index_response& r);
    void serve_follower_reads();
    void tick_read_request();
    void abandon_follower_reads();
    void tick_forwards();

    options opts_;
    /// The configuration at the log's start, then one per config entry in the log, in
    /// index order; the last is in force. Never empty.
    std::vector<config_record> configs_;
    Transport& transport_;
    LogStore& store_;
    StateMachine& machine_;

    raftkv::role role_ = role::follower;
    term_t term_ = 0;
    node_id vote_ = no_node;
    node_id leader_ = no_node;
    index_t commit_ = 0;
    index_t applied_ = 0;
    /// The first index of this leader's term (its noop); reads wait until it commits.
    index_t term_start_ = 0;

    std::uint32_t election_elapsed_ = 0;
    std::uint32_t heartbeat_elapsed_ = 0;
    std::uint32_t randomized_timeout_ = 0;
    detail::random rng_;
    /// A leader's durable index at its last tick, and ticks since it last advanced while
    /// the log held entries that were not durable.
    index_t durable_seen_ = 0;
    std::uint32_t stall_elapsed_ = 0;

    std::vector<node_id> votes_granted_;
    std::vector<detail::progress> peers_;

    std::vector<node_id> votes_rejected_;
    /// Scratch space for quorum computations, kept to avoid allocating per message.
    std::vector<std::uint64_t> quorum_scratch_;

    /// A follower's acknowledgement waiting for the log store to make entries durable:
    /// entries up to this index match the leader of `pending_ack_term_`.
    term_t pending_ack_term_ = 0;
    index_t pending_ack_index_ = 0;

    /// Leadership transfer in progress: its target, and ticks since it began.
    node_id transfer_target_ = no_node;
    std::uint32_t transfer_elapsed_ = 0;

    detail::read_queue reads_;
    /// The last heartbeat round this leader started (every heartbeat starts one; a
    /// ReadIndex read waits for a round started after it arrived).
    std::uint64_t read_seq_ = 0;
    /// read_seq_ when this node last became leader: rounds up to it belong to earlier terms.
    std::uint64_t read_seq_at_term_start_ = 0;
    /// Calls to tick(): the logical time leases are measured in.
    std::uint64_t ticks_ = 0;
    /// The first round sent at each tick, with that tick, oldest first, for rounds not yet
    /// confirmed and younger than a lease (impl/lease.hpp).
    std::deque<std::pair<std::uint64_t, std::uint64_t>> round_ticks_;
    /// The send tick of the latest round a quorum confirmed in this term, if any.
    std::uint64_t lease_sent_ = 0;
    bool lease_held_ = false;
    /// This leader sent timeout_now in its term: no lease until it leads again.
    bool lease_revoked_ = false;
    /// The node started with a saved term, so it may have acknowledged a lease round.
    bool restarted_ = false;
    /// Reads served through the leader while this node follows it, and the number of the
    /// last read_index_request sent (the first is drawn from the seed).
    detail::follower_read_queue follower_reads_;
    std::uint64_t last_read_request_ = 0;
    /// Forwarded proposals: this instance's nonce and last sequence number sent, and, for
    /// the last term this instance led (`forward_seen_term_`), the highest sequence number
    /// received from each (sender, nonce), so a duplicated request is proposed once and a
    /// late one is known not to have been. Leadership never survives a restart or a term,
    /// so the table needs to cover one term of one instance. `start_term_` is the term this
    /// instance started in: it may have led that one, or an earlier one, before.
    std::uint64_t forward_nonce_ = 0;
    std::uint64_t forward_seq_ = 0;
    struct sent_forward {
        std::uint64_t id;
        std::uint64_t sent_tick;
        node_id to; ///< the leader it went to: only that node's answer counts
    };
    /// Forwards not answered yet, oldest first. They outlive changes of term and leader:
    /// the node they went to answers them all the same (or they time out).
    std::deque<sent_forward> unanswered_forwards_;
    term_t forward_seen_term_ = 0;
    term_t start_term_ = 0;
    std::map<std::pair<node_id, std::uint64_t>, std::uint64_t> forward_seen_;

    /// The state machine lost its state, or a snapshot install was cut short: it is behind
    /// the start of the log and cannot apply until a snapshot restores it.
    bool behind_log_ = false;
    /// The applied index at the last take_snapshot(), and payload bytes applied since.
    index_t snapshot_taken_ = 0;
    std::uint64_t bytes_since_snapshot_ = 0;
    /// Payload bytes applied up to each apply batch (kept when snapshot_catchup_bytes
    /// bounds the log), and their count at the last take_snapshot().
    detail::applied_bytes applied_bytes_;
    std::uint64_t snapshot_taken_bytes_ = 0;
    /// A snapshot was taken whose log has not been dropped yet.
    bool compact_pending_ = false;
    /// One sender per entry of peers_, at the same position.
    std::vector<detail::snapshot_sender<typename StateMachine::snapshot_reader>> senders_;
    std::uint64_t next_transfer_ = 0;
    restore_progress restore_;
    std::uint64_t malformed_dropped_ = 0; // see node_status::malformed_dropped
    /// Counters only; metrics() adds the peers.
    node_metrics metrics_;
    raftkv::step_down last_step_down_;

    /// This leader's proposals not yet committed: (last index, payload bytes) per append.
    std::vector<std::pair<index_t, std::size_t>> uncommitted_;
    std::size_t uncommitted_bytes_ = 0;
    /// Ordered by index; an index may appear twice (a stale proposal and a new one).
    std::deque<tracked_proposal> proposals_;

    std::vector<log_entry> proposal_scratch_;
    std::vector<log_entry> apply_batch_;
    std::vector<result_type> apply_results_;

    std::vector<output> outputs_;
    std::vector<output> delivering_outputs_;
    bool delivering_ = false;
    raftkv::role reported_role_ = role::follower;
    term_t reported_term_ = 0;
    node_id reported_leader_ = no_node;

    apply_handler apply_handler_;
    read_handler read_handler_;
    forward_handler forward_handler_;
    drop_handler drop_handler_;
    leader_handler leader_handler_;
    restore_handler restore_handler_;
    config_handler config_handler_;
};

} // namespace raftkv

#include <raftkv/impl/node.hpp>

#endif
