#ifndef RAFTKV_ASIO_DRIVER_HPP
#define RAFTKV_ASIO_DRIVER_HPP

#include <raftkv/concepts.hpp>
#include <raftkv/error.hpp>
#include <raftkv/node.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace raftkv::asio {

/// How async_read serves a read.
enum class read_mode : std::uint8_t {
    /// ReadIndex (basic_node::read_index): a heartbeat round, on the leader or through it.
    linearizable,
    /// On a leader whose lease holds (basic_node::lease_valid(), and real time since the
    /// lease's round was sent under lease_ticks() tick intervals), at once from its state
    /// machine; otherwise, and on followers, as `linearizable`.
    lease,
};

/// How a read completed by async_read(read_mode, token) was served.
struct read_info {
    /// The state machine's applied index when the read was allowed to proceed: the state
    /// read afterwards reflects at least every entry up to it.
    index_t applied_index = 0;
    /// Served under the leader's lease, without a ReadIndex round.
    bool lease = false;
};

/// Tuning of a driver. Each field has its default.
struct driver_options {
    /// How often the node's logical clock ticks. Election and heartbeat timeouts are
    /// counted in ticks (raftkv::options).
    /// Default: 10 ms.
    std::chrono::milliseconds tick_interval{10};

    /// A proposal not applied within this time completes with errc::timeout. It may
    /// still be applied later: its outcome is unknown.
    /// Default: 5 s.
    std::chrono::milliseconds proposal_timeout{5000};

    /// A read not confirmed within this time completes with errc::timeout.
    /// Default: 5 s.
    std::chrono::milliseconds read_timeout{5000};

    /// The most proposals appended to the log in one batch.
    /// Default: 1024.
    std::size_t max_batch = 1024;

    /// On a follower that knows its leader, send proposals to the leader over Raft
    /// (basic_node::forward) and complete them when this node applies them, rather than
    /// failing them with errc::not_leader.
    /// Default: true.
    bool forward_proposals = true;
};

/** Runs a basic_node on an Asio strand.

    The driver owns the node and serializes every call to it on one strand: it ticks the
    node from a steady_timer, feeds it the messages the transport delivers, and turns
    proposals and reads into asynchronous operations with completion tokens, so callbacks,
    `use_future` and `use_awaitable` all work. It holds no Raft logic.

    Proposals made while the strand is busy are appended to the log as one batch (one log
    store append, one fsync for a synced store); reads submitted meanwhile likewise start
    together, as one ReadIndex request.

    An operation completes on its handler's associated executor, queued there through the
    strand's inner executor rather than run inline, so what the handler does next never holds
    up the node; a handler with no executor of its own runs on the strand.

    @par Example
    @code
    using driver_type = raftkv::asio::driver<raftkv::asio::tcp_transport, Store, Machine>;
    auto strand = boost::asio::make_strand(io);
    std::unique_ptr<driver_type> driver; // made next: the transport hands it what arrives
    raftkv::asio::tcp_transport transport{strand, ...,
        [&driver](raftkv::message m) { driver->deliver(std::move(m)); }};
    driver = std::make_unique<driver_type>(strand, opts, transport, store, machine);
    driver->start();
    driver->async_propose(cmd, [](boost::system::error_code ec, auto result) { ... });
    @endcode

    @tparam Transport a `raftkv::transport` whose `send` may be called on the strand.
    @tparam LogStore a `raftkv::log_store`. One durable on append needs nothing more (the
    driver reports durability after each append); one that syncs in the background
    (raftkv::wal::log_store) must have `log_durable()` called whenever its durable index
    advances.
    @tparam StateMachine a `raftkv::state_machine`.

    @par Failures
    An exception out of the node comes from its log store or state machine (a failed write,
    a full disk) or from a check of its storage (errc::storage_inconsistent). By default it
    propagates out of the executor's `run()`. With a handler set by `on_failure`, the driver
    catches it instead, stops as by `stop()` but completing every operation with
    errc::node_failed, and hands the exception to the handler: the node may have been left
    halfway through an input, and its storage in an unknown state, so it must not be used
    again. To go on, the owner destroys the driver and its policies and builds them again
    from storage, as a restarted process would.

    @par Thread Safety
    `async_propose`, `async_read`, `async_metrics`, `deliver`, `post`, `fail`, `start`, `stop`
    and `status` may be called from any thread. The node itself must be touched only on the strand (see
    `post`).
*/
template <transport Transport, log_store LogStore, state_machine StateMachine>
class driver {
public:
    using executor_type = boost::asio::strand<boost::asio::any_io_executor>;
    using node_type = basic_node<Transport, LogStore, StateMachine>;
    using result_type = typename StateMachine::result_type;

