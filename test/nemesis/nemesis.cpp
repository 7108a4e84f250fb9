#include "nemesis.hpp"

#include "proxy.hpp"
#include "recording_clients.hpp"

#include <boost/test/unit_test.hpp>

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <iostream>
#include <map>
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
    split,          ///< a random minority cut off from the majority
    isolate_leader, ///< the leader cut off from everyone
    one_way,        ///< one node's messages to the others lost, or theirs to it, not both
    bridge,         ///< two halves that do not see each other, and one node both see
    slow_node,      ///< every link to and from one node delayed
    membership,     ///< a learner added, another fault, the learner removed during it
    join,           ///< a real node joins (--join), is promoted and removed, during another fault
};
/// The faults one_fault() picks from; the first `plain_faults` can also be combined.
constexpr int fault_kinds = 11;
constexpr int plain_faults = 9;

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
    nemesis(cluster& c, proxy& p, recording_clients& clock, std::uint64_t seed, std::size_t nodes,
            std::uint64_t joiner)
        : c_(c), p_(p), clock_(clock), rng_(seed), n_(nodes), joiner_(joiner)
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

    bool reachable(std::uint64_t id) const { return !paused_.contains(id) && !killed_.contains(id); }

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

    void cut(const ids& from, const ids& to, link_rule r)
    {
        for (auto a : from)
            for (auto b : to)
                if (a != b)
                    p_.set(a, b, r);
        cut_ = true;
    }

    /// Stops a node until undo(): kill -9, or a third of the time SIGTERM, which must end it
    /// with exit code 0 within 10 s whatever the fault (else kill -9, and the test fails).
    void kill(std::uint64_t id)
    {
        if (pick(3) == 0 && !paused_.contains(id) && c_.running(id)) {
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
            log("split " + list(minority) + " | " + list(majority) + " (" + to_string(r) + ")");
            cut(minority, majority, r);
            cut(majority, minority, r);
            break;
        }
        case fault::isolate_leader: {
            const ids leader = {leader_or_any()};
            const auto rest = others(leader);
            const auto r = cut_rule();
            log("isolate node " + list(leader) + " (" + to_string(r) + ")");
            cut(leader, rest, r);
            cut(rest, leader, r);
            break;
        }
        case fault::one_way: {
            const ids node = {pick(2) == 0 ? leader_or_any() : any_node()};
            const auto rest = others(node);
            const auto r = cut_rule();
            if (pick(2) == 0) {
                log("node " + list(node) + " cannot send to " + list(rest) + " (" + to_string(r) + ")");
                cut(node, rest, r);
            } else {
                log("node " + list(node) + " cannot hear from " + list(rest) + " (" + to_string(r) + ")");
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
            log("bridge " + list(bridge) + " between " + list(a) + " and " + list(b) + " (" + to_string(r) +
                ")");
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
            cut(rest, node, link_rule::delayed(d));
            break;
        }
        case fault::membership:
        case fault::join: break; // see one_fault()
        }
    }

    void undo()
    {
        if (cut_) {
            log("heal the network");
            p_.heal();
            cut_ = false;
        }
        for (auto id : paused_) {
            log("SIGCONT node " + std::to_string(id));
            c_.signal(id, SIGCONT);
        }
        paused_.clear();
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
            learner_ports_ = {p_.add_destination(id, ports[0]), ports[1]};
        }
        const std::string body = "{\"id\": " + std::to_string(id) +
                                 ", \"raft\": \"127.0.0.1:" + std::to_string(learner_ports_.first) +
                                 "\", \"http\": \"127.0.0.1:" + std::to_string(learner_ports_.second) +
                                 "\", \"learner\": true}";
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
    recording_clients& clock_;
    std::mt19937_64 rng_;
    const std::size_t n_;
    std::set<std::uint64_t> paused_, killed_;
    bool cut_ = false;
    bool learner_added_ = false;
    const std::uint64_t joiner_;
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

} // namespace

run_report run_round(const run_options& opts, std::uint64_t seed)
{
    const std::string where = "seed " + std::to_string(seed) + ", " + std::to_string(opts.nodes) + " nodes";
    BOOST_TEST_MESSAGE("nemesis round: " << where);
    BOOST_TEST_CHECKPOINT("nemesis round: " << where); // named if an exception ends the test
    run_report report;
    proxy p;
    // Frequent snapshots, so that restarted and cut-off nodes also catch up from them.
    cluster c(
        opts.nodes, false,
        {"--request-timeout-ms", "2000", "--snapshot-entries", "400", "--snapshot-catchup-entries", "100"});
    for (std::uint64_t id = 1; id <= opts.nodes; ++id)
        c.set_dial_port(id, p.add_destination(id, c.raft_port(id)));
    c.start_all();
    const bool started = c.wait_ready(opts.recovery_bound).has_value();
    BOOST_TEST_REQUIRE(started, where << ": the cluster never became ready");

    ids all(opts.nodes);
    std::iota(all.begin(), all.end(), 1);
    // The node the join fault adds and removes, given its ports before the clients start:
    // they read the cluster's node table from their threads.
    const std::uint64_t joiner = c.add_node(1);
    recording_clients load(
        c, all, {.clients = opts.clients, .keys = opts.keys, .timeout = 4s, .seed = seed, .pause = 0ms});
    nemesis chaos(c, p, load, seed, opts.nodes, joiner);
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

    // A final read of every key through every node, recorded with the history: each must be
    // consistent with it, so no acknowledged write is missing and no node serves old data. A
    // read answered 503 (an election the busy machine set off, say) had no effect: retried.
    for (std::size_t k = 0; k < opts.keys; ++k) {
        for (auto id : all) {
            raftkv::sim::kv_op op;
            op.client = static_cast<std::uint64_t>(opts.clients) + id;
            op.kind = raftkv::sim::kv_op_kind::get;
            op.key = "k"; // not "k" + std::to_string(k): a false -Wrestrict (GCC 12, -O3)
            op.key += std::to_string(k);
            http_response r;
            const bool answered = wait_until(
                [&] {
                    op.call = load.now();
                    r = get(c.http_port(id), op.key, 10s);
                    op.ret = load.now();
                    return r.status == 200 || r.status == 404;
                },
                opts.recovery_bound, 100ms);
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
            << counts.reads_failed << " failed; proxy " << p.forwarded() << " connections forwarded, "
            << p.refused() << " refused; linearizability "
            << (result.outcome == raftkv::sim::check_outcome::ok        ? "ok"
                : result.outcome == raftkv::sim::check_outcome::unknown ? "unknown (the check gave up)"
                                                                        : "VIOLATED");
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

} // namespace raftkv::nemesis
