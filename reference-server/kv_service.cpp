#include "kv_service.hpp"

#include "health.hpp"
#include "join.hpp"
#include "log.hpp"
#include "member_info.hpp"
#include "peer_incarnations.hpp"
#include "tls.hpp"
#include "watch.hpp"

#include <raftkv/asio/detail/greeting.hpp>
#include <raftkv/asio/driver.hpp>
#include <raftkv/asio/tcp_transport.hpp>
#include <raftkv/error.hpp>
#include <raftkv/kv_command.hpp>
#include <raftkv/leveldb/kv_state_machine.hpp>
#include <raftkv/recovery.hpp>
#include <raftkv/wal/log_store.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace raftkv::server {

using clock = std::chrono::steady_clock;

namespace {

using driver_type = raftkv::asio::driver<raftkv::asio::tcp_transport, raftkv::wal::log_store,
                                         raftkv::leveldb::kv_state_machine>;
using boost::asio::ip::tcp;

/// The meta record holding the HTTP address member `id` published itself, while its info's
/// tag (member_info::added) was `added`: a member removed and added back under its id has
/// another tag, so what the earlier one published is not taken for its address. Tag 0 (the
/// bootstrap members) has the name of releases without tags.
std::string http_meta_name(node_id id, std::uint64_t added)
{
    std::string name = "node." + std::to_string(id) + ".http";
    if (added != 0)
        name.append(".").append(raftkv::asio::detail::cluster_id_name(added));
    return name;
}

/// Whether a storage failure's message says its data fails its checks (LevelDB's
/// "Corruption"): damage that no re-opening mends, unlike a full disk or an I/O error.
bool fails_its_checks(const std::string& why)
{
    return why.find("Corruption: ") != std::string::npos;
}

/// A member's tag (member_info::added) in `m`: 0 if it has none or is not a member.
std::uint64_t member_tag(const membership& m, node_id id)
{
    const auto info = m.info.find(id);
    return info == m.info.end() ? 0 : decode_member_info(info->second).added;
}

/// The log's directory. Refuses a data directory whose log an earlier release kept in
/// LevelDB (data_dir/log): this one would not see it, and would start with an empty log.
std::filesystem::path log_directory(const std::filesystem::path& data_dir)
{
    if (std::filesystem::exists(data_dir / "log"))
        throw std::runtime_error(data_dir.string() + " holds a log in an earlier format (" +
                                 (data_dir / "log").string() + "); this release keeps its log in " +
                                 (data_dir / "wal").string() + ": start with an empty data directory");
    return data_dir / "wal";
}

/// The state machine does not sync its applies: the log is the durable record, and its
/// background checkpoints (take_snapshot) bound what a restart re-applies.
/// Each apply batch and restore is fed to `journal`, for watches. A snapshot from the leader
/// that does not fit beside the current state is given up before the disk is full, leaving
/// more than the free space a failed node waits for: freeing space then brings the node
/// back, where a full disk would leave LevelDB unable to open.
raftkv::leveldb::kv_state_machine_options machine_options(change_journal& journal)
{
    raftkv::leveldb::kv_state_machine_options o;
    o.sync = false;
    o.restore_min_free_bytes = storage_recovery_free_bytes + (std::uint64_t{16} << 20);
    o.on_applied = [&journal](std::span<const log_entry> batch, std::span<const kv_result> results) {
        journal.applied(batch, results);
    };
    o.on_restored = [&journal](index_t index) {
        journal.restored(index);
        log(log_level::info,
            "installed a snapshot from the leader: the state as of index " + std::to_string(index));
    };
    return o;
}

// How often the state's tables are measured against --quota-bytes, and how often at most a
// node over the quota compacts them.
constexpr std::chrono::seconds state_measure_interval{1};
constexpr std::chrono::seconds state_compaction_interval{10};

// The most bytes of log entries read at once while the journal is rebuilt at start-up.
constexpr std::size_t journal_recovery_chunk_bytes = 4 << 20;

// How long a write or a membership change refused during a leadership transfer waits
// before it tries again.
constexpr std::chrono::milliseconds transfer_retry_pause{5};

// The free space a failed node waits for before it opens its storage again: room for the
// next log segment, which is reserved whole, and for the state machine's next files.
constexpr std::uint64_t recovery_free_bytes = storage_recovery_free_bytes;
static_assert(recovery_free_bytes >= raftkv::wal::log_store_options{}.segment_bytes + (16u << 20),
              "storage_recovery_free_bytes leaves no room for a log segment and the state machine");

// What the probe writes and syncs in the data directory.
constexpr std::size_t probe_bytes = 64 * 1024;

/// The text of an exception out of the node or its storage.
std::string describe(std::exception_ptr e)
{
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "an unknown exception";
    }
}

/// Whether `e` is raftkv's own verdict on the storage (errc::storage_inconsistent, ...),
/// which is a safety problem rather than a failure of the disk.
bool is_raftkv_error(std::exception_ptr e)
{
    try {
        std::rethrow_exception(e);
    } catch (const std::system_error& x) {
        return x.code().category() == raftkv::raftkv_category();
    } catch (...) {
        return false;
    }
}

/// Empty when the file system holding `dir` has recovery_free_bytes free and a small
/// file written there can be synced and removed; otherwise what is wrong.
std::string probe_directory(const std::filesystem::path& dir)
{
    struct statvfs fs {};
    if (::statvfs(dir.c_str(), &fs) != 0)
        return "cannot stat " + dir.string() + ": " + std::strerror(errno);
    const std::uint64_t free = std::uint64_t{fs.f_bavail} * fs.f_frsize;
    if (free < recovery_free_bytes)
        return std::to_string(free >> 20) + " MiB free on " + dir.string() + ", waiting for " +
               std::to_string(recovery_free_bytes >> 20) + " MiB";
    const std::filesystem::path path = dir / ".storage-probe";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return "cannot create " + path.string() + ": " + std::strerror(errno);
    const std::string block(probe_bytes, 'p');
    std::string problem;
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size()))
        problem = "cannot write " + path.string() + ": " + std::strerror(errno);
    else if (::fdatasync(fd) != 0)
        problem = "cannot sync " + path.string() + ": " + std::strerror(errno);
    ::close(fd);
    ::unlink(path.c_str());
    return problem;
}

/// probe_directory() for the data directory and the log's and the state's directories,
/// which may be mounted elsewhere.
std::string probe_storage(const std::filesystem::path& data_dir)
{
    for (const std::filesystem::path& dir : {data_dir, data_dir / "wal", data_dir / "state"}) {
        std::error_code ec;
        if (dir != data_dir && !std::filesystem::is_directory(dir, ec))
            continue; // opening the stores creates it, or says why not
        if (std::string problem = probe_directory(dir); !problem.empty())
            return problem;
    }
    return {};
}

/// Flushes every file under `dir` and drops it from the page cache, so that opening the
/// stores reads what is on the disk: after a failed write-back the kernel may keep pages,
/// marked clean, whose contents never reached the disk (a later fsync then succeeds
/// without writing them). Empty on success; otherwise what failed.
std::string flush_and_drop_cache(const std::filesystem::path& dir)
{
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        if (!it->is_regular_file(ec))
            continue;
        const int fd = ::open(it->path().c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; // removed meanwhile, or unreadable: opening the store will say
        const bool synced = ::fdatasync(fd) == 0;
        const int error = errno;
        if (synced)
            ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        ::close(fd);
        if (!synced)
            return "cannot sync " + it->path().string() + ": " + std::strerror(error);
    }
    if (ec)
        return "cannot list " + dir.string() + ": " + ec.message();
    return {};
}

/// Runs `attempt` (a function of the deadline returning an awaitable of a result with an
/// `ec`) again, after a short pause, while it fails with errc::transfer_in_progress, until
/// `limit` has passed. Such a failure appended nothing, so trying again is safe; a
/// transfer ends within an election timeout, either way. Every try ends by the deadline.
template <class Result, class Attempt>
boost::asio::awaitable<Result> retry_while_transferring(Attempt attempt, std::chrono::milliseconds limit)
{
    const auto deadline = clock::now() + limit;
    boost::asio::steady_timer pause(co_await boost::asio::this_coro::executor);
    for (;;) {
        Result r = co_await attempt(deadline);
        if (r.ec != raftkv::errc::transfer_in_progress || clock::now() + transfer_retry_pause >= deadline)
            co_return r;
        pause.expires_after(transfer_retry_pause);
        co_await pause.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
}

/// Runs `f(node)` on the driver's strand and resumes the awaiting coroutine, on its own
/// executor, with what it returned; with `if_failed` instead if the node failed.
template <class Result, class F>
boost::asio::awaitable<Result> on_node(driver_type& driver, F f, Result if_failed)
{
    co_return co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(Result)>(
        [&driver, &if_failed](auto handler, F f) {
            driver.post([&driver, h = std::move(handler), f = std::move(f),
                         if_failed = std::move(if_failed)](driver_type::node_type& node) mutable {
                Result r = driver.failed() ? std::move(if_failed) : f(node);
                const auto ex = boost::asio::get_associated_executor(h);
                boost::asio::post(
                    ex, [h = std::move(h), r = std::move(r)]() mutable { std::move(h)(std::move(r)); });
            });
        },
        boost::asio::use_awaitable, std::move(f));
}

/// Every member of `m` (voters, outgoing voters, learners), in id order.
/// The bootstrap configuration: every --peers entry a voter, its info holding its Raft
/// address. Every node started with the same --peers builds the same bytes.
membership bootstrap_members(const std::map<node_id, host_port>& peers)
{
    membership m;
    for (const auto& [id, address] : peers) {
        m.voters.push_back(id);
        m.info.emplace(id, encode_member_info(address));
    }
    return m;
}

std::uint64_t random_seed()
{
    std::random_device rd;
    return (std::uint64_t{rd()} << 32) ^ rd();
}

} // namespace

/// Where this node listens for Raft and where it dials each peer, resolved.
struct raft_endpoints {
    tcp::endpoint listen_on;
    std::map<node_id, tcp::endpoint> peers;
};

namespace {

raftkv::options node_options(const server_config& c)
{
    raftkv::options o;
    o.id = c.id;
    // A node that joined learns the configuration from the cluster; the others bootstrap
    // with --peers (used only while the log store holds no configuration yet).
    if (!c.joined)
        o.members = bootstrap_members(c.peers);
    o.election_ticks = c.election_ticks;
    o.heartbeat_ticks = c.heartbeat_ticks;
    o.snapshot_entries = c.snapshot_entries;
    if (c.snapshot_entries == 0)
        o.snapshot_bytes = 0; // 0 disables snapshots, not only the count trigger
    o.snapshot_catchup_entries = c.snapshot_catchup_entries;
    o.snapshot_catchup_bytes = c.snapshot_catchup_bytes;
    o.snapshot_hold_bytes = c.snapshot_hold_bytes;
    o.random_seed = random_seed();
    return o;
}

raftkv::asio::driver_options driver_options(const server_config& c)
{
    raftkv::asio::driver_options d;
    d.tick_interval = std::chrono::milliseconds(c.tick_ms);
    d.proposal_timeout = std::chrono::milliseconds(c.request_timeout_ms);
    d.read_timeout = std::chrono::milliseconds(c.request_timeout_ms);
    return d;
}

/// What a storage failure takes down and recovery builds again from the data directory:
/// the log, the state machine, and the driver running the Raft node over them.
struct raft_node {
    raft_node(driver_type::executor_type strand, const server_config& c,
              raftkv::asio::tcp_transport& transport, change_journal& journal)
        : store(log_directory(c.data_dir)), machine(c.data_dir / "state", machine_options(journal)),
          driver(std::move(strand), node_options(c), transport, store, machine, driver_options(c))
    {
        // A failed background sync shows only as a durable index that stops advancing:
        // the store calls this once more, and the node must stop rather than wait.
        store.on_durable([this] {
            driver.log_durable();
            if (std::string why = store.failure(); !why.empty())
                driver.fail(std::make_exception_ptr(std::runtime_error(why)));
        });
    }
    ~raft_node() { store.on_durable({}); } // the driver goes first