    /// The policies must outlive the driver. The transport must run on `strand` too.
    driver(executor_type strand, options opts, Transport& transport, LogStore& store, StateMachine& machine,
           driver_options dopts = {})
        : strand_(std::move(strand)), dopts_(dopts), node_(std::move(opts), transport, store, machine),
          timer_(strand_), tick_times_(node_.config().election_ticks + 1, clock::now())
    {
        node_.on_apply([this](index_t i, term_t t, result_type& r) { on_applied(i, t, r); });
        node_.on_drop([this](index_t i, term_t t, std::error_code ec) { on_dropped(i, t, ec); });
        node_.on_read([this](std::uint64_t id, std::error_code ec) { on_read_done(id, ec); });
        node_.on_forward([this](std::uint64_t id, std::error_code ec, index_t index, term_t term) {
            on_forwarded(id, ec, index, term);
        });
        node_.on_restore([this](const snapshot_meta& meta) { on_restored(meta); });
        node_.on_config_change([this](index_t index, const membership& members) {
            ++config_version_;
            if (config_handler_)
                config_handler_(index, members);
        });
        publish_status();
    }

    driver(const driver&) = delete;
    driver& operator=(const driver&) = delete;

    executor_type get_executor() const noexcept { return strand_; }

    /// Starts ticking.
    void start()
    {
        boost::asio::dispatch(strand_, [this] {
            next_tick_ = std::chrono::steady_clock::now();
            schedule_tick();
        });
    }

    /// Stops ticking and completes every pending operation with errc::shutting_down.
    /// Operations started afterwards complete with errc::shutting_down. The driver may be
    /// destroyed once the strand has run the stop (e.g. after the io_context stopped).
    void stop()
    {
        boost::asio::dispatch(strand_, [this] {
            if (stopped_)
                return;
            stopped_ = true;
            timer_.cancel();
            fail_all(errc::shutting_down);
        });
    }

    /// Sets what is called, on the strand and once, when the node fails (see Failures
    /// above): the driver has stopped by then, and completes every pending operation with
    /// errc::node_failed once the handler returns. The handler may release the driver, but
    /// its destruction must wait for what is queued on the strand (post it there). Set it
    /// before start().
    void on_failure(std::function<void(std::exception_ptr)> handler)
    {
        failure_handler_ = std::move(handler);
    }

    /// Stops the node as if it had thrown `why` (see Failures above), for an owner that
    /// learns of a failure by another route: a log store whose background sync failed may
    /// report it only by its durable index no longer advancing. Nothing happens if the
    /// driver has stopped already.
    void fail(std::exception_ptr why)
    {
        boost::asio::dispatch(strand_, [this, why] {
            if (!stopped_)
                stop_failed(why);
        });
    }

    /// Hands a message from a peer to the node. Always queued on the strand, never run
    /// inline: a transport may deliver from within another node's send().
    void deliver(message m)
    {
        boost::asio::post(strand_, [this, m = std::move(m)]() mutable {
            if (stopped_)
                return;
            guarded([&] { node_.step(std::move(m)); });
            publish_status();
        });
    }

    /// Tells the node its log store's durable index may have advanced. Safe from any
    /// thread: a store that syncs in the background calls it from its sync thread. Calls
    /// made while one is queued are merged into it.
    void log_durable()
    {
        if (durable_queued_.exchange(true))
            return;
        boost::asio::post(strand_, [this] {
            durable_queued_ = false; // before reading the index: a later sync queues again
            if (stopped_)
                return;
            guarded([&] { node_.on_log_durable(); });
            publish_status();
        });
    }

