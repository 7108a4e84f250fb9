#include "kv_service.hpp"

#include "log.hpp"
#include "peer_incarnations.hpp"

#include <raftkv/asio/detail/greeting.hpp>
#include <raftkv/asio/driver.hpp>
#include <raftkv/asio/tcp_transport.hpp>
#include <raftkv/kv_command.hpp>
#include <raftkv/leveldb/kv_state_machine.hpp>
#include <raftkv/wal/log_store.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <random>

namespace raftkv::server {

namespace {

using driver_type = raftkv::asio::driver<raftkv::asio::tcp_transport, raftkv::wal::log_store,
                                         raftkv::leveldb::kv_state_machine>;
using boost::asio::ip::tcp;

/// The meta record holding the HTTP address `id` published when it became leader.
std::string http_meta_name(node_id id)
{
    return "node." + std::to_string(id) + ".http";
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
raftkv::leveldb::kv_state_machine_options machine_options()
{
    raftkv::leveldb::kv_state_machine_options o;
    o.sync = false;
    return o;
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

using clock = std::chrono::steady_clock;

/// What this node last heard from a peer, for choosing whom to hand leadership to.
struct peer_seen {
    clock::time_point at{};
    term_t term = 0;
    /// The highest match index the peer acknowledged in `term`.
    index_t match = 0;
};

struct kv_service::impl {
    impl(boost::asio::any_io_executor ex, const server_config& c, raft_endpoints endpoints);
    ~impl();

    boost::asio::awaitable<write_result> propose(std::string command);
    void schedule_watch();
    void observe();
    void log_leader_change(const node_status& s);
    void publish_http_address(term_t term);
    void note_peer(const message& m);
    node_id handoff_target() const;
    void await_handoff(node_id target, clock::time_point started, clock::time_point deadline,
                       std::function<void(std::string)> done);
    void record_incarnation(node_id peer, std::uint64_t incarnation);
    void data_directory_replaced(const std::string& why);

    // Destroyed in reverse order: the driver before the policies it uses.
    server_config config;
    driver_type::executor_type strand;
    raftkv::wal::log_store store;
    raftkv::leveldb::kv_state_machine machine;
    std::unique_ptr<raftkv::asio::tcp_transport> transport;
    std::unique_ptr<driver_type> driver;

    // Touched on `strand` only.
    boost::asio::steady_timer watch_timer;
    bool stopped = false;
    bool publishing = false;
    term_t published_term = 0;
    node_id logged_leader = no_node;
    std::map<node_id, peer_seen> seen;
    peer_incarnations incarnations; // as in DATA_DIR/peers
    std::function<void(std::string)> on_fatal;
    bool fatal_reported = false;
};

kv_service::impl::impl(boost::asio::any_io_executor ex, const server_config& c, raft_endpoints endpoints)
    : config(c), strand(boost::asio::make_strand(ex)), store(log_directory(c.data_dir)),
      machine(c.data_dir / "state", machine_options()), watch_timer(strand)
{
    try {
        // A restarted peer should rejoin within about an election timeout, not after the
        // transport's default 2 s backoff ceiling.
        raftkv::asio::tcp_transport_options t;
        t.reconnect_delay_max = std::chrono::milliseconds(250);
        t.cluster_id = c.cluster_id;
        incarnations = read_peer_incarnations(c.data_dir);
        t.incarnation = c.incarnation;
        t.known_incarnations = incarnations;
        t.on_incarnation_learned = [this](node_id peer, std::uint64_t incarnation) {
            record_incarnation(peer, incarnation);
        };
        t.on_identity_conflict = [this](const std::string& why) { data_directory_replaced(why); };
        transport = std::make_unique<raftkv::asio::tcp_transport>(
            strand, c.id, std::move(endpoints.peers), endpoints.listen_on,
            [this](message m) {
                note_peer(m);
                driver->deliver(std::move(m));
            },
            t);
    } catch (const boost::system::system_error& e) {
        throw std::runtime_error("cannot listen for Raft on " + c.raft.to_string() + ": " +
                                 e.code().message());
    }

    raftkv::options o;
    o.id = c.id;
    for (const auto& [id, address] : c.peers)
        o.members.voters.push_back(id);
    o.election_ticks = c.election_ticks;
    o.heartbeat_ticks = c.heartbeat_ticks;
    o.snapshot_entries = c.snapshot_entries;
    if (c.snapshot_entries == 0)
        o.snapshot_bytes = 0; // 0 disables snapshots, not only the count trigger
    o.snapshot_catchup_entries = c.snapshot_catchup_entries;
    o.random_seed = random_seed();
    raftkv::asio::driver_options d;
    d.tick_interval = std::chrono::milliseconds(c.tick_ms);
    d.proposal_timeout = std::chrono::milliseconds(c.request_timeout_ms);
    d.read_timeout = std::chrono::milliseconds(c.request_timeout_ms);
    driver = std::make_unique<driver_type>(strand, std::move(o), *transport, store, machine, d);
    store.on_durable([this] { driver->log_durable(); });
}

kv_service::impl::~impl()
{
    store.on_durable({}); // the driver goes first
}

boost::asio::awaitable<write_result> kv_service::impl::propose(std::string command)
{
    auto [ec, result] =
        co_await driver->async_propose(std::move(command), boost::asio::as_tuple(boost::asio::use_awaitable));
    co_return write_result{ec, result.found};
}

// Polls the driver's status every tick: the driver has no leadership callback, and a
// status read is a mutex and a copy.
void kv_service::impl::schedule_watch()
{
    watch_timer.expires_after(std::chrono::milliseconds(config.tick_ms));
    watch_timer.async_wait([this](boost::system::error_code ec) {
        if (ec || stopped)
            return;
        observe();
        schedule_watch();
    });
}

void kv_service::impl::observe()
{
    const node_status s = driver->status();
    if (s.leader != logged_leader)
        log_leader_change(s);
    if (s.role == role::leader && s.term != published_term && !publishing)
        publish_http_address(s.term);
}

void kv_service::impl::log_leader_change(const node_status& s)
{
    const std::string term = " (term " + std::to_string(s.term) + ")";
    if (s.leader == config.id)
        log(log_level::info, "became leader" + term);
    else if (s.leader != no_node)
        log(log_level::info, "following leader " + std::to_string(s.leader) + term);
    else
        log(log_level::info, "lost leader " + std::to_string(logged_leader) + term);
    logged_leader = s.leader;
}

// Once per term led: a follower learns where to forward requests when it applies this.
void kv_service::impl::publish_http_address(term_t term)
{
    publishing = true;
    const std::string address = config.advertise_http.to_string();
    driver->async_propose(
        encode_meta(http_meta_name(config.id), address),
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

// Runs on the strand, like the receive handler that calls it.
void kv_service::impl::note_peer(const message& m)
{
    peer_seen& p = seen[m.from];
    p.at = clock::now();
    if (m.term != p.term) {
        p.term = m.term;
        p.match = 0;
    }
    if (const auto* r = std::get_if<append_response>(&m.body); r && r->success)
        p.match = std::max(p.match, r->match_index);
}

/// The peer that acknowledged the most of this term's log among those heard from within
/// an election timeout (the lowest id on a tie); any other member if none was.
node_id kv_service::impl::handoff_target() const
{
    const term_t term = driver->status().term;
    const auto recent = clock::now() - std::chrono::milliseconds(config.tick_ms) * config.election_ticks;
    node_id best = no_node;
    index_t best_match = 0;
    for (const auto& [id, p] : seen) {
        if (id == config.id || !config.peers.contains(id) || p.at < recent || p.term != term)
            continue;
        if (best == no_node || p.match > best_match) {
            best = id;
            best_match = p.match;
        }
    }
    if (best != no_node)
        return best;
    for (const auto& [id, address] : config.peers)
        if (id != config.id)
            return id;
    return no_node;
}

void kv_service::impl::await_handoff(node_id target, clock::time_point started, clock::time_point deadline,
                                     std::function<void(std::string)> done)
{
    const node_status s = driver->status();
    const auto ms = [started] {
        return std::to_string(
            std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - started).count());
    };
    if (s.role != role::leader) {
        const std::string to = s.leader != no_node ? std::to_string(s.leader) : std::to_string(target);
        return done("handed leadership to node " + to + " in " + ms() + " ms");
    }
    if (clock::now() >= deadline)
        return done("leadership transfer to node " + std::to_string(target) + " did not complete within " +
                    ms() + " ms; stopping as leader");
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
    incarnations[peer] = incarnation;
    write_peer_incarnations(config.data_dir, incarnations);
    log(log_level::debug, "recorded node " + std::to_string(peer) + "'s data directory, incarnation " +
                              raftkv::asio::detail::cluster_id_name(incarnation));
}

void kv_service::impl::data_directory_replaced(const std::string& why)
{
    if (fatal_reported || !on_fatal)
        return;
    fatal_reported = true;
    const std::string id = std::to_string(config.id);
    on_fatal(why +
             ": this node's data was lost (it may have forgotten a vote), so it must not rejoin as node " +
             id + "; remove it from the cluster (DELETE /cluster/members/" + id + " on a member), empty " +
             config.data_dir.string() + ", and add it back and start it with --join");
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
    impl_->driver->start();
    boost::asio::post(impl_->strand, [this] {
        if (!impl_->stopped)
            impl_->schedule_watch();
    });
}

void kv_service::hand_off_leadership(std::chrono::milliseconds limit, std::function<void(std::string)> done)
{
    boost::asio::post(impl_->strand, [this, limit, done = std::move(done)]() mutable {
        impl_->stopped = true; // the watcher's timer now serves the handoff
        impl_->watch_timer.cancel();
        if (impl_->driver->status().role != role::leader)
            return done({});
        const node_id target = impl_->handoff_target();
        if (target == no_node)
            return done({});
        impl_->driver->post([target](auto& node) {
            if (const std::error_code ec = node.transfer_leadership(target))
                log(log_level::warn,
                    "cannot hand leadership to node " + std::to_string(target) + ": " + ec.message());
        });
        const auto now = clock::now();
        log(log_level::info, "handing leadership to node " + std::to_string(target) + " before stopping");
        impl_->await_handoff(target, now, now + limit, std::move(done));
    });
}

void kv_service::stop()
{
    impl_->driver->stop();
    boost::asio::post(impl_->strand, [this] {
        impl_->stopped = true;
        impl_->watch_timer.cancel();
        impl_->transport->stop();
    });
}

boost::asio::awaitable<write_result> kv_service::put(std::string key, std::string value)
{
    co_return co_await impl_->propose(encode_put(key, value));
}

boost::asio::awaitable<write_result> kv_service::del(std::string key)
{
    co_return co_await impl_->propose(encode_del(key));
}

boost::asio::awaitable<read_result> kv_service::get(std::string key)
{
    auto [ec] = co_await impl_->driver->async_read(boost::asio::as_tuple(boost::asio::use_awaitable));
    if (ec)
        co_return read_result{ec, std::nullopt};
    // The read index is applied: the state machine reflects every earlier acknowledged write.
    co_return read_result{{}, impl_->machine.get(key)};
}

node_id kv_service::id() const
{
    return impl_->config.id;
}

node_id kv_service::leader() const
{
    return impl_->driver->status().leader;
}

std::optional<std::string> kv_service::http_address(node_id id) const
{
    if (id == impl_->config.id)
        return impl_->config.advertise_http.to_string();
    return impl_->machine.get_meta(http_meta_name(id));
}

service_status kv_service::status() const
{
    const node_status s = impl_->driver->status();
    service_status out{s, {}};
    for (const auto& [id, address] : impl_->config.peers)
        out.members.push_back(member_status{id, address.to_string(), http_address(id)});
    return out;
}

} // namespace raftkv::server
