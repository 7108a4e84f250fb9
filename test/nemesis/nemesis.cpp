#include "nemesis.hpp"

#include "netns.hpp"
#include "proxy.hpp"
#include "recording_clients.hpp"

#include <boost/test/unit_test.hpp>

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace raftkv::nemesis {

namespace {

using namespace raftkv::e2e;
using std::chrono::milliseconds;
using ids = std::vector<std::uint64_t>;

enum class fault {
    kill_leader,
    kill_node,
    pause_leader,
    pause_node,
    split,             ///< a random minority cut off from the majority
    isolate_leader,    ///< the leader cut off from everyone
    one_way,           ///< one node's messages to the others lost, or theirs to it, not both
    bridge,            ///< two halves that do not see each other, and one node both see
    slow_node,         ///< every link to and from one node delayed
    disk_stall_leader, ///< the leader's writes and syncs to files hang (io_pause_shim.cpp)
    disk_stall_node,   ///< the same on any node
    membership,        ///< a learner added, another fault, the learner removed during it
    join,              ///< a real node joins (--join), is promoted and removed, during another fault
};
/// The faults one_fault() picks from; the first `plain_faults` can also be combined.
constexpr int fault_kinds = 13;
constexpr int plain_faults = 11;

const char* name(fault f)
{
    switch (f) {
    case fault::kill_leader: return "kill-leader";
    case fault::kill_node: return "kill-node";
    case fault::pause_leader: return "pause-leader";
    case fault::pause_node: return "pause-node";
    case fault::split: return "split";
    case fault::isolate_leader: return "isolate-leader";
    case fault::one_way: return "one-way";
    case fault::bridge: return "bridge";
    case fault::slow_node: return "slow-node";
    case fault::disk_stall_leader: return "disk-stall-leader";
    case fault::disk_stall_node: return "disk-stall-node";
    case fault::membership: return "membership";
    case fault::join: return "join";
    }
    return "?";
}

std::string list(const ids& v)
{
    std::string out = "{";
    for (auto id : v) {
        // Not (... ? "," : "") + std::to_string(id): GCC 12 at -O3 reports a false
        // -Wrestrict on operator+(const char*, std::string&&).
        if (out.size() > 1)
            out += ",";
        out += std::to_string(id);
    }
    return out + "}";
}

/// Injects faults into one cluster and undoes them; its choices come from one seeded
/// generator, and every action goes into a timestamped log (the history's clock, in ms).
class nemesis {
public:
    /// `joiner`: a node of `c` added with cluster::add_node(), not started, for the join fault.
    /// `disks`: whether the nodes run with the disk-pause library (enable_disk_pauses()); if not,
    /// a disk fault drawn from the seed pauses the process instead (SIGSTOP), and says so.
    /// `lab`: when the nodes run in network namespaces, links are cut there (packets
    /// dropped) rather than in the proxy.
    nemesis(cluster& c, proxy& p, netns_lab* lab, recording_clients& clock, std::uint64_t seed,
            std::size_t nodes, std::uint64_t joiner, bool disks)
        : c_(c), p_(p), lab_(lab), clock_(clock), rng_(seed), n_(nodes), joiner_(joiner), disks_(disks)
    {
    }

    /// One fault (a quarter of the time two), applied, held for 0.5-3 s, undone.
    void one_fault()
    {
        const auto f = static_cast<fault>(pick(fault_kinds));
        ++counts_[name(f)];
        if (f == fault::join)
            return join_during_fault();
        if (f == fault::membership) {
            add_learner();
            const auto other = static_cast<fault>(pick(plain_faults));
            log(std::string("during the membership change: ") + name(other));
            apply(other);
            hold(between(300, 1500));
            remove_learner(2s);
            hold(between(200, 1500));
            undo();
            return;
        }
        apply(f);
        if (pick(4) == 0) { // now and then two at once
            const auto second = static_cast<fault>(pick(plain_faults));
            ++counts_[std::string("+") + name(second)];
            log(std::string("and at the same time: ") + name(second));
            apply(second);
        }
        hold(between(500, 3000));
        undo();
    }

    /// A healthy period of 0.5-2 s.
    void rest() { hold(between(500, 2000)); }

    /// Heals every link, resumes and restarts every node, and removes the learner if one
    /// was added. False, with the reason logged, if a member could not be removed.
    bool heal_everything(milliseconds bound)
    {
        undo();
        if (learner_added_)
            remove_learner(bound);
        if (joined_)
            remove_joiner(bound);
        return !learner_added_ && !joined_;
    }

    std::string log_text() const { return log_.str(); }
    std::string fault_counts() const
    {
        std::string out;
        for (const auto& [k, v] : counts_)
            out += (out.empty() ? "" : " ") + k + "=" + std::to_string(v);
        return out;
    }

private:
    std::uint64_t pick(std::uint64_t n) { return rng_() % n; }
    milliseconds between(int lo, int hi) { return milliseconds(lo + static_cast<int>(pick(hi - lo + 1))); }
    std::uint64_t any_node() { return 1 + pick(n_); }
    void hold(milliseconds d) { std::this_thread::sleep_for(d); }

    void log(const std::string& what) { log_ << "  t=" << clock_.now() / 1000 << "ms " << what << "\n"; }

    bool reachable(std::uint64_t id) const
    {
        return !paused_.contains(id) && !killed_.contains(id) && !disk_stalled_.contains(id);
    }

    /// The node that says it leads in the highest term, among those that answer.
    std::optional<std::uint64_t> find_leader()
    {
        std::optional<std::uint64_t> leader;
        std::uint64_t term = 0;
        for (std::uint64_t id = 1; id <= n_; ++id) {
            if (!reachable(id))
                continue;
            const auto st = get_status(c_.http_port(id), 500ms);
            if (st && st->role == "leader" && st->term >= term) {
                leader = id;
                term = st->term;
            }
        }
        return leader;
    }

    /// The leader if there is one, else a random node (the choice is logged).
    std::uint64_t leader_or_any()
    {
        if (const auto l = find_leader())
            return *l;
        const auto id = any_node();
        log("no leader found; node " + std::to_string(id) + " instead");
        return id;
    }

    link_rule cut_rule() { return pick(5) < 3 ? link_rule::drop() : link_rule::stall(); }

    /// How a cut is made, for the log.
    std::string how(link_rule r) const { return lab_ ? "packets dropped" : to_string(r); }

    /// Cuts (or delays) every link from `from` to `to`: in the proxy, or with namespaces by
    /// dropping packets, whatever `r` (a delay is not made there).
    void cut(const ids& from, const ids& to, link_rule r)
    {
        if (lab_ && r.what == link_rule::kind::delay)
            return log("(no delay with network namespaces: the links stay as they are)");
        for (auto a : from)
            for (auto b : to)
                if (a != b) {
                    if (lab_)
                        lab_->drop(a, b);
                    else
                        p_.set(a, b, r);
                }
        cut_ = true;
    }

    /// Stops a node until undo(): kill -9, or a third of the time SIGTERM, which must end it
    /// with exit code 0 within 10 s whatever the fault (else kill -9, and the test fails).
    void kill(std::uint64_t id)
    {
        // A node whose disk hangs cannot finish a clean shutdown until it returns: kill -9.
        if (pick(3) == 0 && !paused_.contains(id) && !disk_stalled_.contains(id) && c_.running(id)) {
            const auto how = c_.terminate(id, SIGTERM, 10s);
            std::ostringstream os;
            if (how)
                os << *how;
            else
                os << "still running after 10 s, killed";
            log("SIGTERM node " + std::to_string(id) + ": " + os.str());
            const bool clean = how && how->exited && how->code == 0;
            BOOST_TEST(clean, "node " << id << " did not shut down cleanly on SIGTERM: " << os.str());
        } else {
            log("kill -9 node " + std::to_string(id));
        }
        c_.kill9(id);
        paused_.erase(id);
        killed_.insert(id);
    }

    /// Hangs node `id`'s disk (its pause file exists) until undo(); a node that does not run
    /// the disk-pause library is paused with SIGSTOP instead.
    void stall_disk(std::uint64_t id)
    {
        if (!disks_) {
            log("no disk faults in this build: SIGSTOP instead");
            return pause(id);
        }
        if (disk_stalled_.contains(id))
            return;
        log("stall the disk of node " + std::to_string(id));
        set_disk_pause(c_, id, true);
        disk_stalled_.insert(id);
    }

    void pause(std::uint64_t id)
    {
        if (killed_.contains(id))
            return;
        log("SIGSTOP node " + std::to_string(id));
        c_.signal(id, SIGSTOP);
        paused_.insert(id);
    }

    /// Starts a killed node again. A start can fail when another connection took one of its
    /// ports meanwhile (an ephemeral port of a client, say); it is retried.
    void restart(std::uint64_t id)
    {
        for (int attempt = 0; attempt < 40; ++attempt) {
            c_.start(id);
            const bool exited = wait_until([&] { return !c_.running(id); }, 500ms);
            if (!exited) {
                log("restarted node " + std::to_string(id));
                return;
            }
            std::ostringstream why;
            if (const auto st = c_.exit_of(id))
                why << *st;
            log("node " + std::to_string(id) + " exited at start (" + why.str() + "), starting it again");
            std::this_thread::sleep_for(250ms);
        }
    }

    ids others(const ids& of)
    {
        ids out;
        for (std::uint64_t id = 1; id <= n_; ++id)
            if (std::find(of.begin(), of.end(), id) == of.end())
                out.push_back(id);
        return out;
    }

    ids shuffled()
    {
        ids all(n_);
        std::iota(all.begin(), all.end(), 1);
        for (std::size_t i = all.size(); i > 1; --i)
            std::swap(all[i - 1], all[pick(i)]);
        return all;
    }

    void apply(fault f)
    {
        switch (f) {
        case fault::kill_leader: kill(leader_or_any()); break;
        case fault::kill_node: kill(any_node()); break;
        case fault::pause_leader: pause(leader_or_any()); break;
        case fault::pause_node: pause(any_node()); break;
        case fault::split: {
            auto all = shuffled();
            const ids minority(all.begin(), all.begin() + static_cast<long>(1 + pick((n_ - 1) / 2)));
            const auto majority = others(minority);
            const auto r = cut_rule();
            log("split " + list(minority) + " | " + list(majority) + " (" + how(r) + ")");
            cut(minority, majority, r);
            cut(majority, minority, r);
            break;
        }
        case fault::isolate_leader: {
            const ids leader = {leader_or_any()};
            const auto rest = others(leader);
            const auto r = cut_rule();
            log("isolate node " + list(leader) + " (" + how(r) + ")");
            cut(leader, rest, r);
            cut(rest, leader, r);
            break;
        }
        case fault::one_way: {
            const ids node = {pick(2) == 0 ? leader_or_any() : any_node()};
            const auto rest = others(node);
            const auto r = cut_rule();
            if (pick(2) == 0) {
                log("node " + list(node) + " cannot send to " + list(rest) + " (" + how(r) + ")");
                cut(node, rest, r);
            } else {
                log("node " + list(node) + " cannot hear from " + list(rest) + " (" + how(r) + ")");
                cut(rest, node, r);
            }
            break;
        }
        case fault::bridge: {
            auto all = shuffled();
            const ids bridge = {all[0]};
            const std::size_t half = (n_ - 1) / 2;
            const ids a(all.begin() + 1, all.begin() + 1 + static_cast<long>(half));
            const ids b(all.begin() + 1 + static_cast<long>(half), all.end());
            const auto r = cut_rule();
            log("bridge " + list(bridge) + " between " + list(a) + " and " + list(b) + " (" + how(r) + ")");
            cut(a, b, r);
            cut(b, a, r);
            break;
        }
        case fault::slow_node: {
            const ids node = {any_node()};
            const auto rest = others(node);
            const auto d = between(20, 250);
            log("delay node " + list(node) + "'s links by " + std::to_string(d.count()) + "ms");
            cut(node, rest, link_rule::delayed(d));
            if (!lab_)
                cut(rest, node, link_rule::delayed(d));
            break;
        }
        case fault::disk_stall_leader: stall_disk(leader_or_any()); break;
        case fault::disk_stall_node: stall_disk(any_node()); break;
        case fault::membership:
        case fault::join: break; // see one_fault()
        }
    }

    void undo()
    {
        if (cut_) {
            log("heal the network");
            if (lab_)
                lab_->heal();
            else
                p_.heal();
            cut_ = false;
        }
        for (auto id : paused_) {
            log("SIGCONT node " + std::to_string(id));
            c_.signal(id, SIGCONT);
        }
        paused_.clear();
        // Before the restarts: a node restarted on a hung disk would wait for it.
        for (auto id : disk_stalled_) {
            log("resume the disk of node " + std::to_string(id));
            set_disk_pause(c_, id, false);
        }
        disk_stalled_.clear();
        for (auto id : killed_)
            restart(id);
        killed_.clear();
    }

    /// A node that answers HTTP, to send a membership change to (it forwards to the leader).
    std::uint64_t reachable_node()
    {
        for (int k = 0; k < 16; ++k)
            if (const auto id = any_node(); reachable(id))
                return id;
        return 1;
    }

    void add_learner()
    {
        const std::uint64_t id = n_ + 1;
        if (learner_ports_.first == 0) {
            // Nothing listens behind this destination: the learner is a member that never
            // answers, which the leader keeps trying to reach.
            const auto ports = free_ports(2);
            learner_ports_ = {lab_ ? ports[0] : p_.add_destination(id, ports[0]), ports[1]};
        }
        const std::string host = lab_ ? lab_->nobody() : "127.0.0.1";
        const std::string body = "{\"id\": " + std::to_string(id) + ", \"raft\": \"" + host + ":" +
                                 std::to_string(learner_ports_.first) + "\", \"http\": \"" + host + ":" +
                                 std::to_string(learner_ports_.second) + "\", \"learner\": true}";
        const auto via = reachable_node();
        const auto r = request(c_.http_port(via), "POST", "/cluster/members", body, 3s);
        log("add learner " + std::to_string(id) + " via node " + std::to_string(via) + ": " +
            std::to_string(r.status));
        // An indeterminate answer may still have added it: removal is attempted either way.
        if (r.status == 201 || r.status == 0 || r.status == 503)
            learner_added_ = true;
    }

    /// `method target` through reachable nodes until it answers one of `done` or `limit`
    /// passes; the last status.
    int until(const std::string& method, const std::string& target, const std::string& body,
              std::initializer_list<int> done, milliseconds limit)
    {
        int status = 0;
        wait_until(
            [&] {
                status = request(c_.http_port(reachable_node()), method, target, body, 3s).status;
                return std::find(done.begin(), done.end(), status) != done.end();
            },
            limit, 200ms);
        return status;
    }

    /// A real node joins while another fault runs: it is added as a learner, started empty
    /// with --join, promoted to voter once it has caught up, and removed again. The node
    /// listens at its own Raft port, not behind the proxy (--join requires the member address
    /// to be the one it listens on), but what it sends crosses the proxy like everyone's.
    void join_during_fault()
    {
        const auto id = joiner_;
        if (joined_ || c_.running(id)) {
            log("node " + std::to_string(id) + " was not removed yet: no join");
            return;
        }
        std::filesystem::remove_all(c_.spec(id).data_dir);
        const auto via = reachable_node();
        c_.set_join_via(id, via);
        const int added = until("POST", "/cluster/members", c_.member_body(id, true), {201}, 3s);
        log("add node " + std::to_string(id) + " as a learner: " + std::to_string(added));
        joined_ = true; // even unanswered, the change may have been made: removed either way
        c_.start(id);
        log("start node " + std::to_string(id) + " with --join via node " + std::to_string(via));
        const auto other = static_cast<fault>(pick(plain_faults));
        log(std::string("during the join: ") + name(other));
        apply(other);
        const int promoted = until("POST", "/cluster/members/" + std::to_string(id) + "/promote", {}, {200},
                                   between(500, 3000));
        log("promote node " + std::to_string(id) + ": " + std::to_string(promoted));
        hold(between(200, 1500));
        remove_joiner(3s);
        undo();
        if (joined_)
            remove_joiner(10s);
    }

    void remove_joiner(milliseconds limit)
    {
        const auto id = joiner_;
        const int status = until("DELETE", "/cluster/members/" + std::to_string(id), {}, {200, 404}, limit);
        log("remove node " + std::to_string(id) + ": " + std::to_string(status));
        if (status == 200 || status == 404) {
            joined_ = false;
            c_.kill9(id);
            log("stop node " + std::to_string(id));
        }
    }

    /// DELETE /cluster/members/<learner> until it answers 200 (removed) or 404 (not a
    /// member), or `limit` passes.
    void remove_learner(milliseconds limit)
    {
        if (!learner_added_)
            return;
        const std::uint64_t id = n_ + 1;
        int status = 0;
        wait_until(
            [&] {
                const auto via = reachable_node();
                status =
                    request(c_.http_port(via), "DELETE", "/cluster/members/" + std::to_string(id), {}, 3s)
                        .status;
                return status == 200 || status == 404;
            },
            limit, 200ms);
        log("remove learner " + std::to_string(id) + ": " + std::to_string(status));
        if (status == 200 || status == 404)
            learner_added_ = false;
    }

    cluster& c_;
    proxy& p_;
    netns_lab* lab_;
    recording_clients& clock_;
    std::mt19937_64 rng_;
    const std::size_t n_;
    std::set<std::uint64_t> paused_, killed_, disk_stalled_;
    bool cut_ = false;
    bool learner_added_ = false;
    const std::uint64_t joiner_;
    const bool disks_;
    bool joined_ = false;                                         // the joiner may be a member
    std::pair<std::uint16_t, std::uint16_t> learner_ports_{0, 0}; // proxy port, http port
    std::ostringstream log_;
    std::map<std::string, int> counts_;
};

/// Every node's /status in one line each, for a failure message.
std::string statuses(std::size_t n, cluster& c)
{
    std::ostringstream os;
    for (std::uint64_t id = 1; id <= n; ++id) {
        const auto r = request(c.http_port(id), "GET", "/status", {}, 2s);
        os << "  node " << id << ": " << describe(r) << "\n";
    }
    return os.str();
}

/// True once every node reports the same commit index, last index, term and leader, and
/// has applied everything it committed.
bool converged(std::size_t n, cluster& c)
{
    std::optional<node_status> first;
    for (std::uint64_t id = 1; id <= n; ++id) {
        const auto st = get_status(c.http_port(id), 2s);
        if (!st || st->applied_index != st->commit_index || !st->leader)
            return false;
        if (!first) {
            first = st;
            continue;
        }
        if (st->commit_index != first->commit_index || st->last_index != first->last_index ||
            st->term != first->term || st->leader != first->leader)
            return false;
    }
    return true;
}

/// A final read of every key through every node, recorded with the history: each must be
/// consistent with it, so no acknowledged write is missing and no node serves old data. A
/// read answered 503 (an election the busy machine set off, say) had no effect: retried.
/// False if a read got no answer within `bound`.
bool final_reads(cluster& c, recording_clients& load, const ids& nodes, int clients, std::size_t keys,
                 milliseconds bound, const std::string& where)
{
    bool ok = true;
    for (std::size_t k = 0; k < keys; ++k) {
        for (auto id : nodes) {
            raftkv::sim::kv_op op;
            op.client = static_cast<std::uint64_t>(clients) + id;
            op.kind = raftkv::sim::kv_op_kind::get;
            op.key = "k" + std::to_string(k);
            http_response r;
            const bool answered = wait_until(
                [&] {
                    op.call = load.now();
                    r = get(c.http_port(id), op.key, 10s);
                    op.ret = load.now();
                    return r.status == 200 || r.status == 404;
                },
                bound, 100ms);
            BOOST_TEST(answered,
                       where << ": final read of " << op.key << " via node " << id << ": " << describe(r));
            ok = ok && answered;
            op.found = r.status == 200;
            if (op.found)
                op.result = parse_json(r.body).string("value").value_or("");
            if (answered)
                load.record(std::move(op));
        }
    }
    return ok;
}

const char* outcome_text(raftkv::sim::check_outcome o)
{
    return o == raftkv::sim::check_outcome::ok        ? "ok"
           : o == raftkv::sim::check_outcome::unknown ? "unknown (the check gave up)"
                                                      : "VIOLATED";
}

} // namespace

run_report run_round(const run_options& opts, std::uint64_t seed)
{
    const std::string where = "seed " + std::to_string(seed) + ", " + std::to_string(opts.nodes) + " nodes";
    BOOST_TEST_MESSAGE("nemesis round: " << where);
    BOOST_TEST_CHECKPOINT("nemesis round: " << where); // named if an exception ends the test
    run_report report;
    // With RAFTKV_NEMESIS_NETNS=1 (as root), the nodes run in network namespaces and links
    // are cut by dropping packets; otherwise they talk through the proxy.
    std::unique_ptr<netns_lab> lab;
    if (const char* v = std::getenv("RAFTKV_NEMESIS_NETNS"); v != nullptr && std::string(v) == "1") {
        if (const auto why = netns_lab::unusable())
            BOOST_TEST_MESSAGE(where << ": no network namespaces (" << *why << "): the proxy cuts the links");
        else
            lab = std::make_unique<netns_lab>(opts.nodes + 1); // the joiner too
    }
    // The proxy listens on ports it binds after the cluster chose its own (and let them go):
    // one of them may be a node's; then both are made again.
    std::unique_ptr<proxy> proxy_holder;
    std::unique_ptr<cluster> cluster_holder;
    for (int attempt = 0;; ++attempt) {
        cluster_holder.reset();
        proxy_holder = std::make_unique<proxy>();
        // Frequent snapshots, so that restarted and cut-off nodes also catch up from them.
        cluster_holder = std::make_unique<cluster>(
            opts.nodes, false,
            std::vector<std::string>{"--request-timeout-ms", "2000", "--snapshot-entries", "400",
                                     "--snapshot-catchup-entries", "100"});
        if (lab)
            break;
        std::set<std::uint16_t> taken;
        for (std::uint64_t id = 1; id <= opts.nodes; ++id)
            taken.insert({cluster_holder->http_port(id), cluster_holder->raft_port(id)});
        bool clash = false;
        for (std::uint64_t id = 1; id <= opts.nodes; ++id) {
            const auto port = proxy_holder->add_destination(id, cluster_holder->raft_port(id));
            clash = clash || taken.contains(port);
            cluster_holder->set_dial_port(id, port);
        }
        if (!clash || attempt == 5)
            break;
    }
    proxy& p = *proxy_holder;
    cluster& c = *cluster_holder;
    if (lab)
        for (std::uint64_t id = 1; id <= opts.nodes; ++id)
            c.set_host(id, lab->address(id), lab->launcher(id));
    std::string no_disks;
    const auto io_pause = io_pause_library(&no_disks);
    if (io_pause)
        enable_disk_pauses(c, *io_pause);
    else
        BOOST_TEST_MESSAGE(where << ": disk faults become SIGSTOP: " << no_disks);
    c.start_all();
    const bool started = c.wait_ready(opts.recovery_bound).has_value();
    BOOST_TEST_REQUIRE(started, where << ": the cluster never became ready");

    ids all(opts.nodes);
    std::iota(all.begin(), all.end(), 1);
    // The node the join fault adds and removes, given its ports before the clients start:
    // they read the cluster's node table from their threads.
    const std::uint64_t joiner = c.add_node(1);
    if (lab)
        c.set_host(joiner, lab->address(joiner), lab->launcher(joiner));
    if (io_pause)
        enable_disk_pauses(c, *io_pause);
    recording_clients load(
        c, all, {.clients = opts.clients, .keys = opts.keys, .timeout = 4s, .seed = seed, .pause = 0ms});
    nemesis chaos(c, p, lab.get(), load, seed, opts.nodes, joiner, io_pause.has_value());
    const auto faults_end = std::chrono::steady_clock::now() + opts.fault_time;
    int faults = 0;
    while (std::chrono::steady_clock::now() < faults_end) {
        chaos.rest();
        chaos.one_fault();
        ++faults;
    }

    bool ok = chaos.heal_everything(opts.recovery_bound);
    BOOST_TEST(ok, where << ": a member added by the nemesis could not be removed");
    for (auto id : all) {
        const bool running = c.running(id);
        BOOST_TEST(running, where << ": node " << id << " is not running after the faults");
        ok = ok && running;
    }
    const bool ready = c.wait_ready(opts.recovery_bound).has_value();
    BOOST_TEST(ready, where << ": the healed cluster did not serve every node within "
                            << opts.recovery_bound.count() << " ms\n"
                            << statuses(opts.nodes, c));
    ok = ok && ready;
    std::this_thread::sleep_for(1s); // the clients get some operations through the healed cluster
    load.stop();

    ok = final_reads(c, load, all, opts.clients, opts.keys, opts.recovery_bound, where) && ok;

    const bool same = wait_until([&] { return converged(opts.nodes, c); }, opts.recovery_bound, 200ms);
    BOOST_TEST(same, where << ": the nodes did not converge\n" << statuses(opts.nodes, c));
    ok = ok && same;

    const auto history = load.history();
    const auto counts = load.counts();
    BOOST_TEST(counts.writes_ok > 0u, where << ": no write was acknowledged");
    const auto result = check_linearizable(history, std::chrono::seconds(60));
    ok = ok && counts.writes_ok > 0 && result.outcome != raftkv::sim::check_outcome::illegal;

    std::ostringstream summary;
    summary << where << ": " << faults << " faults (" << chaos.fault_counts() << "), " << history.size()
            << " operations: " << counts.writes_ok << " writes acknowledged, " << counts.writes_unknown
            << " unknown, " << counts.writes_unsent << " unsent, " << counts.reads_ok << " reads, "
            << counts.reads_failed << " failed; "
            << (lab ? std::string("network namespaces")
                    : "proxy " + std::to_string(p.forwarded()) + " connections forwarded, " +
                          std::to_string(p.refused()) + " refused")
            << "; linearizability " << outcome_text(result.outcome);
    report.summary = summary.str();
    BOOST_TEST_MESSAGE("the nemesis' log:\n" << chaos.log_text());
    report.passed = ok && current_test_passing();
    if (!report.passed)
        std::cerr << "nemesis round failed: " << report.summary
                  << "\nreplay with RAFTKV_NEMESIS_SEED=" << seed << " RAFTKV_NEMESIS_NODES=" << opts.nodes
                  << " RAFTKV_NEMESIS_SECONDS="
                  << std::chrono::duration_cast<std::chrono::seconds>(opts.fault_time).count()
                  << " RAFTKV_NEMESIS_RUNS=1\nthe nemesis' log:\n"
                  << chaos.log_text() << std::flush;
    return report;
}

std::optional<std::string> io_pause_library(std::string* why)
{
    const auto say = [&](std::string reason) -> std::optional<std::string> {
        if (why != nullptr)
            *why = std::move(reason);
        return std::nullopt;
    };
    if (const char* v = std::getenv("RAFTKV_NEMESIS_DISK"); v != nullptr && std::string(v) == "0")
        return say("RAFTKV_NEMESIS_DISK=0");
#ifdef RAFTKV_IO_PAUSE_LIBRARY
    const std::filesystem::path lib = RAFTKV_IO_PAUSE_LIBRARY;
    std::error_code ec;
    if (!std::filesystem::exists(lib, ec))
        return say("the disk-pause library " + lib.string() + " is missing");
    return lib.string();
#else
    return say("this build has no disk-pause library");
#endif
}

std::filesystem::path pause_file(const e2e::cluster& c, std::uint64_t id)
{
    return c.dir() / ("node-" + std::to_string(id) + ".io-pause");
}

void enable_disk_pauses(e2e::cluster& c, const std::string& library, bool wal_only)
{
    std::string preload = library;
    if (const char* v = std::getenv("LD_PRELOAD"); v != nullptr && *v != '\0')
        preload = std::string(v) + ":" + library;
    std::string asan = "verify_asan_link_order=0";
    if (const char* v = std::getenv("ASAN_OPTIONS"); v != nullptr && *v != '\0')
        asan = std::string(v) + ":" + asan;
    for (std::uint64_t id = 1; id <= c.size(); ++id) {
        std::vector<std::string> env = {"LD_PRELOAD=" + preload,
                                        "RAFTKV_IO_PAUSE_FILE=" + pause_file(c, id).string(),
                                        "ASAN_OPTIONS=" + asan};
        if (wal_only) // as /proc/self/fd shows it: absolute, no symbolic link
            env.push_back("RAFTKV_IO_PAUSE_PREFIX=" +
                          (std::filesystem::weakly_canonical(c.spec(id).data_dir) / "wal").string() + "/");
        c.set_env(id, std::move(env));
    }
}

void set_disk_pause(const e2e::cluster& c, std::uint64_t id, bool on)
{
    const auto file = pause_file(c, id);
    if (on) {
        std::ofstream touch(file);
        BOOST_TEST_REQUIRE(touch.good(), "cannot create " << file);
    } else {
        std::error_code ec;
        std::filesystem::remove(file, ec);
        BOOST_TEST_REQUIRE(!ec, "cannot remove " << file << ": " << ec.message());
    }
}

run_report leader_disk_stall_round(const disk_stall_options& opts, std::uint64_t seed)
{
    const std::string where = std::string(opts.whole_disk ? "leader disk stall" : "leader log disk stall") +
                              ", seed " + std::to_string(seed);
    BOOST_TEST_CHECKPOINT(where);
    run_report report;
    std::string why;
    const auto library = io_pause_library(&why);
    if (!library) {
        report.passed = true;
        report.summary = where + ": skipped, " + why;
        return report;
    }
    cluster c(3, false, {"--request-timeout-ms", "2000"});
    enable_disk_pauses(c, *library, !opts.whole_disk);
    c.start_all();
    const auto first = c.wait_ready(opts.recovery_bound);
    BOOST_TEST_REQUIRE(first.has_value(), where << ": the cluster never became ready");
    const std::uint64_t old = *first;
    const auto before = get_status(c.http_port(old));
    BOOST_TEST_REQUIRE(before.has_value(), where << ": node " << old << " does not answer /status");
    ids rest, all = {1, 2, 3};
    for (auto id : all)
        if (id != old)
            rest.push_back(id);

    const int clients = 3;
    const std::size_t keys = 3;
    recording_clients load(c, rest,
                           {.clients = clients, .keys = keys, .timeout = 2s, .seed = seed, .pause = 0ms});
    wait_until([&] { return load.acknowledged_writes() >= 20; }, 5s); // the leader appends
    const auto stalled_at = std::chrono::steady_clock::now();
    const auto since_stall = [&] {
        return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - stalled_at);
    };
    set_disk_pause(c, old, true);

    // While the old leader's disk hangs (its process runs, its network works): both other
    // nodes name a new leader, in a later term ...
    std::optional<std::uint64_t> leader;
    std::uint64_t term = 0;
    const bool moved = wait_until(
        [&] {
            const auto a = get_status(c.http_port(rest[0]), 1s);
            const auto b = get_status(c.http_port(rest[1]), 1s);
            if (!a || !b || !a->leader || a->leader != b->leader || *a->leader == old ||
                a->term <= before->term || a->term != b->term)
                return false;
            leader = a->leader;
            term = a->term;
            return true;
        },
        opts.failover_bound, 20ms);
    const auto failover = since_stall();
    BOOST_TEST(moved, where << ": no other node led within " << opts.failover_bound.count() << " ms of node "
                            << old << "'s disk hanging\n"
                            << statuses(3, c));

    // ... and acknowledge a write sent through them (recorded with the history).
    bool acked = false;
    int probes = 0;
    while (moved && !acked && since_stall() < opts.failover_bound) {
        raftkv::sim::kv_op op;
        op.client = clients + 10;
        op.kind = raftkv::sim::kv_op_kind::put;
        op.key = "k0";
        op.value = "probe-" + std::to_string(probes);
        op.call = load.now();
        const auto r = put(c.http_port(rest[static_cast<std::size_t>(probes) % 2]), op.key, op.value, 2s);
        op.ret = load.now();
        ++probes;
        acked = r.status == 200;
        op.indeterminate = !acked; // it may still take effect
        if (!(r.status == 0 && r.body.starts_with("connect:")))
            load.record(std::move(op)); // one never sent had no effect
        if (!acked)
            std::this_thread::sleep_for(50ms);
    }
    const auto write_acked = since_stall();
    BOOST_TEST(acked, where << ": no write through nodes " << list(rest) << " was acknowledged within "
                            << opts.failover_bound.count() << " ms of node " << old << "'s disk hanging\n"
                            << statuses(3, c));
    // The old leader, if it answers, no longer says it leads in the term it led (when only
    // its log hangs: see the declaration).
    const auto stalled = get_status(c.http_port(old), 1s);
    std::string old_says = "no answer";
    if (stalled) {
        old_says = stalled->role + " in term " + std::to_string(stalled->term);
        const bool gave_way = stalled->role != "leader" || stalled->term > before->term;
        if (!opts.whole_disk)
            BOOST_TEST(gave_way, where << ": node " << old << " still leads in term " << stalled->term
                                       << " with its log's disk hung");
    }
    const bool still_running = c.running(old);
    BOOST_TEST(still_running, where << ": node " << old << " exited while its disk hung");

    if (since_stall() < opts.stall)
        std::this_thread::sleep_for(opts.stall - since_stall());
    const auto stall_time = since_stall();
    set_disk_pause(c, old, false);

    const bool ready = c.wait_ready(opts.recovery_bound).has_value();
    BOOST_TEST(ready, where << ": the cluster did not serve every node within " << opts.recovery_bound.count()
                            << " ms of the disk's return\n"
                            << statuses(3, c));
    load.also_via(old);
    std::this_thread::sleep_for(1s);
    load.stop();
    bool ok = final_reads(c, load, all, clients + 20, keys, opts.recovery_bound, where) && ready;
    const bool same = wait_until([&] { return converged(3, c); }, opts.recovery_bound, 200ms);
    BOOST_TEST(same, where << ": the nodes did not converge\n" << statuses(3, c));
    const auto history = load.history();
    const auto counts = load.counts();
    const auto result = check_linearizable(history, std::chrono::seconds(60));
    ok = ok && same && result.outcome != raftkv::sim::check_outcome::illegal;

    std::ostringstream summary;
    summary << where << ": node " << old << " led in term " << before->term << "; its disk hung for "
            << stall_time.count() << " ms; node " << (leader ? std::to_string(*leader) : "?")
            << " led in term " << term << " after " << failover.count()
            << " ms, a write through the others was acknowledged after " << write_acked.count() << " ms ("
            << probes << " tries); the stalled node said: " << old_says << "; " << history.size()
            << " operations: " << counts.writes_ok << " writes acknowledged, " << counts.writes_unknown
            << " unknown; linearizability " << outcome_text(result.outcome);
    report.summary = summary.str();
    report.passed = ok && current_test_passing();
    return report;
}

} // namespace raftkv::nemesis