    /// Proposes `command`. On a follower that knows its leader, the command goes to the
    /// leader over Raft and completes when this node applies it (driver_options::
    /// forward_proposals). Completes with `(boost::system::error_code, result_type)` — the
    /// error wraps a raftkv::errc, so it compares equal to one: an empty error and
    /// the state machine's result once applied; errc::not_leader (see status().leader),
    /// errc::overloaded (too much uncommitted: it never entered the log),
    /// errc::transfer_in_progress, errc::proposal_dropped (a new leader overwrote it: it
    /// never took effect), errc::leadership_lost, errc::timeout (both: outcome unknown) or
    /// errc::shutting_down.
    template <class Token>
    auto async_propose(std::string command, Token&& token)
    {
        return async_propose(std::move(command), clock::time_point::max(), std::forward<Token>(token));
    }

    /// As async_propose(command, token), but completes with errc::timeout at `deadline`
    /// if that comes before driver_options::proposal_timeout has passed: for a caller that
    /// proposes again after a failure and must answer within one deadline over all its tries.
    template <class Token>
    auto async_propose(std::string command, std::chrono::steady_clock::time_point deadline, Token&& token)
    {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, result_type)>(
            [this, deadline](auto handler, std::string cmd) {
                boost::asio::post(strand_,
                                  [this, deadline, h = std::move(handler), cmd = std::move(cmd)]() mutable {
                                      guarded([&] { enqueue(std::move(cmd), std::move(h), deadline); });
                                  });
            },
            token, std::move(command));
    }

    /// Waits until a linearizable read may be served from the state machine (ReadIndex).
    /// Completes with an empty error once the state machine reflects every write
    /// acknowledged before this call; the caller then reads it. Errors: errc::not_leader,
    /// errc::leadership_lost, errc::timeout, errc::shutting_down.
    template <class Token>
    auto async_read(Token&& token)
    {
        return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
            [this](auto handler) {
                auto ex = boost::asio::get_associated_executor(handler, strand_);
                read_handler h = boost::asio::bind_executor(
                    ex, [inner = std::move(handler)](boost::system::error_code ec, read_info) mutable {
                        std::move(inner)(ec);
                    });
                submit_read(read_mode::linearizable, std::move(h));
            },
            token);
    }

    /// As async_read(token), served as `mode` says; completes with
    /// `(boost::system::error_code, read_info)`. A lease read that the lease covers
    /// completes after one pass through the strand, without a heartbeat round; any other
    /// falls back to ReadIndex (read_info::lease false).
    template <class Token>
    auto async_read(read_mode mode, Token&& token)
    {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, read_info)>(
            [this, mode](auto handler) { submit_read(mode, read_handler(std::move(handler))); }, token);
    }

    /// Proposes a configuration change (basic_node::change_membership). Completes with
    /// `(boost::system::error_code, index_t)`: an empty error and the config entry's index
    /// once this node applied it (the change committed; a joint change's second step,
    /// which the leader proposes by itself, may still be on its way), or an error as for
    /// async_propose, plus errc::change_in_progress, errc::learner_behind and
    /// errc::invalid_argument at once. Never forwarded: call it on the leader.
    template <class Token>
    auto async_change_membership(std::vector<config_change> changes, Token&& token)
    {
        return async_change_membership(std::move(changes), clock::time_point::max(),
                                       std::forward<Token>(token));
    }

    /// As async_change_membership(changes, token), completing with errc::timeout at
    /// `deadline` if that comes first (see async_propose(command, deadline, token)).
    template <class Token>
    auto async_change_membership(std::vector<config_change> changes,
                                 std::chrono::steady_clock::time_point deadline, Token&& token)
    {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, index_t)>(
            [this, deadline](auto handler, std::vector<config_change> changes) {
                boost::asio::dispatch(strand_, [this, deadline, h = membership_handler(std::move(handler)),
                                                changes = std::move(changes)]() mutable {
                    guarded([&] { start_change(std::move(changes), std::move(h), deadline); });
                });
            },
            token, std::move(changes));
    }

    /// Sets what is called, on the strand, whenever the configuration in force changes
    /// (basic_node::on_config_change): once at the first input with the configuration the
    /// node starts with, then at each change. Set it before start().
    void on_config_change(std::function<void(index_t, const membership&)> handler)
    {
        config_handler_ = std::move(handler);
    }

    /// Runs `f(node)` on the strand, for operations the driver does not wrap (leadership
    /// transfer, campaigning). `f` runs even after the driver stopped or failed; then it
    /// must not change the node (a failed node's storage may be gone: see Failures).
    template <class F>
    void post(F f)
    {
        boost::asio::post(strand_, [this, f = std::move(f)]() mutable {
            guarded([&] { f(node_); });
            publish_status();
        });
    }

    /// Whether the node failed (see Failures). On the strand, in a function given to post().
    bool failed() const noexcept { return failure_ != nullptr; }

    /// status().applied_index, without copying the rest. Safe from any thread.
    index_t applied_index() const
    {
        std::lock_guard lock(status_mutex_);
        return status_.applied_index;
    }

    /// The node's state as of its last input. Safe from any thread.
    node_status status() const
    {
        std::lock_guard lock(status_mutex_);
        return status_;
    }

    /// Reads the node's counters and its followers' progress (basic_node::metrics()) on
    /// the strand, at the time of the call rather than at every input, so that keeping
    /// them costs the node's inputs nothing. Completes with `(node_metrics)`; runs after
    /// the driver stopped or failed too, with the counters as they were then.
    template <class Token>
    auto async_metrics(Token&& token)
    {
        return boost::asio::async_initiate<Token, void(node_metrics)>(
            [this](auto handler) {
                boost::asio::post(strand_, [this, h = std::move(handler)]() mutable {
                    complete(std::move(h), node_.metrics());
                });
            },
            token);
    }