    /// Puts into `journal` the changes the state machine applied before this start that it
    /// recorded (applied_history()) and the log still holds, so that a watch can resume
    /// across a restart: every change from where both reach back to the applied index, or
    /// none when they do not reach it.
    void recover_changes(change_journal& journal) const
    {
        const index_t applied = machine.applied_index();
        const raftkv::leveldb::kv_applied_history history = machine.applied_history();
        const index_t from = std::max(history.first, store.first_index());
        if (from > applied || applied > store.last_index())
            return;
        for (index_t at = from; at <= applied;) {
            const std::vector<log_entry> entries =
                store.entries(at, applied + 1, journal_recovery_chunk_bytes);
            journal.recovered(entries, history.unchanged);
            at = entries.back().index + 1;
        }
    }

    // Destroyed in reverse order: the driver before the policies it uses.
    raftkv::wal::log_store store;
    raftkv::leveldb::kv_state_machine machine;
    driver_type driver;
};

/// The longest a request waits for a leader when its node knows none (a leadership transfer
/// or an election under way): the longest election timeout, within the request's deadline.
/// A node cut off from the others answers 503 after it, rather than at once.
std::chrono::milliseconds leader_wait(const server_config& c)
{
    return std::chrono::milliseconds(std::uint64_t{2} * c.election_ticks * c.tick_ms);
}

/// Waits transfer_retry_pause on `timer`, made at the first call.
boost::asio::awaitable<void> short_pause(std::optional<boost::asio::steady_timer>& timer)
{
    if (!timer)
        timer.emplace(co_await boost::asio::this_coro::executor);
    timer->expires_after(transfer_retry_pause);
    co_await timer->async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
}

/// Waits, a short pause at a time, until `n` knows a leader: true then, false once the
/// next pause would end past `until` (checked first, so that a caller trying again is
/// bounded by `until` even while a leader is known).
boost::asio::awaitable<bool> wait_for_leader(raft_node& n, std::chrono::steady_clock::time_point until,
                                             std::optional<boost::asio::steady_timer>& timer)
{
    for (;;) {
        if (std::chrono::steady_clock::now() + transfer_retry_pause >= until)
            co_return false;
        if (n.driver.status().leader != no_node)
            co_return true;
        co_await short_pause(timer);
    }
}

/// How a raft_node is destroyed once its last holder lets go. While the service runs, on
/// the strand, after what is queued there (a handler the store's thread or a caller posted
/// may still refer to the driver); in the service's destructor, at once (nothing runs
/// then); after it, never: the process is exiting, and the log holds what a restart needs.
struct node_retirement {
    enum mode { on_strand, now, never };

    explicit node_retirement(driver_type::executor_type s) : strand(std::move(s)) {}

    driver_type::executor_type strand;
    std::atomic<mode> how{on_strand};
    /// Nodes made and not destroyed yet: the stores of one must be closed before they are
    /// opened again.
    std::atomic<int> open{0};
};

void retire(const std::shared_ptr<node_retirement>& r, raft_node* n)
{
    const auto destroy = [r, n] {
        delete n;
        --r->open;
    };
    switch (r->how.load()) {
    case node_retirement::now: destroy(); return;
    case node_retirement::never: return;
    case node_retirement::on_strand: break;
    }
    // Detached first, then destroyed after whatever the handler posted meanwhile.
    boost::asio::post(r->strand, [r, n, destroy] {
        n->store.on_durable({});
        boost::asio::post(r->strand, destroy);
    });
}

/// Lets one holder in at a time, the others waiting in order of arrival. What it guards is
/// synchronous work that takes a thread for milliseconds (building a 2 MiB scan page and
/// its answer): a burst of such work, all ready at once (many pipelined scans whose read
/// index completes together), queued on the threads that also run the Raft node would
/// delay its heartbeats past an election timeout. One at a time, it takes one thread, and
/// waiters wait on timers, not in the threads' queue.
class one_at_a_time {
public:
    /// Waits for the turn; it ends when the returned token (and its copies) are destroyed.
    /// The object must outlive every token.
    boost::asio::awaitable<std::shared_ptr<void>> enter()
    {
        std::shared_ptr<waiter> w;
        {
            std::lock_guard lock(mutex_);
            if (!busy_) {
                busy_ = true;
                co_return token();
            }
            w = std::make_shared<waiter>(co_await boost::asio::this_coro::executor);
            waiting_.push_back(w);
        }
        // Woken by leave(), on this coroutine's executor, which runs nothing of it meanwhile:
        // the wait below is under way by then.
        co_await w->timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        {
            std::lock_guard lock(mutex_);
            if (!w->granted) {
                // Woken otherwise (a cancelled wait): never handed the turn, it leaves the line.
                std::erase(waiting_, w);
                throw boost::system::system_error(boost::asio::error::operation_aborted);
            }
        }
        co_return token();
    }

private:
    std::shared_ptr<void> token()
    {
        return std::shared_ptr<void>(nullptr, [this](void*) { leave(); });
    }

    struct waiter {
        explicit waiter(const boost::asio::any_io_executor& ex)
            : timer(ex, boost::asio::steady_timer::time_point::max())
        {
        }
        boost::asio::steady_timer timer;
        bool granted = false; // under mutex_
    };

    void leave()
    {
        std::shared_ptr<waiter> next;
        {
            std::lock_guard lock(mutex_);
            if (waiting_.empty()) {
                busy_ = false;
                return;
            }
            next = std::move(waiting_.front()); // the turn passes to it
            waiting_.pop_front();
            next->granted = true;
        }
        // An expiry in the past ends the wait, or one not yet begun at once.
        const auto executor = next->timer.get_executor();
        boost::asio::post(executor,
                          [next] { next->timer.expires_at(boost::asio::steady_timer::time_point::min()); });
    }

    std::mutex mutex_;
    bool busy_ = false;
    std::deque<std::shared_ptr<waiter>> waiting_;
};

} // namespace

struct kv_service::impl {
    impl(boost::asio::any_io_executor ex, const server_config& c, raft_endpoints endpoints);
    ~impl();

    boost::asio::awaitable<write_result> propose(std::string command, bool replayable);
    std::optional<host_port> raft_address_of(const membership& m, node_id id) const;
    std::optional<std::string> http_address_of(const membership& m, node_id id) const;
    std::optional<std::string> published_http_address(const membership& m, node_id id) const;
    void on_config_change(index_t index, const membership& m);
    void check_own_raft_address(const membership& m, index_t index);
    void dial_where_the_log_says(const membership& m, const std::map<node_id, tcp::endpoint>& flagged);
    void maybe_check_addresses(const node_status& s, bool removed);
    void check_addresses(std::vector<host_port> targets, index_t index);
    void learn_addresses(const cluster_view& view, bool own_reached);
    void update_peers(const membership& members, index_t members_index, index_t commit_index, node_id leader);
    boost::asio::awaitable<void> resolve_peers(std::map<node_id, host_port> wanted, std::uint64_t generation);
    void repeat(boost::asio::steady_timer& timer, std::chrono::milliseconds interval, void (impl::*step)());
    void measure_state();
    void observe();
    void log_leader_change(const node_status& s);
    void log_step_down(const node_status& s);
    void log_silent_peers(const node_metrics& m);
    void log_given_up_transfers(const node_metrics& m);
    void publish_http_address(term_t term, std::uint64_t tag);
    void await_handoff(node_id target, clock::time_point started, clock::time_point deadline,
                       std::function<void(std::string)> done);
    void record_incarnation(node_id peer, std::uint64_t incarnation);
    void forget_incarnations(const std::vector<node_id>& removed);
    void data_directory_replaced(node_id peer, const std::string& why);
    void report_fatal(const std::string& why);

    std::shared_ptr<raft_node> open_node();
    bool opened_before = false; // whether open_node() ran
    /// The running node; null while storage failed. Any thread; on the strand, `node`.
    std::shared_ptr<raft_node> current() const;
    /// The node's status; the failed node's last one, without a leader, while storage failed.
    node_status status() const;
    void set_node(std::shared_ptr<raft_node> n);
    void deliver(message m);
    void node_failed(const raft_node* failed, std::exception_ptr why);
    void read_failed(const std::shared_ptr<raft_node>& failed, std::exception_ptr why);
    /// `read(n->machine)`; nothing when it threw raftkv::storage_error, which then takes
    /// the node out of service (read_failed).
    template <class Read>
    auto read_state(const std::shared_ptr<raft_node>& n, Read read)
        -> std::optional<decltype(read(n->machine))>
    {
        try {
            return read(n->machine);
        } catch (const raftkv::storage_error&) {
            read_failed(n, std::current_exception());
            return std::nullopt;
        }
    }
    void storage_failed(const std::string& why);
    std::string damaged_storage_advice() const;
    void schedule_probe();
    void probe();
    void set_storage(storage_status s);

    server_config config;
    // Before the nodes, whose state machines feed it.
    change_journal journal;
    driver_type::executor_type strand;
    std::unique_ptr<raftkv::asio::tcp_transport> transport;
    std::shared_ptr<node_retirement> retirement;
    mutable std::mutex node_mutex;
    std::shared_ptr<raft_node> node; // written on the strand under node_mutex
    storage_status storage;          // under node_mutex
    // What a member's list said of this node's removal (service_status::removal_heard); under
    // node_mutex, written on the strand.
    std::optional<std::string> removal_heard;
    // kv_service::removed(), set each tick.
    std::atomic<bool> removed{false};
    // Scan pages are built one at a time (kv_service::scan()).
    one_at_a_time scan_builds;
    // service_status::admitted: set on the strand, read by any thread.
    std::atomic<bool> admitted{true};
    /// outside_configuration() of `s`, for an admitted node only.
    std::optional<std::string> outside(const node_status& s) const
    {
        return admitted.load(std::memory_order_relaxed) ? outside_configuration(s) : std::nullopt;
    }
    node_status last_status; // under node_mutex: the failed node's, for /status

    // Touched on `strand` only.
    boost::asio::steady_timer watch_timer;
    boost::asio::steady_timer probe_timer;
    // --quota-bytes: the state's tables measured each second (state_bytes), and the last
    // compaction this node asked for while over the quota (on the strand).
    boost::asio::steady_timer quota_timer;
    std::atomic<std::uint64_t> state_bytes{0};
    std::atomic<std::uint64_t> quota_refusals{0};
    clock::time_point compaction_asked{};
    index_t applied_at_compaction = 0;
    bool compacted_over_quota = false;
    std::string probe_problem; // the last one logged
    // The wait before the next check of a failed storage, and when it last recovered.
    std::chrono::seconds probe_interval = storage_probe_first_interval;
    std::optional<clock::time_point> recovered_at;
    bool stopped = false;
    bool publishing = false;
    term_t published_term = 0;
    // Whether the configuration last seen has the members dial this node where it listens.
    bool own_address_reached = true;
    // A member's Raft address as a newer configuration than this node's has it, read from a
    // member's GET /cluster/members (see maybe_check_addresses()); dialed until this node's
    // log reaches a configuration at least as new. On the strand, like what follows.
    struct address_override {
        host_port raft;
        index_t members_index = 0;
    };
    std::map<node_id, address_override> address_overrides;
    std::map<node_id, clock::time_point> unreachable_at; // the last failed connection to each peer
    clock::time_point leader_seen_at = clock::now();     // the last tick that knew a leader
    clock::time_point address_check_started{};
    bool address_check_running = false;
    std::string own_address_told;       // the address a member's list gave for this node, last logged
    std::string address_check_failures; // why the last check found no list, if it did not
    std::thread address_checker;        // runs check_addresses(), whose HTTP requests block
    std::atomic<bool> checker_stop{false};
    clock::time_point publish_checked{}; // when this node last compared its published HTTP address
    node_id logged_leader = no_node;
    term_t led_term = 0; // the term of the last "became leader" logged
    // On the leader: the followers last logged as silent (see log_silent_peers()), and when
    // they were last looked at.
    std::set<node_id> silent_peers;
    clock::time_point peers_checked{};
    // The node's counts of snapshot transfers given up, as last logged (see
    // log_given_up_transfers()).
    std::uint64_t transfers_given_up_silent = 0;
    std::uint64_t transfers_given_up_hold_bytes = 0;
    // Whether the log last said this node is outside the configuration (removed).
    bool logged_outside = false;
    // The Raft address of every member of every configuration seen since start-up: a
    // removed member may still lead until its removal commits, and must be answered.
    std::map<node_id, host_port> known_addresses;
    std::vector<node_id> just_removed;  // left with the last change, until it commits
    std::set<node_id> previous_members; // of the configuration last reported
    // Nodes outside the configuration the Raft node wrote to (a leader telling a removed
    // node of its removal), with when it last did: dialed for a while after.
    std::map<node_id, clock::time_point> written_outside;
    std::map<node_id, host_port> dialed; // the peers' addresses last handed to resolve_peers
    std::uint64_t peers_generation = 0;  // bumped each time `dialed` changes
    peer_incarnations incarnations;      // as in DATA_DIR/peers
    // The incarnation each member removed since start had, when this node recorded one: a
    // node adding the id back names it in the member's info ("replaces"). Read by any thread.
    mutable std::mutex retired_mutex;
    std::map<node_id, std::uint64_t> retired;
    /// `incarnations` as of its last change, for status() on other threads (retired_mutex).
    peer_incarnations recorded;
    void publish_incarnations()
    {
        std::lock_guard lock(retired_mutex);
        recorded = incarnations;
    }
    /// After a change to `incarnations`: shown to other threads, and written to DATA_DIR/peers
    /// (throws std::runtime_error as write_peer_incarnations()).
    void save_incarnations()
    {
        publish_incarnations();
        write_peer_incarnations(config.data_dir, incarnations);
    }
    std::function<void(std::string)> on_fatal;
    bool fatal_reported = false;
    std::set<std::string> reported_conflicts; // identity conflicts logged, not fatal
    bool greeted_by_a_peer = false;           // a peer's incarnation was learned since start
    // The members of the last configuration seen (the --peers, or those met when joining,
    // before any), with their member_info::added.
    std::map<node_id, std::uint64_t> member_tags;
    // Whether member_tags stand in for tags not known yet: a node that joined has no
    // configuration until the leader sends it one, and the answer it joined by lists no
    // tags. Peers recorded meanwhile take their tags from the first configuration.
    bool tags_unknown = false;

    // Writes proposed again by propose() (any thread).
    std::atomic<std::uint64_t> write_retries{0};
};

kv_service::impl::impl(boost::asio::any_io_executor ex, const server_config& c, raft_endpoints endpoints)
    : config(c),
      journal(change_journal_options{.max_entries = static_cast<std::size_t>(c.watch_history_entries),
                                     .max_bytes = static_cast<std::size_t>(c.watch_history_bytes),
                                     .max_watchers = c.max_watchers}),
      strand(boost::asio::make_strand(ex)), retirement(std::make_shared<node_retirement>(strand)),
      watch_timer(strand), probe_timer(strand), quota_timer(strand)
{
    // A peers file that does not parse is damaged data (exit 1), not a configuration problem.
    incarnations = read_peer_incarnations(c.data_dir);
    publish_incarnations();
    // The transport dials nobody until the log is open: its configuration says where (below).
    const std::map<node_id, tcp::endpoint> flagged_endpoints = std::move(endpoints.peers);
    try {
        // A restarted peer should rejoin within about an election timeout, not after the
        // transport's default 2 s backoff ceiling.
        raftkv::asio::tcp_transport_options t;
        t.reconnect_delay_max = std::chrono::milliseconds(250);
        t.cluster_id = c.cluster_id;
        t.frame_timeout = std::chrono::milliseconds(c.raft_frame_timeout_ms);
        t.greeting_timeout = std::chrono::milliseconds(c.raft_greeting_timeout_ms);
        t.max_ungreeted_connections = c.raft_max_ungreeted;
        t.incarnation = c.incarnation;
        t.known_incarnations = incarnations_of(incarnations);
        t.on_incarnation_learned = [this](node_id peer, std::uint64_t incarnation) {
            greeted_by_a_peer = true;
            record_incarnation(peer, incarnation);
        };
        t.on_identity_conflict = [this](node_id peer, const std::string& why) {
            data_directory_replaced(peer, why);
        };
        // Picked up by the next observe(): this runs inside the node's step.
        t.on_unknown_peer = [this](node_id id) {
            if (known_addresses.contains(id))
                written_outside.insert_or_assign(id, clock::now());
        };
        t.on_unreachable = [this](node_id id) {
            boost::asio::post(strand, [this, id] { unreachable_at.insert_or_assign(id, clock::now()); });
        };
        if (c.peer_tls())
            t.tls = raftkv::asio::tcp_transport_tls{
                .certificate_file = c.peer_cert, .private_key_file = c.peer_key, .ca_file = c.peer_ca};
        transport = std::make_unique<raftkv::asio::tcp_transport>(
            strand, c.id, std::map<node_id, tcp::endpoint>{}, endpoints.listen_on,
            [this](message m) { deliver(std::move(m)); }, t);
    } catch (const boost::system::system_error& e) {
        throw std::runtime_error("cannot listen for Raft on " + c.raft.to_string() + ": " +
                                 e.code().message());
    } catch (const std::runtime_error& e) {
        throw config_error(e.what()); // peer TLS files that do not load: a configuration problem
    }

    node = open_node();
    if (const auto& torn = node->store.recovered_torn_tail())
        log(log_level::warn,
            "the log's last segment " + torn->segment.string() + " ended in a group torn by a " +
                "crash mid-write: cut off its last " + std::to_string(torn->bytes) + " bytes, from offset " +
                std::to_string(torn->offset) +
                " (a write never synced, so never acknowledged; if the node did not crash, " +
                "the disk damaged the last write)");
    const node_status opened = node->driver.status();
    set_log_term(opened.term); // the recovered term, for the lines before the first tick
    // The state machine lost its state (DIR/state deleted) while the log was compacted: the
    // node waits, silently otherwise, for a leader to send it a snapshot.
    if (opened.applied_index + 1 < opened.first_index)
        log(log_level::warn,
            "the state machine's applied index " + std::to_string(opened.applied_index) +
                " is behind the start of the log (first index " + std::to_string(opened.first_index) +
                "), as when " + (c.data_dir / "state").string() +
                " was lost: this node applies and serves nothing until a leader sends it a "
                "snapshot (a single-node cluster has no other node to send one: start a new "
                "one from a backup, with --restore-backup FILE and an empty data directory)");
    // A node that joined is a member once it sees a configuration naming it (observe()).
    admitted.store(!c.joined, std::memory_order_relaxed);
    known_addresses = c.peers;
    dialed = c.peers;
    dialed.erase(c.id);
    for (const auto& [id, address] : c.peers)
        previous_members.insert(id);
    // The tags of the configuration in force, which on_config_change() reports once the
    // node runs: a peer that greets before is recorded under its own.
    if (member_ids(opened.members).empty()) {
        for (const auto& [id, address] : c.peers)
            member_tags.emplace(id, 0);
        tags_unknown = c.joined;
    } else {
        for (node_id id : member_ids(opened.members))
            member_tags.emplace(id, member_tag(opened.members, id));
    }
    if (member_ids(opened.members).empty())
        transport->set_peers(flagged_endpoints);
    else
        dial_where_the_log_says(opened.members, flagged_endpoints);
    check_own_raft_address(opened.members, opened.members_index);
}

// The peers dial the address the configuration in force lists for this node: a --raft on
// another port (a typo on a restart; a member given new addresses, started without its new
// --raft) leaves the node unreachable, waiting for a leader forever. Said at start-up (where
// the log may not have the latest change yet), and whenever a configuration changes it.
void kv_service::impl::check_own_raft_address(const membership& m, index_t index)
{
    // A node outside the configuration (removed, or joining) is dialed nowhere: its own
    // warnings say so.
    const std::optional<host_port> dialed_at =
        m.contains(config.id) ? raft_address_of(m, config.id) : std::nullopt;
    const bool reached = !dialed_at || listens_where_dialed(config.raft, *dialed_at);
    if (reached == own_address_reached)
        return;
    own_address_reached = reached;
    const std::string where =
        "node " + std::to_string(config.id) + " listens for Raft at " + config.raft.to_string();
    if (reached) {
        log(log_level::info, "the configuration at index " + std::to_string(index) +
                                 " has the members dial this node where it listens (" +
                                 config.raft.to_string() + ")");
        return;
    }
    log(log_level::warn,
        where + (config.raft_given ? " (--raft)" : " (without --raft)") +
            ", but the configuration at index " + std::to_string(index) + " has the members dial it at " +
            dialed_at->to_string() +
            ": unless a later change moved it here, or something forwards that address here, "
            "no peer reaches this node; start it with --raft " +
            dialed_at->to_string());
}

// A node started again dials its members where the configuration in its log has them, not
// where --peers (or its first start) had them: a member may have moved since (PATCH
// /cluster/members/ID), and another process may listen at its old address now. Done before
// the node runs, so that its greetings and first answers go there too (the configuration
// change reported once it runs resolves names off the strand, too late for them);
// on_config_change() then finds nothing to change. `flagged`: --peers resolved. A name
// that does not resolve leaves its member dialed where --peers has it, as before.
void kv_service::impl::dial_where_the_log_says(const membership& m,
                                               const std::map<node_id, tcp::endpoint>& flagged)
{
    std::map<node_id, host_port> wanted;
    std::map<node_id, tcp::endpoint> endpoints;
    tcp::resolver resolver(strand.get_inner_executor());
    const std::string first = config.peers_given ? "--peers" : "as this node was first started";
    for (node_id id : member_ids(m)) {
        const std::optional<host_port> raft = id == config.id ? std::nullopt : raft_address_of(m, id);
        if (!raft)
            continue;
        known_addresses.insert_or_assign(id, *raft);
        wanted.emplace(id, *raft);
        const auto given = config.peers.find(id);
        const bool moved = given != config.peers.end() && given->second != *raft;
        if (given != config.peers.end() && !moved) {
            endpoints.emplace(id, flagged.at(id));
            continue;
        }
        boost::system::error_code ec;
        const auto results =
            resolver.resolve(raft->host, std::to_string(raft->port), tcp::resolver::numeric_service, ec);
        if (!ec && !results.empty()) {
            endpoints.emplace(id, results.begin()->endpoint());
            if (moved)
                log(log_level::info, "dialing member " + std::to_string(id) + " at " + raft->to_string() +
                                         ", where the configuration in this node's log has it, not at " +
                                         given->second.to_string() + " (" + first + ")");
            continue;
        }
        const std::string why = ec ? ec.message() : std::string("no addresses");
        if (!moved) {
            log(log_level::warn, "cannot resolve member " + std::to_string(id) + "'s Raft address " +
                                     raft->to_string() + ": " + why + "; not dialing it");
            continue;
        }
        endpoints.emplace(id, flagged.at(id));
        log(log_level::warn, "cannot resolve member " + std::to_string(id) + "'s Raft address " +
                                 raft->to_string() + ", from the configuration in this node's log: " + why +
                                 "; dialing it at " + given->second.to_string() + " (" + first +
                                 ") meanwhile");
    }
    dialed = std::move(wanted);
    transport->set_peers(std::move(endpoints));
}

kv_service::impl::~impl()
{
    checker_stop = true;
    if (address_checker.joinable())
        address_checker.join();
    // Nothing runs any more: the node is closed here, unless an abandoned operation still
    // holds it, which the process exit then leaves to the next start's recovery.
    retirement->how = node_retirement::now;
    node.reset();
    retirement->how = node_retirement::never;
}

// Opens the log and the state machine and builds a node on them, as at start-up.
std::shared_ptr<raft_node> kv_service::impl::open_node()
{
    auto n = std::make_unique<raft_node>(strand, config, *transport, journal);
    if (!opened_before)
        n->recover_changes(journal);
    opened_before = true;
    journal.start_at(n->machine.applied_index());
    raft_node* raw = n.get();
    raw->driver.on_config_change([this](index_t index, const membership& m) { on_config_change(index, m); });
    raw->driver.on_failure([this, raw](std::exception_ptr why) { node_failed(raw, why); });
    ++retirement->open;
    return std::shared_ptr<raft_node>(n.release(), [r = retirement](raft_node* p) { retire(r, p); });
}

std::shared_ptr<raft_node> kv_service::impl::current() const
{
    std::lock_guard lock(node_mutex);
    return node;
}

node_status kv_service::impl::status() const
{
    std::lock_guard lock(node_mutex);
    return node ? node->driver.status() : last_status;
}

// On the strand.
void kv_service::impl::set_node(std::shared_ptr<raft_node> n)
{
    std::shared_ptr<raft_node> old;
    std::lock_guard lock(node_mutex);
    old = std::exchange(node, std::move(n));
}