private:
    using propose_handler = boost::asio::any_completion_handler<void(boost::system::error_code, result_type)>;
    using read_handler = boost::asio::any_completion_handler<void(boost::system::error_code, read_info)>;
    using membership_handler = boost::asio::any_completion_handler<void(boost::system::error_code, index_t)>;
    using clock = std::chrono::steady_clock;

    struct queued_proposal {
        std::string command;
        propose_handler handler;
        clock::time_point deadline;
    };
    struct proposal_waiter {
        clock::time_point deadline;
        propose_handler handler;
    };
    /// The reads of one ReadIndex request: every read that reached the strand in one pass.
    struct read_waiter {
        clock::time_point deadline;
        std::vector<read_handler> handlers;
    };
    struct submitted_read {
        read_mode mode;
        read_handler handler;
    };
    /// Proposals sent to the leader, waiting to learn where it appended them; in batch
    /// order. One that timed out meanwhile keeps its place with an empty handler.
    struct forward_waiter {
        std::vector<proposal_waiter> proposals;
    };

    static boost::system::error_code to_boost(std::error_code ec) { return ec; }

    // Whether `ex` is this driver's strand (also behind a type-erased executor).
    template <class Executor>
    bool on_strand(const Executor& ex) const
    {
        if constexpr (std::is_same_v<Executor, executor_type>)
            return ex == strand_;
        else if constexpr (requires { ex.template target<executor_type>(); }) {
            const executor_type* s = ex.template target<executor_type>();
            return s && *s == strand_;
        } else
            return false;
    }

    // Hands the result to the handler on its own executor. Queued, never run inline: a
    // handler on the io_context or on another strand (a coroutine serving a connection)
    // would otherwise resume on this thread while it holds the strand, and everything it
    // does until its next suspension (reading the state machine, writing a response) would
    // hold up the node. One without an executor of its own runs on the strand, at once.
    template <class Handler, class... Args>
    void complete(Handler handler, Args... args)
    {
        auto ex = boost::asio::get_associated_executor(handler, strand_);
        auto f = [h = std::move(handler), ... args = std::move(args)]() mutable {
            std::move(h)(std::move(args)...);
        };
        if (on_strand(ex)) {
            f();
            return;
        }
        // Queued on the io_context, and from there into the handler's executor (a type-erased
        // one may not be able to post itself). As a continuation: a thread running the
        // io_context keeps it for itself once the strand is released, rather than waking
        // another thread for it.
        boost::asio::prefer(
            boost::asio::require(strand_.get_inner_executor(), boost::asio::execution::blocking.never),
            boost::asio::execution::relationship.continuation)
            .execute([ex, f = std::move(f)]() mutable { boost::asio::dispatch(ex, std::move(f)); });
    }

    // The error operations get once the driver stopped.
    std::error_code stopped_error() const
    {
        return make_error_code(failure_ ? errc::node_failed : errc::shutting_down);
    }

    // Runs `f`, which calls into the node; with a failure handler, an exception out of it
    // fails the node instead of escaping (see Failures).
    template <class F>
    void guarded(F&& f)
    {
        try {
            f();
        } catch (...) {
            if (!failure_handler_)
                throw;
            stop_failed(std::current_exception());
        }
    }

    void stop_failed(std::exception_ptr why)
    {
        if (failure_)
            return;
        const bool was_stopped = stopped_;
        failure_ = why;
        stopped_ = true;
        timer_.cancel();
        // The owner learns why before the operations it serves learn that they failed.
        if (!was_stopped && failure_handler_)
            failure_handler_(why);
        fail_all(errc::node_failed);
    }

    void enqueue(std::string command, propose_handler handler, clock::time_point deadline)
    {
        if (stopped_) {
            complete(std::move(handler), to_boost(stopped_error()), result_type{});
            return;
        }
        deadline = std::min(deadline, clock::now() + dopts_.proposal_timeout);
        queue_.push_back({std::move(command), std::move(handler), deadline});
        if (!flush_scheduled_) {
            flush_scheduled_ = true;
            boost::asio::post(strand_, [this] { guarded([this] { flush(); }); });
        }
    }

    // Appends every queued proposal (up to max_batch per round) in one batch.
    void flush()
    {
        flush_scheduled_ = false;
        while (!queue_.empty() && !stopped_) {
            const std::size_t n = std::min(queue_.size(), dopts_.max_batch);
            batch_.clear();
            for (std::size_t k = 0; k < n; ++k)
                batch_.push_back(std::move(queue_[k].command));
            if (dopts_.forward_proposals && node_.role() != role::leader && node_.leader() != no_node) {
                forward(n);
                continue;
            }
            const propose_result r = node_.propose(std::span<std::string>(batch_));
            for (std::size_t k = 0; k < n; ++k) {
                auto& q = queue_.front();
                if (r.ec)
                    complete(std::move(q.handler), to_boost(r.ec), result_type{});
                else
                    waiters_.emplace(std::pair{r.index + k, r.term},
                                     proposal_waiter{q.deadline, std::move(q.handler)});
                queue_.pop_front();
            }
            if (!r.ec)
                node_.on_log_durable();
        }
        publish_status();
    }

    // Sends the first n queued proposals (in batch_) to the leader as one batch.
    void forward(std::size_t n)
    {
        const std::uint64_t id = ++last_forward_id_;
        forward_waiter w;
        w.proposals.reserve(n);
        for (std::size_t k = 0; k < n; ++k) {
            w.proposals.push_back({queue_.front().deadline, std::move(queue_.front().handler)});
            queue_.pop_front();
        }
        if (const std::error_code ec = node_.forward(id, std::span<std::string>(batch_))) {
            for (auto& p : w.proposals)
                complete(std::move(p.handler), to_boost(ec), result_type{});
            return;
        }
        forwards_.emplace(id, std::move(w));
    }

    // The leader appended forwarded batch `id` at index, index + 1, ... in `term` (or
    // refused it): each proposal now waits for this node to apply its entry.
    void on_forwarded(std::uint64_t id, std::error_code ec, index_t index, term_t term)
    {
        auto it = forwards_.find(id);
        if (it == forwards_.end())
            return;
        forward_waiter w = std::move(it->second);
        forwards_.erase(it);
        for (std::size_t k = 0; k < w.proposals.size(); ++k) {
            proposal_waiter& p = w.proposals[k];
            if (!p.handler) // timed out already
                continue;
            if (ec)
                complete(std::move(p.handler), to_boost(ec), result_type{});
            else if (index + k <= node_.applied_index()) // the answer came after the apply
                complete_from_record(std::move(p), index + k, term);
            else
                waiters_.emplace(std::pair{index + k, term}, std::move(p));
        }
    }

    // A forwarded proposal at (index, term) whose index this node applied before it learned
    // where the leader put it: the outcome the record of recent applies gives (its result if
    // the entry applied there had its term; dropped if another one did), or unknown once
    // the record no longer reaches back that far.
    void complete_from_record(proposal_waiter p, index_t index, term_t term)
    {
        const auto it = std::lower_bound(recent_applies_.begin(), recent_applies_.end(), index,
                                         [](const recent_apply& r, index_t i) { return r.index < i; });
        if (it == recent_applies_.end() || it->index != index)
            complete(std::move(p.handler), to_boost(errc::leadership_lost), result_type{});
        else if (it->term != term)
            complete(std::move(p.handler), to_boost(errc::proposal_dropped), result_type{});
        else if constexpr (std::copy_constructible<result_type>)
            complete(std::move(p.handler), boost::system::error_code{}, result_type(it->result));
    }

    // The node reports each of its own proposals once, by (index, term): applied, or
    // dropped. A forwarded proposal whose index was applied with another term was
    // overwritten by another leader: dropped.
    void on_applied(index_t index, term_t term, result_type& result)
    {
        // Kept while forwards await their answers (an answer may come after the apply, when
        // the entry reached this node through a newer leader first); none otherwise, nor
        // for results that cannot be copied.
        if constexpr (std::copy_constructible<result_type>) {
            if (forwards_.empty()) {
                recent_applies_.clear();
            } else {
                recent_applies_.push_back(recent_apply{index, term, result});
                if (recent_applies_.size() > recent_applies_kept)
                    recent_applies_.pop_front();
            }
        }
        for (auto it = waiters_.lower_bound({index, 0}); it != waiters_.end() && it->first.first == index;) {
            proposal_waiter w = std::move(it->second);
            const bool applied = it->first.second == term;
            it = waiters_.erase(it);
            if (applied)
                complete(std::move(w.handler), boost::system::error_code{}, std::move(result));
            else
                complete(std::move(w.handler), to_boost(errc::proposal_dropped), result_type{});
        }
    }

    // A snapshot replaced the state: proposals at or before it were never applied here one
    // by one, so their outcome is unknown.
    void on_restored(const snapshot_meta& meta)
    {
        recent_applies_.clear();
        while (!waiters_.empty() && waiters_.begin()->first.first <= meta.index) {
            complete(std::move(waiters_.begin()->second.handler), to_boost(errc::leadership_lost),
                     result_type{});
            waiters_.erase(waiters_.begin());
        }
    }

    void on_dropped(index_t index, term_t term, std::error_code ec)
    {
        auto it = waiters_.find({index, term});
        if (it == waiters_.end())
            return;
        proposal_waiter w = std::move(it->second);
        waiters_.erase(it);
        complete(std::move(w.handler), to_boost(ec), result_type{});
    }

    void start_change(std::vector<config_change> changes, membership_handler handler,
                      clock::time_point deadline)
    {
        if (stopped_) {
            complete(std::move(handler), to_boost(stopped_error()), index_t{0});
            return;
        }
        const propose_result r = node_.change_membership(changes);
        if (r.ec) {
            complete(std::move(handler), to_boost(r.ec), index_t{0});
            publish_status();
            return;
        }
        // Waits like a proposal; the state machine's result for a config entry means nothing.
        waiters_.emplace(
            std::pair{r.index, r.term},
            proposal_waiter{std::min(deadline, clock::now() + dopts_.proposal_timeout),
                            propose_handler([this, h = std::move(handler), index = r.index](
                                                boost::system::error_code ec, result_type) mutable {
                                complete(std::move(h), ec, ec ? index_t{0} : index);
                            })});
        publish_status();
    }

    // Queues a read for the strand. Reads submitted while a pass is queued join it, and
    // are confirmed together: one pass through the strand and one ReadIndex request for
    // all of them. Each read still starts its ReadIndex after it was submitted.
    void submit_read(read_mode mode, read_handler handler)
    {
        {
            std::lock_guard lock(submitted_mutex_);
            submitted_.push_back({mode, std::move(handler)});
            if (reads_queued_)
                return;
            reads_queued_ = true;
        }
        boost::asio::post(strand_, [this] { guarded([this] { start_reads(); }); });
    }

    void start_reads()
    {
        {
            std::lock_guard lock(submitted_mutex_);
            reads_queued_ = false;
            starting_.swap(submitted_);
        }
        // Lease reads the lease covers complete at once; the others share one ReadIndex.
        const bool lease_now =
            !stopped_ && node_.applied_index() >= node_.commit_index() && lease_holds(clock::now());
        std::vector<read_handler> index_reads;
        index_reads.reserve(starting_.size());
        for (auto& r : starting_) {
            if (stopped_)
                complete(std::move(r.handler), to_boost(stopped_error()), read_info{});
            else if (lease_now && r.mode == read_mode::lease)
                complete(std::move(r.handler), boost::system::error_code{},
                         read_info{node_.applied_index(), true});
            else
                index_reads.push_back(std::move(r.handler));
        }
        starting_.clear();
        if (index_reads.empty())
            return;
        const std::uint64_t id = ++last_read_id_;
        reads_.emplace(id, read_waiter{clock::now() + dopts_.read_timeout, std::move(index_reads)});
        // Registered first: a single-node leader may confirm the read inside read_index().
        if (std::error_code ec = node_.read_index(id))
            on_read_done(id, ec);
        publish_status();
    }

    void on_read_done(std::uint64_t id, std::error_code ec)
    {
        auto it = reads_.find(id);
        if (it == reads_.end())
            return;
        read_waiter w = std::move(it->second);
        reads_.erase(it);
        for (auto& h : w.handlers)
            complete(std::move(h), to_boost(ec), read_info{node_.applied_index(), false});
    }

    // The node's lease, checked against real time too: its ticks count only the ticks that
    // happened, and a paused or busy process ticks late. The lease's round was sent after
    // the tick it names began, so it ends no later than that tick's time plus lease_ticks()
    // intervals as measured here (ticks are never less than an interval apart).
    bool lease_holds(clock::time_point now) const
    {
        if (!node_.lease_valid())
            return false;
        const std::uint64_t sent = node_.lease_sent_tick();
        if (node_.ticks() - sent >= tick_times_.size())
            return false;
        return now < tick_times_[sent % tick_times_.size()] + node_.lease_ticks() * dopts_.tick_interval;
    }

    void schedule_tick()
    {
        if (stopped_)
            return;
        next_tick_ += dopts_.tick_interval;
        timer_.expires_at(next_tick_);
        timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || stopped_)
                return;
            // The next tick comes a whole interval after this one, never sooner, even after
            // a stall: followers' election timers and leases count on ticks being no
            // shorter than the interval.
            next_tick_ = clock::now();
            tick_times_[(node_.ticks() + 1) % tick_times_.size()] = next_tick_;
            guarded([&] { node_.tick(); });
            if (stopped_)
                return;
            expire(clock::now());
            publish_status();
            schedule_tick();
        });
    }

    // Reads are kept in id order, which is also deadline order. Proposals are few enough
    // to scan (bounded by max_uncommitted_bytes), and so are forwarded ones (each batch is
    // answered within a round trip, or abandoned within two election timeouts); theirs
    // are the callers' deadlines, in no order.
    void expire(clock::time_point now)
    {
        for (auto it = waiters_.begin(); it != waiters_.end();) {
            if (it->second.deadline > now) {
                ++it;
                continue;
            }
            complete(std::move(it->second.handler), to_boost(errc::timeout), result_type{});
            it = waiters_.erase(it);
        }
        while (!reads_.empty() && reads_.begin()->second.deadline <= now) {
            for (auto& h : reads_.begin()->second.handlers)
                complete(std::move(h), to_boost(errc::timeout), read_info{});
            reads_.erase(reads_.begin());
        }
        for (auto it = forwards_.begin(); it != forwards_.end();) {
            bool waiting = false;
            for (proposal_waiter& p : it->second.proposals) {
                if (p.handler && p.deadline <= now)
                    complete(std::move(p.handler), to_boost(errc::timeout), result_type{});
                waiting = waiting || p.handler;
            }
            it = waiting ? std::next(it) : forwards_.erase(it);
        }
    }

    void fail_all(std::error_code std_ec)
    {
        const boost::system::error_code ec = to_boost(std_ec);
        for (auto& q : queue_)
            complete(std::move(q.handler), ec, result_type{});
        queue_.clear();
        for (auto& [index, w] : waiters_)
            complete(std::move(w.handler), ec, result_type{});
        waiters_.clear();
        for (auto& [id, r] : reads_)
            for (auto& h : r.handlers)
                complete(std::move(h), ec, read_info{});
        reads_.clear();
        for (auto& [id, f] : forwards_)
            for (auto& p : f.proposals)
                if (p.handler)
                    complete(std::move(p.handler), ec, result_type{});
        forwards_.clear();
    }

    // Runs after every input: copies the scalars, and the members only when they change.
    // Every field but the members comes from the node whole, so none can be left out.
    void publish_status()
    {
        std::lock_guard lock(status_mutex_);
        membership members = std::move(status_.members);
        const index_t members_index = status_.members_index;
        status_ = node_.status_except_members();
        if (status_config_version_ != config_version_ || status_.members_index != members_index) {
            status_config_version_ = config_version_;
            members = node_.members();
        }
        status_.members = std::move(members);
    }

    executor_type strand_;
    driver_options dopts_;
    node_type node_;
    boost::asio::steady_timer timer_;
    clock::time_point next_tick_{};
    /// When each of the last election_ticks + 1 ticks began, by tick number modulo the
    /// size (tick 0: construction), for lease_holds().
    std::vector<clock::time_point> tick_times_;
    bool stopped_ = false;
    bool flush_scheduled_ = false;
    std::atomic<bool> durable_queued_{false};
    /// What the node threw, once it failed.
    std::exception_ptr failure_;
    std::function<void(std::exception_ptr)> failure_handler_;

    std::deque<queued_proposal> queue_;
    std::vector<std::string> batch_;
    /// Proposals in the log, by (index, term): a stale one and a new one may share an index.
    std::map<std::pair<index_t, term_t>, proposal_waiter> waiters_;
    std::map<std::uint64_t, read_waiter> reads_;
    /// Reads submitted from any thread, waiting for the strand (submit_read).
    std::mutex submitted_mutex_;
    std::vector<submitted_read> submitted_;
    bool reads_queued_ = false;
    /// The reads being started on the strand; kept to reuse its storage.
    std::vector<submitted_read> starting_;
    std::uint64_t last_read_id_ = 0;
    /// Forwarded batches by id.
    std::map<std::uint64_t, forward_waiter> forwards_;
    std::uint64_t last_forward_id_ = 0;
    /// The last entries applied while forwards_ was not empty, in index order, with their
    /// results: what a forward answered after its entry was applied completes with.
    struct recent_apply {
        index_t index;
        term_t term;
        result_type result;
    };
    static constexpr std::size_t recent_applies_kept = 4096;
    std::deque<recent_apply> recent_applies_;

    std::function<void(index_t, const membership&)> config_handler_;
    /// Counts the node's configuration changes, so publish_status() copies the members
    /// only when they changed.
    std::uint64_t config_version_ = 0;

    mutable std::mutex status_mutex_;
    node_status status_;
    std::uint64_t status_config_version_ = ~std::uint64_t{0};
};

} // namespace raftkv::asio

#endif