// On the strand: messages for a node whose storage failed are lost, as for a crashed one.
void kv_service::impl::deliver(message m)
{
    if (node)
        node->driver.deliver(std::move(m));
}

// On the strand, from the driver of `failed`, which has stopped. A verdict of raftkv's own
// on the storage (errc::storage_inconsistent: the log lost what was applied or
// acknowledged) is a safety problem that no restart cures: the process stops.
void kv_service::impl::node_failed(const raft_node* failed, std::exception_ptr why)
{
    if (node.get() != failed)
        return;
    if (is_raftkv_error(why))
        return report_fatal(describe(why));
    storage_failed(describe(why));
}

// Any thread: a read of the state machine of `failed` threw raftkv::storage_error (an I/O
// error, or a record or table that fails its checksum). The node is then no better than
// one whose write failed: it takes the storage-failure path (503, /readyz failing, probes),
// so that clients and load balancers go to the other members instead of getting a 500 for
// every read that touches the damage. Data that fails its checks keeps it out for good;
// after an I/O error, should the store re-open but the error stay, the next such read fails
// it again, with the probe interval growing.
void kv_service::impl::read_failed(const std::shared_ptr<raft_node>& failed, std::exception_ptr why)
{
    boost::asio::post(strand, [this, failed, why] { node_failed(failed.get(), why); });
}

// On the strand. The node's durable state is in doubt (after a failed fsync the page
// cache no longer says what is on the disk), so it takes no further part in Raft: it is
// closed, as a crashed process's would be, and rebuilt from the disk once that works.
void kv_service::impl::storage_failed(const std::string& why)
{
    if (!node || stopped)
        return;
    // A storage that fails again soon after it recovered goes on backing off.
    if (recovered_at && clock::now() - *recovered_at < storage_probe_max_interval)
        probe_interval = next_storage_probe_interval(probe_interval);
    else
        probe_interval = storage_probe_first_interval;
    // Data that fails its checks (LevelDB's "Corruption", met by a read or a compaction)
    // does not mend by itself: re-opening would only meet it again.
    const bool damaged = fails_its_checks(why);
    if (damaged)
        log(log_level::error, "storage failure: " + why +
                                  "; the data fails its checks, so this node stopped taking part in Raft and "
                                  "answers reads and writes with 503 until it is repaired and the server "
                                  "restarted" +
                                  damaged_storage_advice());
    else
        log(log_level::error, "storage failure: " + why +
                                  "; this node stopped taking part in Raft and answers reads and writes with "
                                  "503 until its storage works again (checked in " +
                                  std::to_string(probe_interval.count()) +
                                  " s, then at intervals doubling up to " +
                                  std::to_string(storage_probe_max_interval.count()) + " s)");
    node_status last = node->driver.status();
    last.role = role::follower;
    last.leader = no_node;
    {
        std::lock_guard lock(node_mutex);
        last_status = std::move(last);
        storage = storage_status{why, std::chrono::system_clock::now(), clock::now(), !damaged};
    }
    const std::shared_ptr<raft_node> failed = node;
    set_node(nullptr);
    // Stops it unless its own driver reported the failure (then it has stopped already).
    failed->driver.fail(std::make_exception_ptr(std::runtime_error(why)));
    logged_leader = no_node;
    probe_problem.clear();
    if (!damaged)
        schedule_probe();
}

// What to do about storage whose data fails its checks, for the log.
std::string kv_service::impl::damaged_storage_advice() const
{
    return ": `raftkv-server --inspect --data-dir " + config.data_dir.string() +
           "`, with the server stopped, names the damaged files; a member of a cluster can be emptied "
           "and added back (docs/server.md, \"A lost data directory\"), a single node restored from a backup";
}

void kv_service::impl::schedule_probe()
{
    probe_timer.expires_after(probe_interval);
    probe_timer.async_wait([this](boost::system::error_code ec) {
        if (ec || stopped)
            return;
        probe();
    });
}

// On the strand, while storage failed: once the data directory takes a synced write
// again and the failed node is closed, opens the stores and starts a new node from them.
// A store that does not open then is damaged, not full: the node stays down.
void kv_service::impl::probe()
{
    std::string problem = retirement->open.load() != 0 ? std::string("the failed node is still closing")
                                                       : probe_storage(config.data_dir);
    if (problem.empty())
        problem = flush_and_drop_cache(config.data_dir);
    if (!problem.empty()) {
        if (problem != probe_problem)
            log(log_level::info, "storage still unusable: " + problem);
        probe_problem = std::move(problem);
        probe_interval = next_storage_probe_interval(probe_interval);
        return schedule_probe();
    }
    std::shared_ptr<raft_node> n;
    // A store that does not open for a reason of the system (a permission, a read-only
    // mount, an I/O error) may open once that is mended, as a full disk may once space
    // returns; one whose data fails its checks (a corrupt log segment, LevelDB's
    // "Corruption") will not.
    bool damaged = true;
    try {
        n = open_node();
    } catch (const std::system_error& e) {
        if (e.code().category() == raftkv::raftkv_category())
            return report_fatal(e.what());
        problem = e.what();
    } catch (const raftkv::storage_error& e) {
        problem = e.what();
        damaged = fails_its_checks(problem);
    } catch (const std::exception& e) {
        problem = e.what();
    }
    if (!n && !damaged) {
        if (problem != probe_problem)
            log(log_level::warn, "cannot re-open the storage yet: " + problem + "; trying again");
        probe_problem = std::move(problem);
        probe_interval = next_storage_probe_interval(probe_interval);
        return schedule_probe();
    }
    if (!n) {
        log(log_level::error,
            "cannot re-open the storage after it failed: " + problem +
                "; this node stays out of service until it is repaired and the server restarted" +
                damaged_storage_advice());
        std::lock_guard lock(node_mutex);
        storage.error = "cannot re-open the storage: " + problem;
        storage.retrying = false;
        return;
    }
    {
        std::lock_guard lock(node_mutex);
        storage = storage_status{};
    }
    recovered_at = clock::now();
    set_node(n);
    const node_status s = n->driver.status();
    n->driver.start();
    log(log_level::info, "storage works again: re-opened the log (index " + std::to_string(s.first_index) +
                             " to " + std::to_string(s.last_index) + ") and the state machine (applied " +
                             std::to_string(s.applied_index) + "); the node takes part in Raft again");
}

// Proposes `command` again, within the request's deadline, when that is safe: while a
// leadership transfer is under way (as retry_while_transferring() does, in one coroutine:
// this runs once per write); when a new leader overwrote it (it never took effect); and,
// for a `replayable` command (one carrying a client session, which the state machine
// applies once however often it is proposed), when its outcome became unknown because
// the leader changed or the forward went unanswered. The last two wait for a leader first.
boost::asio::awaitable<write_result> kv_service::impl::propose(std::string command, bool replayable)
{
    const auto deadline = clock::now() + std::chrono::milliseconds(config.request_timeout_ms);
    std::optional<boost::asio::steady_timer> pause;
    for (;;) {
        const std::shared_ptr<raft_node> n = current();
        if (!n)
            co_return write_result{make_error_code(raftkv::errc::node_failed), false};
        // Every try ends by the request's deadline: a retry does not start a timeout of its own.
        auto [ec, result] = co_await n->driver.async_propose(
            command, deadline, boost::asio::as_tuple(boost::asio::use_awaitable));
        const write_result r{ec, result.found, result.status, result.version, result.replayed};
        // Refused, nothing proposed: no leader was known (an election, or the moment of a
        // transfer): wait for one and propose again, rather than answer 503 for a gap of
        // milliseconds. Refused by a leader that had stepped down when the forwarded write
        // reached it, while a leader is known: tried again after a pause, as during a transfer.
        if (ec == raftkv::errc::not_leader && n->driver.status().leader == no_node) {
            if (!co_await wait_for_leader(*n, std::min(deadline, clock::now() + leader_wait(config)), pause))
                co_return r;
            continue;
        }
        const bool transferring = ec == raftkv::errc::transfer_in_progress || ec == raftkv::errc::not_leader;
        const bool unknown = ec == raftkv::errc::leadership_lost || ec == raftkv::errc::timeout;
        if (!transferring && ec != raftkv::errc::proposal_dropped && !(replayable && unknown))
            co_return r;
        // The next try goes after a pause during a transfer, else once a leader is known.
        if (transferring) {
            if (clock::now() + transfer_retry_pause >= deadline)
                co_return r;
            co_await short_pause(pause);
            continue;
        }
        if (!co_await wait_for_leader(*n, deadline, pause))
            co_return r;
        write_retries.fetch_add(1, std::memory_order_relaxed);
    }
}

// The info's address; else the member's --peers entry (a member of a configuration
// written before addresses were kept in it).
std::optional<host_port> kv_service::impl::raft_address_of(const membership& m, node_id id) const
{
    if (const auto info = m.info.find(id); info != m.info.end())
        if (std::optional<host_port> raft = decode_member_info(info->second).raft)
            return raft;
    if (const auto peer = config.peers.find(id); peer != config.peers.end())
        return peer->second;
    return std::nullopt;
}

std::optional<std::string> kv_service::impl::http_address_of(const membership& m, node_id id) const
{
    if (id == config.id)
        return config.advertise_http.to_string();
    return published_http_address(m, id);
}

// What the member published itself under its current tag (where it runs now), else the
// address it was added with (or last given with PATCH /cluster/members/{id}).
std::optional<std::string> kv_service::impl::published_http_address(const membership& m, node_id id) const
{
    const auto info = m.info.find(id);
    const member_info decoded = info == m.info.end() ? member_info{} : decode_member_info(info->second);
    if (const std::shared_ptr<raft_node> n = current())
        if (std::optional<std::string> own = n->machine.get_meta(http_meta_name(id, decoded.added)))
            return own;
    if (decoded.http)
        return decoded.http->to_string();
    return std::nullopt;
}

// On the strand.
void kv_service::impl::on_config_change(index_t index, const membership& m)
{
    if (!node)
        return;
    log(log_level::info, "configuration at index " + std::to_string(index) + ": " + describe_members(m));
    const std::set<node_id> members = member_ids(m);
    // No members: a node that joined, before the leader sends it a configuration. Nobody
    // was removed; the members it joined by are dialed once the log names them (or one
    // leads).
    if (members.empty()) {
        const node_status s = node->driver.status();
        update_peers(m, index, s.commit_index, s.leader);
        return;
    }
    // The members of the configuration before this one that it leaves out: not every node
    // ever removed, which each later change would dial again while it commits.
    just_removed.clear();
    for (node_id id : previous_members)
        if (!members.contains(id))
            just_removed.push_back(id);
    previous_members = members;
    member_tags.clear();
    std::map<node_id, std::uint64_t> replaced; // the "replaces" of members added back
    for (node_id id : members) {
        const auto info = m.info.find(id);
        const member_info decoded = info == m.info.end() ? member_info{} : decode_member_info(info->second);
        member_tags.emplace(id, decoded.added);
        if (decoded.replaces != 0)
            replaced.emplace(id, decoded.replaces);
    }
    // Peers recorded before this node knew any configuration were recorded without their
    // tags: they take this one's (forgotten, a member greeting now would stay unrecorded
    // for as long as its connection lasts).
    if (std::exchange(tags_unknown, false)) {
        bool tagged = false;
        for (auto& [id, record] : incarnations)
            if (const auto tag = member_tags.find(id);
                tag != member_tags.end() && tag->second != record.added) {
                record.added = tag->second;
                tagged = true;
            }
        if (tagged)
            save_incarnations();
    }
    // A member whose tag changed since its incarnation was recorded was removed and added
    // back meanwhile (this node may have seen neither change: it was down, or installed a
    // snapshot past them): the directory recorded for it is no longer the one to insist on,
    // nor is the one a member added back replaced.
    std::vector<node_id> forget = just_removed;
    for (const auto& [id, record] : incarnations) {
        const auto tag = member_tags.find(id);
        const auto old = replaced.find(id);
        if ((tag != member_tags.end() && tag->second != record.added) ||
            (old != replaced.end() && old->second == record.incarnation))
            forget.push_back(id);
    }
    forget_incarnations(forget);
    // A process of the earlier membership of a member added back, still running, must not
    // pass for it (it would greet first, be recorded, and have the new one refused).
    for (const auto& [id, incarnation] : replaced)
        transport->retire_incarnation(id, incarnation);
    for (node_id id : members) {
        if (std::optional<host_port> raft = raft_address_of(m, id))
            known_addresses.insert_or_assign(id, std::move(*raft));
        else if (id != config.id)
            log(log_level::warn, "member " + std::to_string(id) + " has no Raft address; not dialing it");
    }
    // An address learned from a newer configuration holds until the log reaches one as new.
    for (auto it = address_overrides.begin(); it != address_overrides.end();) {
        if (it->second.members_index <= index || !members.contains(it->first)) {
            it = address_overrides.erase(it);
            continue;
        }
        known_addresses.insert_or_assign(it->first, it->second.raft);
        ++it;
    }
    check_own_raft_address(m, index);
    const node_status s = node->driver.status(); // its members may not include `m` yet
    update_peers(m, index, s.commit_index, s.leader);
}

// On the strand, each tick. A node whose log missed a change of addresses (it was down when
// a member moved) dials a member where it no longer listens, or listens where the members
// no longer dial it, and nothing in Raft can tell it: its messages go nowhere. When the
// leader it follows cannot be reached, or it has known no leader for ten election timeouts
// (and does not know itself removed), it asks the members' HTTP APIs for their member list
// (at most every 5 s), dials a member where a newer configuration than its own says, and
// says so when that configuration has the members dial this node elsewhere. A committed
// configuration without this node says it was removed: a node removed while it was down,
// once the members' logs no longer hold its removal, is told by no leader. `removed`: the
// node knows it was removed (kv_service::removed()).
void kv_service::impl::maybe_check_addresses(const node_status& s, bool removed)
{
    const clock::time_point now = clock::now();
    if (s.leader != no_node)
        leader_seen_at = now;
    if (address_check_running || now - address_check_started < std::chrono::seconds(5) || removed)
        return;
    const auto unreachable = unreachable_at.find(s.leader);
    const bool leader_unreachable = s.leader != no_node && s.leader != config.id &&
                                    unreachable != unreachable_at.end() &&
                                    now - unreachable->second < std::chrono::seconds(2);
    const auto leaderless_for =
        std::chrono::milliseconds(std::uint64_t{20} * config.election_ticks * config.tick_ms);
    if (!leader_unreachable && (s.leader != no_node || now - leader_seen_at < leaderless_for))
        return;
    std::vector<host_port> targets; // the leader's first
    for (node_id id : member_ids(s.members)) {
        if (id == config.id)
            continue;
        if (const std::optional<std::string> http = http_address_of(s.members, id))
            if (std::optional<host_port> address = parse_host_port(*http))
                targets.insert(id == s.leader ? targets.begin() : targets.end(), std::move(*address));
    }
    if (targets.empty())
        return;
    address_check_running = true;
    address_check_started = now;
    if (address_checker.joinable())
        address_checker.join(); // it has finished: address_check_running was reset
    address_checker = std::thread([this, targets = std::move(targets), index = s.members_index]() mutable {
        check_addresses(std::move(targets), index);
    });
}

namespace {

/// Whether a node listening at `listen` is reached at `dialed`: listens_where_dialed(), and
/// when a host is a name, an address `dialed` resolves to that `listen` resolves to too
/// (blocking; false if either does not resolve).
bool reached_at(const host_port& listen, const host_port& dialed)
{
    if (!listens_where_dialed(listen, dialed))
        return false;
    if (is_wildcard(listen) || listen.host == dialed.host)
        return true;
    boost::system::error_code ec1, ec2;
    (void)boost::asio::ip::make_address(listen.host, ec1);
    (void)boost::asio::ip::make_address(dialed.host, ec2);
    if (!ec1 && !ec2)
        return true; // two IP addresses, which listens_where_dialed() found the same
    boost::asio::io_context io;
    tcp::resolver resolver(io);
    const auto a = resolver.resolve(listen.host, "0", ec1);
    const auto b = resolver.resolve(dialed.host, "0", ec2);
    return !ec1 && !ec2 && share_an_address(a, b);
}

} // namespace

// On address_checker: the first list of a member of this cluster, itself in it, whose
// configuration is newer than this node's (`index`), or as new, committed and without this
// node; whether that configuration has the members dial this node where it listens; and,
// if no member gave one, why.
void kv_service::impl::check_addresses(std::vector<host_port> targets, index_t index)
{
    std::optional<cluster_view> found;
    bool own_reached = true;
    std::string failures; // "host:port: why; ..."
    const auto failed = [&failures](const host_port& target, const std::string& why) {
        failures.append(failures.empty() ? "" : "; ").append(target.to_string()).append(": ").append(why);
    };
    try {
        const std::string bearer =
            config.auth_tokens.empty() ? std::string() : config.auth_tokens.front().token;
        std::shared_ptr<tls_context> tls;
        if (!config.tls_cert.empty())
            tls = make_client_tls(config.forward_ca.empty() ? config.client_ca : config.forward_ca,
                                  config.tls_cert, config.tls_key);
        for (const host_port& target : targets) {
            if (checker_stop)
                break;
            try {
                cluster_view view = fetch_cluster(target, std::chrono::seconds(1), bearer, tls);
                if (view.cluster_id != config.cluster_id)
                    failed(target, "a node of another cluster");
                else if (!view.answered_by || !view.raft.contains(*view.answered_by))
                    failed(target, "not a member");
                else if (view.members_index > index ||
                         (view.members_index == index && view.members_committed &&
                          !view.raft.contains(config.id))) {
                    // Newer; or as new, committed there and without this node, whose own
                    // copy may never be known committed here (it was removed by it).
                    if (const auto self = view.raft.find(config.id); self != view.raft.end())
                        own_reached = reached_at(config.raft, self->second);
                    found = std::move(view);
                    break;
                }
            } catch (const std::exception& e) {
                failed(target, e.what());
            }
        }
    } catch (const std::exception& e) {
        failures = e.what();
    }
    boost::asio::post(strand, [this, found = std::move(found), own_reached, failures = std::move(failures)] {
        address_check_running = false;
        if (stopped || !node)
            return;
        if (found) {
            learn_addresses(*found, own_reached);
        } else if (!failures.empty() && failures != address_check_failures) {
            // Once per kind of failure: the check runs every 5 s while the node is cut off.
            log(log_level::warn,
                "no leader reachable, and no member's list of addresses could be read: " + failures);
        }
        address_check_failures = found ? std::string() : failures;
    });
}

// On the strand: what a member's list says of the members' Raft addresses, if its
// configuration is newer than this node's; and of this node's removal, if it is at least as
// new, committed, and without this node (a leader killed as it removed itself has the entry
// in its log, never known committed there, while the others committed it).
void kv_service::impl::learn_addresses(const cluster_view& view, bool own_reached)
{
    const node_status s = node->driver.status();
    const bool excluded = !view.raft.contains(config.id);
    if (view.cluster_id != config.cluster_id || view.members_index < s.members_index ||
        (view.members_index == s.members_index && !excluded))
        return;
    const std::string source = "member " + std::to_string(*view.answered_by) + "'s configuration at index " +
                               std::to_string(view.members_index) + " (this node's is at index " +
                               std::to_string(s.members_index) + ")";
    if (excluded) {
        if (!view.members_committed || s.leader != no_node)
            return; // its removal may not commit; a node still removing it replicates to it
        std::string members;
        for (const auto& [id, raft] : view.raft) {
            members.append(members.empty() ? "" : ",").append(std::to_string(id));
            if (std::find(view.learners.begin(), view.learners.end(), id) != view.learners.end())
                members.append(" (learner)");
        }
        std::string why =
            "node " + std::to_string(config.id) + " is not a member of the cluster: member " +
            std::to_string(*view.answered_by) + "'s committed configuration at index " +
            std::to_string(view.members_index) + " (members " + members + ") does not include it" +
            (s.members.contains(config.id)
                 ? ", though the one in its own log (at index " + std::to_string(s.members_index) + ") does"
                 : " (nor does the one in its own log, at index " + std::to_string(s.members_index) +
                       ", which it did not know committed)") +
            ": it was removed and serves nothing; send requests to a member, and stop "
            "this node (to bring it back, add it again with an empty data directory)";
        log(log_level::warn, why);
        std::lock_guard lock(node_mutex);
        removal_heard = std::move(why);
        return;
    }
    bool changed = false;
    for (const auto& [id, raft] : view.raft) {
        if (id == config.id) {
            if (!own_reached && raft.to_string() != own_address_told) {
                own_address_told = raft.to_string();
                log(log_level::warn, source + " has the members dial this node at " + raft.to_string() +
                                         ", but it listens at " + config.raft.to_string() +
                                         ": no peer reaches it; start it with --raft " + raft.to_string());
            }
            continue;
        }
        const auto known = known_addresses.find(id);
        if (!s.members.contains(id) || (known != known_addresses.end() && known->second == raft))
            continue;
        log(log_level::info, source + " has member " + std::to_string(id) + " at " + raft.to_string() +
                                 "; dialing it there until this node's log catches up");
        known_addresses.insert_or_assign(id, raft);
        address_overrides.insert_or_assign(id, address_override{raft, view.members_index});
        changed = true;
    }
    if (changed)
        update_peers(s.members, s.members_index, s.commit_index, s.leader);
}

// On the strand, at each configuration change and each tick. The transport dials the
// members of the configuration in force, and also, until they are of no more use, the
// members a change not yet committed removed (they may still need to hear from the rest),
// a leader outside the configuration (a leader removing itself leads until its removal
// commits, which takes the others' answers) and, for five election timeouts after the
// node last wrote to them, known nodes outside it (a leader tells a removed node that asks
// for votes of its removal). Names are resolved off the strand; a later change supersedes
// the resolution of an earlier one that has not finished.
void kv_service::impl::update_peers(const membership& members, index_t members_index, index_t commit_index,
                                    node_id leader)
{
    std::map<node_id, host_port> wanted;
    const auto want = [&](node_id id) {
        if (const auto a = known_addresses.find(id); id != config.id && a != known_addresses.end())
            wanted.insert(*a);
    };
    for (node_id id : member_ids(members))
        want(id);
    if (leader != no_node)
        want(leader);
    if (commit_index < members_index)
        for (node_id id : just_removed)
            want(id);
    const auto told_until =
        clock::now() - std::chrono::milliseconds(std::uint64_t{5} * config.election_ticks * config.tick_ms);
    std::erase_if(written_outside, [&](const auto& w) { return w.second < told_until; });
    for (const auto& w : written_outside)
        want(w.first);
    if (wanted == dialed)
        return;
    dialed = wanted;
    boost::asio::co_spawn(strand.get_inner_executor(), resolve_peers(std::move(wanted), ++peers_generation),
                          boost::asio::detached);
}

boost::asio::awaitable<void> kv_service::impl::resolve_peers(std::map<node_id, host_port> wanted,
                                                             std::uint64_t generation)
{
    tcp::resolver resolver(co_await boost::asio::this_coro::executor);
    std::map<node_id, tcp::endpoint> endpoints;
    std::vector<std::string> unresolved;
    for (const auto& [id, address] : wanted) {
        auto [ec, results] = co_await resolver.async_resolve(
            address.host, std::to_string(address.port), tcp::resolver::numeric_service,
            boost::asio::as_tuple(boost::asio::use_awaitable));
        if (ec || results.empty()) {
            unresolved.push_back("cannot resolve member " + std::to_string(id) + "'s Raft address " +
                                 address.to_string() + ": " +
                                 (ec ? ec.message() : std::string("no addresses")) + "; not dialing it");
            continue;
        }
        endpoints.emplace(id, results.begin()->endpoint());
    }
    // Said only of addresses still wanted: a configuration applied meanwhile (several may be
    // in one batch, as when a joiner replays the log) may no longer have them.
    boost::asio::post(strand, [this, generation, endpoints = std::move(endpoints),
                               unresolved = std::move(unresolved)]() mutable {
        if (generation != peers_generation || stopped)
            return;
        for (const std::string& line : unresolved)
            log(log_level::warn, line);
        transport->set_peers(std::move(endpoints));
    });
}

// Runs `step` on the strand every `interval` on `timer`, until the service stops.
void kv_service::impl::repeat(boost::asio::steady_timer& timer, std::chrono::milliseconds interval,
                              void (impl::*step)())
{
    timer.expires_after(interval);
    timer.async_wait([this, &timer, interval, step](boost::system::error_code ec) {
        if (ec || stopped)
            return;
        (this->*step)();
        repeat(timer, interval, step);
    });
}

// Measures the state's tables (LevelDB's own accounting: no file system call on the strand).
// Over the quota, asks the state machine to compact: what deletes freed (and what overwrites
// left behind) leaves the disk only then. Once on going over, then again whenever entries
// were applied since (deletes, as other writes are refused), at most every
// state_compaction_interval.
void kv_service::impl::measure_state()
{
    if (!node)
        return;
    state_bytes = node->machine.table_bytes();
    if (config.quota_bytes == 0 || state_bytes <= config.quota_bytes) {
        compacted_over_quota = false;
        return;
    }
    const index_t applied = node->driver.applied_index();
    if (compacted_over_quota &&
        (applied == applied_at_compaction || clock::now() - compaction_asked < state_compaction_interval))
        return;
    node->machine.compact_in_background();
    compacted_over_quota = true;
    compaction_asked = clock::now();
    applied_at_compaction = applied;
}

void kv_service::impl::observe()
{
    if (!node)
        return;
    const node_status s = node->driver.status();
    set_log_term(s.term);
    update_peers(s.members, s.members_index, s.commit_index, s.leader);
    // A node the configuration no longer holds hears from the leader only to learn of its
    // removal (which it logs): that is no leader it follows.
    if (s.leader != logged_leader && logged_leader != config.id && admitted.load(std::memory_order_relaxed) &&
        !s.members.empty() && !s.members.contains(config.id))
        logged_leader = s.leader;
    else if (s.leader != logged_leader)
        log_leader_change(s);
    // A follower that stopped answering while its connection stays open (a paused or
    // overloaded process, a one-way fault) closes nothing the transport would log: the
    // leader says so itself, once a second at most, from the followers' progress.
    if (s.role != role::leader) {
        silent_peers.clear();
    } else if (clock::now() - peers_checked >= std::chrono::seconds(1)) {
        peers_checked = clock::now();
        node->driver.async_metrics(boost::asio::bind_executor(strand, [this, n = node](node_metrics m) {
            if (!stopped && n == node) {
                log_silent_peers(m);
                log_given_up_transfers(m);
            }
        }));
    }
    if (!admitted.load(std::memory_order_relaxed) && s.members.contains(config.id))
        admitted.store(true, std::memory_order_relaxed);
    const std::optional<std::string> outside_now = outside(s);
    if (outside_now.has_value() != logged_outside) {
        logged_outside = outside_now.has_value();
        if (outside_now)
            log(log_level::warn, *outside_now);
    }
    std::optional<std::string> why_removed = outside_now;
    {
        std::lock_guard lock(node_mutex);
        if (s.leader != no_node)
            removal_heard.reset(); // a leader replicates to it: it is a member after all
        else if (!why_removed)
            why_removed = removal_heard;
    }
    maybe_check_addresses(s, why_removed.has_value());
    // A removed node's journal never grows again: its watches end, saying why.
    if (why_removed.has_value() != removed.load(std::memory_order_relaxed)) {
        removed.store(why_removed.has_value(), std::memory_order_relaxed);
        journal.refuse(why_removed);
    }
    if (publishing || !s.members.contains(config.id))
        return;
    // A leader publishes its address once per term it leads, and every member whenever the
    // replicated one is not its own (a new member, a changed --advertise-http, another
    // address given with PATCH /cluster/members/{id}), at most once a second: every member's
    // address is known before it ever leads (GET /cluster/members, the cluster page). The
    // comparison (a read of the state machine) is made once a second, not every tick.
    bool differs = false;
    if (s.leader != no_node && clock::now() - publish_checked >= std::chrono::seconds(1)) {
        publish_checked = clock::now();
        differs = published_http_address(s.members, config.id) != config.advertise_http.to_string();
    }
    if ((s.role == role::leader && s.term != published_term) || differs)
        publish_http_address(s.term, member_tag(s.members, config.id));
}

// Logs each follower that stopped answering the leader (not heard within the last one to
// two election timeouts), and each that answers again.
void kv_service::impl::log_silent_peers(const node_metrics& m)
{
    std::set<node_id> silent;
    for (const peer_metrics& p : m.peers)
        if (!p.active)
            silent.insert(p.id);
    for (node_id id : silent)
        if (!silent_peers.contains(id))
            log(log_level::warn, "node " + std::to_string(id) +
                                     " has not answered for over an election timeout (a stopped, paused or "
                                     "overloaded process, or a network fault)");
    for (node_id id : silent_peers)
        if (!silent.contains(id) &&
            std::any_of(m.peers.begin(), m.peers.end(), [id](const peer_metrics& p) { return p.id == id; }))
            log(log_level::info, "node " + std::to_string(id) + " answers again");
    silent_peers = std::move(silent);
}

// Logs the snapshot transfers the leader gave up since it last looked: an operator whose
// follower never catches up sees why.
void kv_service::impl::log_given_up_transfers(const node_metrics& m)
{
    // A node built again (after a storage failure) counts from zero.
    if (m.snapshot_transfers_given_up_silent > transfers_given_up_silent)
        log(log_level::warn, "gave up sending a snapshot to a follower that answered nothing for 20 election "
                             "timeouts; it is sent a newer one when it answers again");
    if (m.snapshot_transfers_given_up_hold_bytes > transfers_given_up_hold_bytes)
        log(log_level::warn, "gave up sending a snapshot to a follower: the writes made since it started "
                             "exceed --snapshot-hold-bytes of log, which the follower would need after it; "
                             "it is sent a newer one (raise --snapshot-hold-bytes on the members that may "
                             "lead for such a transfer to finish under these writes)");
    transfers_given_up_silent = m.snapshot_transfers_given_up_silent;
    transfers_given_up_hold_bytes = m.snapshot_transfers_given_up_hold_bytes;
}

// A leader that stepped down says why first (a status may show the new leader already).
void kv_service::impl::log_leader_change(const node_status& s)
{
    const std::string term = " (term " + std::to_string(s.term) + ")";
    if (logged_leader == config.id && s.leader != config.id)
        log_step_down(s);
    if (s.leader == config.id) {
        log(log_level::info, "became leader" + term);
        led_term = s.term;
    } else if (s.leader != no_node)
        log(log_level::info, "following leader " + std::to_string(s.leader) + term);
    else if (logged_leader != config.id)
        log(log_level::info, "lost leader " + std::to_string(logged_leader) + term);
    logged_leader = s.leader;
}

void kv_service::impl::log_step_down(const node_status& s)
{
    // A node built again (after a storage failure) knows nothing of the leadership before.
    const step_down& d = s.last_step_down;
    if (d.term != led_term) {
        log(log_level::info, "stepped down: no longer leader (term " + std::to_string(s.term) + ")");
        return;
    }
    const std::string led = " (led term " + std::to_string(d.term) + ")";
    const std::string from = std::to_string(d.from);
    const std::string newer = std::to_string(d.newer_term);
    switch (d.reason) {
    case step_down_reason::newer_term:
        log(log_level::info, "stepped down: node " + from + " is in a newer term, " + newer +
                                 " (an election: it heard nothing from this leader for an election timeout, "
                                 "or a network fault between them healed)" +
                                 led);
        return;
    case step_down_reason::transferred:
        log(log_level::info,
            "stepped down: leadership handed to node " + from + " (term " + newer + ")" + led);
        return;
    case step_down_reason::check_quorum:
        log(log_level::warn,
            "stepped down: heard from no quorum of voters for an election timeout (a network "
            "fault, or followers stopped or overloaded)" +
                led);
        return;
    case step_down_reason::log_stalled:
        log(log_level::warn, "stepped down: its own log writes were not durable for an election timeout (a "
                             "slow or hung disk); a healthy node can lead meanwhile" +
                                 led);
        return;
    case step_down_reason::removed:
        log(log_level::info, "stepped down: no longer a voter in the configuration it committed" + led);
        return;
    case step_down_reason::none: break;
    }
    log(log_level::info, "stepped down: no longer leader" + led);
}

// A follower learns where to forward requests when it applies this. Proposed on a
// follower, it goes to the leader like any write.
void kv_service::impl::publish_http_address(term_t term, std::uint64_t tag)
{
    publishing = true;
    publish_checked = clock::now();
    const std::string address = config.advertise_http.to_string();
    node->driver.async_propose(
        encode_meta(http_meta_name(config.id, tag), address),
        boost::asio::bind_executor(strand, [this, term, address](boost::system::error_code ec, kv_result) {
            publishing = false;
            if (!ec) {
                published_term = term;
                log(log_level::debug,
                    "published http address " + address + " (term " + std::to_string(term) + ")");
            } else if (!stopped) {
                log(log_level::debug, "could not publish http address: " + ec.message());
            }
        }));
}

void kv_service::impl::await_handoff(node_id target, clock::time_point started, clock::time_point deadline,
                                     std::function<void(std::string)> done)
{
    if (!node)
        return done({});
    const node_status s = node->driver.status();
    const auto ms = [started] {
        return std::to_string(
            std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - started).count());
    };
    if (s.role != role::leader) {
        // Stepping down is not handing over: the target may have stopped too (a whole
        // cluster stopped at once). It is handed over once this node follows a leader.
        if (s.leader != no_node)
            return done("handed leadership to node " + std::to_string(s.leader) + " in " + ms() + " ms");
        if (clock::now() >= deadline)
            return done("stepped down, but saw no new leader within " + ms() + " ms (node " +
                        std::to_string(target) + " may have stopped too); stopping");
    } else if (clock::now() >= deadline) {
        return done("leadership transfer to node " + std::to_string(target) + " did not complete within " +
                    ms() + " ms; stopping as leader");
    }
    watch_timer.expires_after(std::chrono::milliseconds(config.tick_ms));
    watch_timer.async_wait(
        [this, target, started, deadline, done = std::move(done)](boost::system::error_code) mutable {
            await_handoff(target, started, deadline, std::move(done));
        });
}

// On the strand, before any message of the peer's connection is delivered: durable before
// the node can count on anything that peer says (its vote).
void kv_service::impl::record_incarnation(node_id peer, std::uint64_t incarnation)
{
    const auto tag = member_tags.find(peer);
    incarnations[peer] = peer_record{incarnation, tag == member_tags.end() ? 0 : tag->second};
    try {
        save_incarnations();
    } catch (const std::exception& e) {
        // Written again with the next change; a node whose storage failed counts on no peer.
        storage_failed(e.what());
        return;
    }
    log(log_level::debug, "recorded node " + std::to_string(peer) + "'s data directory, incarnation " +
                              raftkv::asio::detail::cluster_id_name(incarnation));
}

// A member removed from the configuration may be added back under its id with a new data
// directory (the way back for a node whose data was lost): its old one is no longer the
// one to insist on.
void kv_service::impl::forget_incarnations(const std::vector<node_id>& removed)
{
    bool changed = false;
    for (node_id id : removed) {
        transport->forget_incarnation(id);
        if (const auto record = incarnations.find(id); record != incarnations.end()) {
            std::lock_guard lock(retired_mutex);
            retired[id] = record->second.incarnation;
        }
        changed = incarnations.erase(id) != 0 || changed;
    }
    if (changed)
        save_incarnations();
}

// A peer greeted this node with another incarnation than its own. A directory made at this
// start (emptied, lost) may have forgotten a vote: the node stops, unless a peer greeted it
// meanwhile without objecting (every node of a new cluster greets the others at start) or
// the claim comes from outside the configuration. A directory from before the start, or
// one a peer accepted, may as well be intact and the peer's record wrong (a damaged or
// stale DATA_DIR/peers): one peer's word must not stop a healthy member, nor, one after the
// other, a whole cluster. The node runs on and says so; that peer's connections are
// refused either way, so nothing passes between the two.
void kv_service::impl::data_directory_replaced(node_id peer, const std::string& why)
{
    // Stopping already, for this reason: another peer's word adds nothing (and a peer that
    // greeted it meanwhile would have the line below say the opposite of the fatal one).
    if (fatal_reported)
        return;
    const std::string id = std::to_string(config.id);
    // A member added anew and joined at this start (an operator following the way back for
    // a lost directory) meets the record of a peer that missed its addition: nothing to do.
    if (config.joined_now && member_tags.contains(peer)) {
        if (reported_conflicts.insert(why).second)
            log(log_level::warn,
                why + ": node " + id +
                    " joined at this start, added to the cluster anew, and that peer has not yet seen the "
                    "change that added it (it was down, or is behind); it drops its record once it catches "
                    "up, and its connections are refused until then");
        return;
    }
    // A node outside the configuration (removed, and still running from its old directory)
    // speaks for nobody: its record may predate this member's removal and return.
    if (!config.incarnation_new || greeted_by_a_peer || !member_tags.contains(peer)) {
        if (reported_conflicts.insert(why).second)
            log(log_level::error,
                why +
                    ": this data directory predates this start, or peers greeted it since without objecting, "
                    "so either that peer's record is wrong (its DATA_DIR/peers file damaged or stale: with "
                    "that peer stopped, remove the file, whose entries are recorded again as the peers "
                    "connect), or this directory replaced the one that peer knew (emptied, lost, or a copy: "
                    "it may have forgotten a vote; remove node " +
                    id + " from the cluster, empty " + config.data_dir.string() +
                    ", add it back and start it with --join); that peer's connections are refused meanwhile");
        return;
    }
    report_fatal(
        why + ": this node's data was lost (it may have forgotten a vote), so it must not rejoin as node " +
        id + "; remove it from the cluster (DELETE /cluster/members/" + id + " on a member), empty " +
        config.data_dir.string() + ", and add it back and start it with --join");
}

// On the strand. Without a handler (in tests), the node is only closed.
void kv_service::impl::report_fatal(const std::string& why)
{
    if (fatal_reported || !on_fatal)
        return;
    fatal_reported = true;
    on_fatal(why);
}

boost::asio::ip::tcp::endpoint resolve_endpoint(boost::asio::any_io_executor ex, const host_port& address)
{
    tcp::resolver resolver(ex);
    boost::system::error_code ec;
    const auto results =
        resolver.resolve(address.host, std::to_string(address.port), tcp::resolver::numeric_service, ec);
    if (ec || results.empty())
        throw config_error("cannot resolve " + address.to_string() + ": " +
                           (ec ? ec.message() : std::string("no addresses")));
    return results.begin()->endpoint();
}

bool share_an_address(const tcp::resolver::results_type& a, const tcp::resolver::results_type& b)
{
    const auto plain = [](const boost::asio::ip::address& x) {
        return x.is_v6() && x.to_v6().is_v4_mapped()
                   ? boost::asio::ip::address(
                         boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, x.to_v6()))
                   : x;
    };
    for (const auto& x : a)
        for (const auto& y : b)
            if (plain(x.endpoint().address()) == plain(y.endpoint().address()))
                return true;
    return false;
}

// Resolves every address before anything is opened, so a bad one changes nothing on disk.
kv_service::kv_service(boost::asio::any_io_executor ex, const server_config& config)
{
    raft_endpoints endpoints;
    endpoints.listen_on = resolve_endpoint(ex, config.raft);
    for (const auto& [id, address] : config.peers)
        if (id != config.id)
            endpoints.peers.emplace(id, resolve_endpoint(ex, address));
    impl_ = std::make_unique<impl>(std::move(ex), config, std::move(endpoints));
}

kv_service::~kv_service() = default;

void kv_service::on_fatal(std::function<void(std::string)> handler)
{
    impl_->on_fatal = std::move(handler);
}

void kv_service::start()
{
    impl_->node->driver.start();
    boost::asio::post(impl_->strand, [this] {
        if (!impl_->stopped) {
            // The driver has no leadership callback: its status is polled every tick (a
            // mutex and a copy).
            impl_->repeat(impl_->watch_timer, std::chrono::milliseconds(impl_->config.tick_ms),
                          &impl::observe);
            impl_->measure_state();
            impl_->repeat(impl_->quota_timer, state_measure_interval, &impl::measure_state);
        }
    });
}

void kv_service::hand_off_leadership(std::chrono::milliseconds limit, std::function<void(std::string)> done)
{
    boost::asio::post(impl_->strand, [this, limit, done = std::move(done)]() mutable {
        impl_->stopped = true; // the watcher's timer now serves the handoff
        impl_->watch_timer.cancel();
        impl_->probe_timer.cancel();
        impl_->quota_timer.cancel();
        const std::shared_ptr<raft_node> n = impl_->node;
        if (!n || n->driver.status().role != role::leader)
            return done({});
        // The node knows which voter matches the most of the log among those it heard from.
        n->driver.post([this, n, limit, done = std::move(done)](auto& node) mutable {
            node_id target = n->driver.failed() ? no_node : node.successor();
            if (target != no_node) {
                if (const std::error_code ec = node.transfer_leadership(target)) {
                    log(log_level::warn,
                        "cannot hand leadership to node " + std::to_string(target) + ": " + ec.message());
                    target = no_node; // nothing to wait for
                }
            }
            boost::asio::post(impl_->strand, [this, target, limit, done = std::move(done)]() mutable {
                if (target == no_node)
                    return done({});
                const auto now = clock::now();
                log(log_level::info,
                    "handing leadership to node " + std::to_string(target) + " before stopping");
                impl_->await_handoff(target, now, now + limit, std::move(done));
            });
        });
    });
}

void kv_service::stop()
{
    impl_->journal.close();
    if (const std::shared_ptr<raft_node> n = impl_->current())
        n->driver.stop();
    boost::asio::post(impl_->strand, [this] {
        impl_->stopped = true;
        impl_->watch_timer.cancel();
        impl_->probe_timer.cancel();
        impl_->quota_timer.cancel();
        impl_->transport->stop();
        // A node rebuilt meanwhile was not running yet when the driver above was stopped.
        if (impl_->node)
            impl_->node->driver.stop();
    });
}

// Not coroutines: the command is made here and moved into propose()'s frame.
boost::asio::awaitable<write_result> kv_service::put(std::string key, std::string value)
{
    return impl_->propose(encode_put(key, value), false);
}

boost::asio::awaitable<write_result> kv_service::set_http_address(node_id id, std::string address)
{
    return impl_->propose(encode_meta(http_meta_name(id, member_tag(impl_->status().members, id)), address),
                          false);
}

boost::asio::awaitable<write_result> kv_service::del(std::string key)
{
    return impl_->propose(encode_del(key), false);
}

boost::asio::awaitable<write_result> kv_service::put(std::string key, std::string value, kv_precondition pre,
                                                     std::optional<kv_client_session> session)
{
    return impl_->propose(session ? encode_put(key, value, pre, *session) : encode_put(key, value, pre),
                          session.has_value());
}

boost::asio::awaitable<write_result> kv_service::del(std::string key, kv_precondition pre,
                                                     std::optional<kv_client_session> session)
{
    return impl_->propose(session ? encode_del(key, pre, *session) : encode_del(key, pre),
                          session.has_value());
}

boost::asio::awaitable<read_result> kv_service::get(std::string key)
{
    read_result r = co_await get(std::move(key), read_consistency::linearizable);
    co_return r;
}

namespace {

/// Where a read may go ahead on `n`, as `consistency` says: at once for a stale read (the
/// applied index published after the node's last input, which only grows), else after the
/// driver allowed it. Nothing when the driver refused, with its error in `ec`.
/// A read that failed because the leader changed under it (or none was known) is tried
/// again once there is one, within `deadline`: a read changes nothing, so trying it again is
/// always safe.
boost::asio::awaitable<std::optional<std::pair<index_t, read_path>>>
read_point(raft_node& n, read_consistency consistency, std::error_code& ec, const server_config& c,
           bool removed)
{
    if (consistency == read_consistency::stale && removed) {
        ec = make_error_code(raftkv::errc::not_a_member); // its state never catches up again
        co_return std::nullopt;
    }
    if (consistency == read_consistency::stale)
        co_return std::pair{n.driver.applied_index(), read_path::stale};
    const auto mode = consistency == read_consistency::lease ? raftkv::asio::read_mode::lease
                                                             : raftkv::asio::read_mode::linearizable;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(c.request_timeout_ms);
    std::optional<boost::asio::steady_timer> pause;
    for (;;) {
        auto [error, info] =
            co_await n.driver.async_read(mode, boost::asio::as_tuple(boost::asio::use_awaitable));
        ec = error;
        if (!ec)
            co_return std::pair{info.applied_index, info.lease ? read_path::lease : read_path::read_index};
        // not_leader: the node knew no leader when the read started (an election, or the
        // moment of a transfer, this node perhaps taking over), whatever a status that has
        // not caught up yet says: wait for one, as for a write.
        const bool retry = ec == raftkv::errc::leadership_lost || ec == raftkv::errc::not_leader;
        if (!retry || std::chrono::steady_clock::now() + transfer_retry_pause >= deadline)
            co_return std::nullopt;
        // A pause first: a leader that keeps changing must not make this a busy loop.
        co_await short_pause(pause);
        if (!co_await wait_for_leader(
                n, std::min(deadline, std::chrono::steady_clock::now() + leader_wait(c)), pause))
            co_return std::nullopt;
    }
}

} // namespace

boost::asio::awaitable<read_result> kv_service::get(std::string key, read_consistency consistency)
{
    const std::shared_ptr<raft_node> n = impl_->current();
    if (!n)
        co_return read_result{make_error_code(raftkv::errc::node_failed), std::nullopt};
    std::error_code ec;
    const auto at = co_await read_point(*n, consistency, ec, impl_->config, removed());
    if (!at)
        co_return read_result{ec, std::nullopt};
    // Linearizable or lease: the read index is applied, so the state machine reflects every
    // earlier acknowledged write. Stale: it reflects at least the entries up to at->first.
    auto read = impl_->read_state(n, [&key](const auto& machine) { return machine.get_versioned(key); });
    if (!read)
        co_return read_result{make_error_code(raftkv::errc::node_failed), std::nullopt};
    std::optional<raftkv::leveldb::kv_versioned_value>& v = *read;
    if (!v)
        co_return read_result{{}, std::nullopt, at->first, at->second, 0};
    co_return read_result{{}, std::move(v->value), at->first, at->second, v->version};
}

boost::asio::awaitable<scan_result> kv_service::scan(std::string prefix, std::string after, std::size_t limit,
                                                     bool keys_only, read_consistency consistency)
{
    const std::shared_ptr<raft_node> n = impl_->current();
    if (!n)
        co_return scan_result{make_error_code(raftkv::errc::node_failed), {}, false};
    std::error_code ec;
    const auto at = co_await read_point(*n, consistency, ec, impl_->config, removed());
    if (!at)
        co_return scan_result{ec, {}, false};
    // Built one at a time server-wide, with their answers (scan_result::turn).
    std::shared_ptr<void> turn = co_await impl_->scan_builds.enter();
    raftkv::leveldb::kv_scan_options options;
    options.prefix = std::move(prefix);
    options.after = std::move(after);
    options.limit = limit;
    options.max_bytes = max_scan_bytes;
    options.keys_only = keys_only;
    // The read index is applied, as for get(): the page reflects every earlier acknowledged write.
    auto read = impl_->read_state(n, [&options](const auto& machine) { return machine.scan(options); });
    if (!read)
        co_return scan_result{make_error_code(raftkv::errc::node_failed), {}, false};
    raftkv::leveldb::kv_scan_page& page = *read;
    co_return scan_result{{},         std::move(page.items),    page.more,      at->first,
                          at->second, std::move(page.versions), std::move(turn)};
}

struct backup_source::impl {
    std::shared_ptr<raft_node> node; // keeps the machine the reader reads open
    raftkv::leveldb::kv_state_machine::snapshot_reader reader;
};

backup_source::backup_source(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
backup_source::~backup_source() = default;

index_t backup_source::index() const noexcept
{
    return impl_->reader.index();
}

bool backup_source::read(std::string& out, std::size_t max_bytes)
{
    return impl_->reader.read(out, max_bytes);
}

boost::asio::awaitable<std::pair<std::error_code, std::unique_ptr<backup_source>>> kv_service::backup()
{
    using result = std::pair<std::error_code, std::unique_ptr<backup_source>>;
    const std::shared_ptr<raft_node> n = impl_->current();
    if (!n)
        co_return result{make_error_code(raftkv::errc::node_failed), nullptr};
    std::error_code ec;
    if (!co_await read_point(*n, read_consistency::linearizable, ec, impl_->config, false))
        co_return result{ec, nullptr};
    // A LevelDB snapshot of the state, as of an applied index at or past the read index.
    auto reader = impl_->read_state(n, [](const auto& machine) { return machine.snapshot(); });
    if (!reader)
        co_return result{make_error_code(raftkv::errc::node_failed), nullptr};
    auto source = std::make_unique<backup_source>(
        std::make_unique<backup_source::impl>(backup_source::impl{n, std::move(*reader)}));
    co_return result{std::error_code{}, std::move(source)};
}

void kv_service::read_barrier(std::function<void(std::error_code)> done)
{
    const std::shared_ptr<raft_node> n = impl_->current();
    if (!n)
        return done(make_error_code(raftkv::errc::node_failed));
    n->driver.async_read(boost::asio::bind_executor(
        impl_->strand, [n, done = std::move(done)](boost::system::error_code ec) { done(ec); }));
}

boost::asio::awaitable<change_result> kv_service::change_membership(std::vector<config_change> changes)
{
    auto attempt = [this, &changes](clock::time_point deadline) -> boost::asio::awaitable<change_result> {
        const std::shared_ptr<raft_node> n = impl_->current();
        if (!n)
            co_return change_result{make_error_code(raftkv::errc::node_failed), 0};
        auto [ec, index] = co_await n->driver.async_change_membership(
            changes, deadline, boost::asio::as_tuple(boost::asio::use_awaitable));
        co_return change_result{ec, index};
    };
    co_return co_await retry_while_transferring<change_result>(
        std::move(attempt), std::chrono::milliseconds(impl_->config.request_timeout_ms));
}

boost::asio::awaitable<std::map<node_id, index_t>> kv_service::match_indexes()
{
    auto read = [](driver_type::node_type& node) {
        std::map<node_id, index_t> out;
        for (node_id id : member_ids(node.members()))
            if (const std::optional<index_t> match = node.match_of(id))
                out.emplace(id, *match);
        return out;
    };
    const std::shared_ptr<raft_node> n = impl_->current();
    if (!n)
        co_return std::map<node_id, index_t>{};
    co_return co_await on_node<std::map<node_id, index_t>>(n->driver, std::move(read), {});
}

boost::asio::awaitable<std::set<node_id>> kv_service::answering_members()
{
    auto read = [](driver_type::node_type& node) {
        std::set<node_id> out;
        for (node_id id : member_ids(node.members()))
            if (node.answers(id))
                out.insert(id);
        return out;
    };
    const std::shared_ptr<raft_node> n = impl_->current();
    if (!n)
        co_return std::set<node_id>{};
    co_return co_await on_node<std::set<node_id>>(n->driver, std::move(read), {});
}

boost::asio::awaitable<std::error_code> kv_service::transfer_leadership(node_id target,
                                                                        std::chrono::milliseconds timeout)
{
    const auto deadline = clock::now() + timeout;
    const std::error_code failed = make_error_code(raftkv::errc::node_failed);
    const std::shared_ptr<raft_node> n = impl_->current();
    if (!n)
        co_return failed;
    auto start = [target](driver_type::node_type& node) { return node.transfer_leadership(target); };
    const std::error_code ec = co_await on_node<std::error_code>(n->driver, std::move(start), failed);
    if (ec)
        co_return ec;
    boost::asio::steady_timer pause(co_await boost::asio::this_coro::executor);
    while (n->driver.status().leader != target) {
        if (n->driver.failed())
            co_return failed;
        if (clock::now() >= deadline)
            co_return make_error_code(raftkv::errc::timeout);
        pause.expires_after(std::chrono::milliseconds(impl_->config.tick_ms));
        co_await pause.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
    co_return std::error_code{};
}

std::chrono::milliseconds kv_service::election_timeout() const
{
    return std::chrono::milliseconds(std::uint64_t{2} * impl_->config.election_ticks * impl_->config.tick_ms);
}

node_id kv_service::id() const
{
    return impl_->config.id;
}

node_id kv_service::leader() const
{
    const std::shared_ptr<raft_node> n = impl_->current();
    return n ? n->driver.status().leader : no_node;
}

bool kv_service::removed() const
{
    return impl_->removed.load(std::memory_order_relaxed);
}

std::optional<std::string> kv_service::http_address(node_id id) const
{
    if (id == impl_->config.id)
        return impl_->config.advertise_http.to_string();
    return impl_->http_address_of(impl_->status().members, id);
}

std::optional<std::string> kv_service::replicated_http_address(node_id id) const
{
    return impl_->published_http_address(impl_->status().members, id);
}

std::uint64_t kv_service::retired_incarnation(node_id id) const
{
    std::lock_guard lock(impl_->retired_mutex);
    const auto it = impl_->retired.find(id);
    return it == impl_->retired.end() ? 0 : it->second;
}

service_status kv_service::status() const
{
    const node_status s = impl_->status();
    service_status out{s, {}, impl_->config.cluster_id, {}, impl_->admitted.load(std::memory_order_relaxed)};
    {
        std::lock_guard lock(impl_->node_mutex);
        out.removal_heard = impl_->removal_heard;
    }
    const membership& m = s.members;
    // A node that heard of its removal lists the members of its log without itself: its list
    // is out of date, and says so as the list of a node removed through its log does.
    const bool heard = out.removal_heard && s.leader == no_node;
    peer_incarnations recorded;
    {
        std::lock_guard lock(impl_->retired_mutex);
        recorded = impl_->recorded;
    }
    for (node_id id : member_ids(m)) {
        if (heard && id == s.id)
            continue;
        member_status member{id, {}, impl_->http_address_of(m, id), member_role::voter, std::nullopt};
        if (std::optional<host_port> raft = impl_->raft_address_of(m, id))
            member.raft = raft->to_string();
        if (std::find(m.voters.begin(), m.voters.end(), id) == m.voters.end())
            member.role = m.is_learner(id) ? member_role::learner : member_role::outgoing;
        // A record of an earlier addition of the member (it was removed and added back since)
        // is about to be dropped: it says nothing of the member now.
        if (const auto r = recorded.find(id); r != recorded.end() && id != s.id)
            if (const std::uint64_t added = member_tag(m, id);
                r->second.added == added || r->second.added == 0)
                member.incarnation = r->second.incarnation;
        out.members.push_back(std::move(member));
    }
    return out;
}

boost::asio::awaitable<metrics_inputs> kv_service::metrics()
{
    metrics_inputs in;
    if (const std::shared_ptr<raft_node> n = impl_->current()) {
        node_metrics m = co_await n->driver.async_metrics(boost::asio::use_awaitable);
        in.node = std::move(m);
        in.wal = n->store.stats();
        in.wal_segments = n->store.segment_count();
        const raftkv::leveldb::kv_state_machine_stats machine = n->machine.stats();
        in.apply_ns = machine.apply_ns;
        in.checkpoint_ns = machine.checkpoint_ns;
        in.state_compactions = n->machine.compactions();
    }
    in.state_bytes = impl_->state_bytes.load();
    in.quota_bytes = impl_->config.quota_bytes;
    in.quota_refusals = impl_->quota_refusals.load();
    // After the counters, so that no peer's match index is ahead of the last index shown.
    in.status = impl_->status();
    in.storage_failed = storage().failed();
    in.removed = removed();
    in.watchers = impl_->journal.watchers();
    in.watch_history_entries = impl_->journal.size();
    in.watch_history_bytes = impl_->journal.bytes();
    in.write_retries = impl_->write_retries.load(std::memory_order_relaxed);
    co_return in;
}

change_journal& kv_service::changes()
{
    return impl_->journal;
}

std::uint64_t kv_service::state_bytes() const
{
    return impl_->state_bytes.load();
}

std::uint64_t kv_service::quota_bytes() const
{
    return impl_->config.quota_bytes;
}

bool kv_service::over_quota() const
{
    return impl_->config.quota_bytes != 0 && impl_->state_bytes.load() > impl_->config.quota_bytes;
}

void kv_service::count_quota_refusal()
{
    ++impl_->quota_refusals;
}

void kv_service::reload_peer_tls()
{
    impl_->transport->reload_tls();
}

storage_status kv_service::storage() const
{
    std::lock_guard lock(impl_->node_mutex);
    return impl_->storage;
}

storage_report inspect_storage(const std::filesystem::path& data_dir)
{
    const std::filesystem::path wal = log_directory(data_dir);
    if (!std::filesystem::is_directory(wal))
        throw std::runtime_error(data_dir.string() + " holds no Raft log (no " + wal.string() + ")");
    storage_report r;
    // The log stays open (and locked) while the state is read: a start cannot slip in
    // between, and the report is of one moment.
    const raftkv::wal::log_store store(wal, {.read_only = true});
    r.hard = store.saved_hard_state();
    r.first_index = store.first_index();
    r.last_index = store.last_index();
    r.last_term = store.term_at(r.last_index);
    r.segments = store.segment_count();
    r.configuration = raftkv::configuration_in_force(store);
    if (const auto& torn = store.recovered_torn_tail())
        r.torn_tail = "a start cuts " + std::to_string(torn->bytes) + " bytes torn at the end of " +
                      torn->segment.filename().string() + " (offset " + std::to_string(torn->offset) + ")";
    // A term is recorded before any entry of it: a hard state behind the log was damaged.
    if (r.hard.term < r.last_term)
        r.problems.push_back("the hard state is at term " + std::to_string(r.hard.term) +
                             " but the log holds entries of term " + std::to_string(r.last_term) +
                             ": the hard state was damaged or replaced, and with it the vote cast in a "
                             "later term (a start refuses it)");
    const std::filesystem::path state = data_dir / "state";
    std::error_code ec;
    if (std::filesystem::exists(state, ec) && !std::filesystem::is_directory(state, ec)) {
        r.problems.push_back(state.string() + " is not a directory (a start fails on it)");
        return r;
    }
    r.has_state = std::filesystem::is_directory(state, ec);
    if (!r.has_state)
        return r;
    try {
        change_journal journal;
        raftkv::leveldb::kv_state_machine_options options = machine_options(journal);
        options.read_only = true;
        raftkv::leveldb::kv_state_machine machine(state, options);
        r.applied_index = machine.applied_index();
        r.checkpoint_index = machine.snapshot_index();
        r.state_readable = true;
        r.state_log_damaged = machine.skipped_damaged_log();
        // As a start reads it: the records of the applied batches, for the watch journal.
        try {
            (void)machine.applied_history();
        } catch (const std::exception& e) {
            r.problems.push_back(std::string("the state cannot be read: ") + e.what());
        }
        if (r.applied_index > r.last_index)
            r.problems.push_back("the state applied index " + std::to_string(r.applied_index) +
                                 " but the log ends at index " + std::to_string(r.last_index) +
                                 ": the log lost entries (a start refuses it)");
        // LevelDB reads a table only when a read or a compaction needs it, so damage shows
        // at a start only where a start reads: every table is read here.
        for (const std::string& damage : machine.damaged_tables())
            r.problems.push_back("the state's table " + damage +
                                 ": the state is damaged (a node goes out of service when it reads there); "
                                 "empty the data directory and add the node back, or restore a backup");
    } catch (const std::exception& e) {
        r.state_readable = false;
        r.problems.push_back(std::string("the state cannot be opened (a start fails on it): ") + e.what());
    }
    return r;
}

std::optional<raftkv::membership> logged_configuration(const std::filesystem::path& data_dir)
{
    const std::filesystem::path wal = log_directory(data_dir);
    if (!std::filesystem::is_directory(wal))
        return std::nullopt;
    raftkv::wal::log_store store(wal);
    return raftkv::configuration_in_force(store);
}

std::chrono::seconds next_storage_probe_interval(std::chrono::seconds previous)
{
    if (previous < storage_probe_first_interval)
        return storage_probe_first_interval;
    if (previous >= storage_probe_max_interval / 2)
        return storage_probe_max_interval;
    return 2 * previous;
}

const char* to_string(member_role r)
{
    switch (r) {
    case member_role::voter: return "voter";
    case member_role::learner: return "learner";
    case member_role::outgoing: return "outgoing";
    }
    return "voter";
}

} // namespace raftkv::server
