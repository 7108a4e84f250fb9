#include "metrics.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

namespace raftkv::server {

namespace http = boost::beast::http;

std::string_view route_label_name(std::size_t index) noexcept
{
    if (index == unmatched_route)
        return "unmatched";
    switch (static_cast<route>(index)) {
    case route::kv: return "kv";
    case route::scan: return "scan";
    case route::status: return "status";
    case route::health: return "health";
    case route::livez: return "livez";
    case route::readyz: return "readyz";
    case route::version: return "version";
    case route::cluster_status: return "cluster_status";
    case route::ui: return "ui";
    case route::members: return "members";
    case route::member: return "member";
    case route::promote: return "promote";
    case route::leader: return "leader";
    case route::watch: return "watch";
    case route::backup: return "backup";
    case route::metrics: return "metrics";
    }
    return "unmatched";
}

// ---- duration_histogram ---------------------------------------------------------------

namespace {

constexpr std::array<std::uint64_t, duration_histogram::bounds.size()> bounds_ns = [] {
    std::array<std::uint64_t, duration_histogram::bounds.size()> ns{};
    for (std::size_t k = 0; k < ns.size(); ++k)
        ns[k] = static_cast<std::uint64_t>(duration_histogram::bounds[k] * 1e9 + 0.5);
    return ns;
}();

} // namespace

void duration_histogram::record(std::chrono::nanoseconds d) noexcept
{
    const auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(d.count(), 0));
    const std::size_t k = static_cast<std::size_t>(std::lower_bound(bounds_ns.begin(), bounds_ns.end(), ns) -
                                                   bounds_ns.begin());
    buckets_[k].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns, std::memory_order_relaxed);
}

duration_histogram::snapshot duration_histogram::read() const noexcept
{
    snapshot s;
    std::uint64_t running = 0;
    for (std::size_t k = 0; k < buckets_.size(); ++k) {
        running += buckets_[k].load(std::memory_order_relaxed);
        s.cumulative[k] = running;
    }
    s.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    return s;
}

// ---- http_metrics ---------------------------------------------------------------------

namespace {

std::size_t method_index(http::verb v) noexcept
{
    switch (v) {
    case http::verb::get: return 0;
    case http::verb::put: return 1;
    case http::verb::delete_: return 2;
    case http::verb::post: return 3;
    case http::verb::head: return 4;
    case http::verb::patch: return 5;
    default: return http_metrics::methods.size();
    }
}

std::size_t code_index(unsigned status) noexcept
{
    const auto& c = http_metrics::codes;
    return static_cast<std::size_t>(std::find(c.begin(), c.end(), status) - c.begin());
}

std::string_view method_name(std::size_t m)
{
    switch (m) {
    case 0: return "GET";
    case 1: return "PUT";
    case 2: return "DELETE";
    case 3: return "POST";
    case 4: return "HEAD";
    case 5: return "PATCH";
    default: return "other";
    }
}

} // namespace

void http_metrics::record(std::size_t route_label, http::verb method, unsigned status,
                          std::chrono::nanoseconds elapsed) noexcept
{
    requests_[route_label][method_index(method)][code_index(status)].fetch_add(1, std::memory_order_relaxed);
    durations_[route_label].record(elapsed);
}

void http_metrics::record_refusal(http::verb method, unsigned status) noexcept
{
    requests_[unmatched_route][method_index(method)][code_index(status)].fetch_add(1,
                                                                                   std::memory_order_relaxed);
}

// ---- process_stats --------------------------------------------------------------------

process_stats read_process_stats(std::chrono::system_clock::time_point start)
{
    process_stats p;
    p.start_time_seconds = std::chrono::duration<double>(start.time_since_epoch()).count();
    const long page = ::sysconf(_SC_PAGESIZE);
    if (std::ifstream statm("/proc/self/statm"); statm) {
        std::uint64_t size = 0;
        std::uint64_t resident = 0;
        if (statm >> size >> resident) {
            p.virtual_bytes = size * static_cast<std::uint64_t>(page);
            p.resident_bytes = resident * static_cast<std::uint64_t>(page);
        }
    }
    std::error_code ec;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec))
        ++p.open_fds;
    if (p.open_fds > 0)
        --p.open_fds; // the descriptor the listing itself holds
    if (rlimit limit{}; ::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
        p.max_fds = limit.rlim_cur;
    if (rusage usage{}; ::getrusage(RUSAGE_SELF, &usage) == 0) {
        const auto seconds = [](const timeval& t) {
            return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
        };
        p.cpu_seconds = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    }
    return p;
}

// ---- exposition_writer ----------------------------------------------------------------

std::string format_value(double v)
{
    if (std::isnan(v))
        return "NaN";
    if (std::isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    char buf[64];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc{} ? std::string(buf, end) : "NaN";
}

namespace {

void append_escaped(std::string& out, std::string_view text, bool quote)
{
    for (const char c : text) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else if (quote && c == '"')
            out += "\\\"";
        else
            out += c;
    }
}

} // namespace

void exposition_writer::family(std::string_view name, std::string_view type, std::string_view help)
{
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    append_escaped(out_, help, false);
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
}

void exposition_writer::write_sample(std::string_view name, std::string_view suffix,
                                     std::initializer_list<label> labels, label extra, std::string_view value)
{
    out_ += name;
    out_ += suffix;
    bool first = true;
    const auto put = [&](const label& l) {
        out_ += first ? '{' : ',';
        first = false;
        out_ += l.first;
        out_ += "=\"";
        append_escaped(out_, l.second, true);
        out_ += '"';
    };
    if (!extra.first.empty())
        put(extra);
    for (const label& l : labels)
        put(l);
    if (!first)
        out_ += '}';
    out_ += ' ';
    out_ += value;
    out_ += '\n';
}

void exposition_writer::sample(std::string_view name, std::initializer_list<label> labels, double value)
{
    write_sample(name, "", labels, {}, format_value(value));
}

void exposition_writer::sample(std::string_view name, std::initializer_list<label> labels,
                               std::uint64_t value)
{
    write_sample(name, "", labels, {}, std::to_string(value));
}

void exposition_writer::gauge(std::string_view name, std::string_view help, double value)
{
    family(name, "gauge", help);
    sample(name, {}, value);
}

void exposition_writer::counter(std::string_view name, std::string_view help, std::uint64_t value)
{
    family(name, "counter", help);
    sample(name, {}, value);
}

void exposition_writer::histogram(std::string_view name, label extra, std::span<const double> bounds,
                                  std::span<const std::uint64_t> cumulative, std::uint64_t count, double sum)
{
    for (std::size_t k = 0; k < bounds.size(); ++k) {
        const std::string le = format_value(bounds[k]);
        write_sample(name, "_bucket", {{"le", le}}, extra, std::to_string(cumulative[k]));
    }
    const std::string total = std::to_string(count);
    write_sample(name, "_bucket", {{"le", "+Inf"}}, extra, total);
    write_sample(name, "_sum", {}, extra, format_value(sum));
    write_sample(name, "_count", {}, extra, total);
}

void exposition_writer::histogram(std::string_view name, label extra, const log2_histogram& h,
                                  std::size_t first, std::size_t last, std::size_t step, double divisor)
{
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;
    std::uint64_t running = 0;
    std::size_t next = first;
    for (std::size_t k = 0; k < log2_histogram::bucket_count; ++k) {
        running += h.buckets[k];
        if (k == next && k <= last) {
            bounds.push_back(static_cast<double>(log2_histogram::upper_bound(k)) / divisor);
            cumulative.push_back(running);
            next += step;
        }
    }
    histogram(name, extra, bounds, cumulative, running, static_cast<double>(h.sum) / divisor);
}

// ---- render_metrics -------------------------------------------------------------------

namespace {

// The log2 buckets shown: durations from 1 us (2^10 ns) to about 69 s (2^36 ns) by
// powers of 4; entry counts from 1 to 65536 by powers of 2; bytes from 256 B to 64 MiB
// by powers of 4.
constexpr std::size_t ns_first = 10, ns_last = 36, ns_step = 2;
constexpr std::size_t entries_first = 0, entries_last = 16, entries_step = 1;
constexpr std::size_t bytes_first = 8, bytes_last = 26, bytes_step = 2;

void seconds_histogram(exposition_writer& w, std::string_view name, std::string_view help,
                       const log2_histogram& h)
{
    w.family(name, "histogram", help);
    w.histogram(name, {}, h, ns_first, ns_last, ns_step, 1e9);
}

void render_node(exposition_writer& w, const metrics_inputs& in)
{
    const node_status& s = in.status;
    const raftkv::role shown = in.storage_failed ? role::follower : s.role;
    w.gauge("raftkv_node_id", "This node's id.", static_cast<double>(s.id));
    w.gauge("raftkv_is_leader", "1 if this node is the leader, 0 otherwise.",
            !in.storage_failed && s.role == role::leader ? 1 : 0);
    w.family("raftkv_role", "gauge", "1 for the role this node plays in its current term, 0 for the others.");
    for (const raftkv::role r : {role::follower, role::pre_candidate, role::candidate, role::leader})
        w.sample("raftkv_role", {{"role", to_string(r)}}, std::uint64_t{r == shown ? 1u : 0u});
    // Its place in the configuration in force: a learner or a removed node still plays the
    // follower's role above. Absent while it cannot tell: a node that joined, before it
    // holds a configuration naming it (it knows none yet, or replays older ones). "removed"
    // as /status says it (kv_service::removed()).
    if (s.members.contains(s.id) || in.removed) {
        const std::string_view place = in.removed                   ? "removed"
                                       : s.members.is_learner(s.id) ? "learner"
                                                                    : "voter";
        w.family("raftkv_membership", "gauge",
                 "1 for this node's place in the configuration in force (voter, learner, or removed: "
                 "in none), 0 for the others.");
        for (const std::string_view p : {"voter", "learner", "removed"})
            w.sample("raftkv_membership", {{"role", std::string(p)}}, std::uint64_t{p == place ? 1u : 0u});
    }
    w.gauge("raftkv_leader_id", "The leader this node knows of; 0 when none.",
            in.storage_failed ? 0.0 : static_cast<double>(s.leader));
    w.gauge("raftkv_storage_failed",
            "1 while this node's storage failed and it takes no part in Raft (docs/server.md), 0 otherwise.",
            in.storage_failed ? 1 : 0);
    w.gauge("raftkv_term", "The current Raft term.", static_cast<double>(s.term));
    w.gauge("raftkv_commit_index", "The highest log index known to be committed.",
            static_cast<double>(s.commit_index));
    w.gauge("raftkv_applied_index", "The highest log index applied to the state machine.",
            static_cast<double>(s.applied_index));
    w.gauge("raftkv_first_index", "The first index the log holds (earlier ones are compacted).",
            static_cast<double>(s.first_index));
    w.gauge("raftkv_last_index", "The last index the log holds.", static_cast<double>(s.last_index));
    w.gauge("raftkv_snapshot_index", "The index of the latest snapshot of the state machine.",
            static_cast<double>(s.snapshot_index));
    w.gauge("raftkv_voters", "Voters in the configuration in force (both sides of a joint one).",
            static_cast<double>(s.members.voters.size() + s.members.outgoing.size()));
    w.gauge("raftkv_learners", "Learners in the configuration in force.",
            static_cast<double>(s.members.learners.size()));
    w.counter("raftkv_malformed_dropped_total",
              "Messages from peers dropped because a correct peer never sends them.", s.malformed_dropped);
}

void render_counters(exposition_writer& w, const node_metrics& m)
{
    w.counter("raftkv_leader_changes_total", "Times this node learned of a new leader (itself included).",
              m.leader_changes);
    w.counter("raftkv_elections_won_total", "Times this node became leader.", m.elections_won);
    w.family("raftkv_leader_step_downs_total", "counter", "Times this node stopped leading, by reason.");
    for (std::size_t k = 1; k < m.step_downs.size(); ++k)
        w.sample("raftkv_leader_step_downs_total", {{"reason", to_string(static_cast<step_down_reason>(k))}},
                 m.step_downs[k]);
    w.counter("raftkv_proposals_committed_total",
              "Entries this node proposed as leader that were applied in their term.", m.proposals_committed);
    w.counter("raftkv_proposals_dropped_total",
              "Entries this node proposed as leader that were overwritten or lost with its leadership.",
              m.proposals_dropped);
    w.family("raftkv_proposals_refused_total", "counter", "Commands the node refused to propose, by reason.");
    w.sample("raftkv_proposals_refused_total", {{"reason", "not_leader"}}, m.proposals_refused_not_leader);
    w.sample("raftkv_proposals_refused_total", {{"reason", "overloaded"}}, m.proposals_refused_overloaded);
    w.sample("raftkv_proposals_refused_total", {{"reason", "transfer_in_progress"}},
             m.proposals_refused_transfer);
    w.counter("raftkv_proposals_forwarded_total", "Commands this node forwarded to its leader over Raft.",
              m.proposals_forwarded);
    w.counter("raftkv_read_index_rounds_total", "ReadIndex heartbeat rounds this node started as leader.",
              m.read_index_rounds);
    w.counter("raftkv_follower_read_requests_total",
              "ReadIndex requests this node sent to its leader as a follower.", m.follower_read_requests);
    w.family("raftkv_apply_batch_entries", "histogram", "Entries per batch applied to the state machine.");
    w.histogram("raftkv_apply_batch_entries", {}, m.apply_batch_entries, entries_first, entries_last,
                entries_step, 1);
    w.counter("raftkv_snapshots_taken_total", "Snapshots (checkpoints) of the state machine started.",
              m.snapshots_taken);
    w.counter("raftkv_snapshots_installed_total", "Snapshots installed from a leader.",
              m.snapshots_installed);
    w.gauge("raftkv_snapshot_last_installed_bytes", "Size of the last snapshot installed from a leader.",
            static_cast<double>(m.last_installed_snapshot_bytes));
    w.counter("raftkv_snapshots_sent_total", "Snapshots this node streamed to followers to the end.",
              m.snapshots_sent);
    w.counter("raftkv_snapshot_sent_bytes_total", "Bytes of snapshot chunks this node sent to followers.",
              m.snapshot_bytes_sent);
    w.family("raftkv_snapshot_transfers_given_up_total", "counter",
             "Snapshot transfers this node gave up before their end, by reason.");
    w.sample("raftkv_snapshot_transfers_given_up_total", {{"reason", "silent"}},
             m.snapshot_transfers_given_up_silent);
    w.sample("raftkv_snapshot_transfers_given_up_total", {{"reason", "hold_bytes"}},
             m.snapshot_transfers_given_up_hold_bytes);
}

void render_peers(exposition_writer& w, const node_status& s, const node_metrics& m)
{
    std::vector<std::string> ids;
    ids.reserve(m.peers.size());
    for (const peer_metrics& p : m.peers)
        ids.push_back(std::to_string(p.id));
    const auto each = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
        w.family(name, type, help);
        for (std::size_t k = 0; k < m.peers.size(); ++k)
            w.sample(name, {{"peer", ids[k]}}, static_cast<std::uint64_t>(value(m.peers[k])));
    };
    each("raftkv_peer_match_index", "gauge", "On the leader: the highest index known to match on each peer.",
         [](const peer_metrics& p) { return p.match; });
    each("raftkv_peer_next_index", "gauge", "On the leader: the next index it sends each peer.",
         [](const peer_metrics& p) { return p.next; });
    each("raftkv_peer_lag_entries", "gauge", "On the leader: its last index minus each peer's match index.",
         [&](const peer_metrics& p) { return s.last_index > p.match ? s.last_index - p.match : 0; });
    each("raftkv_peer_inflight_messages", "gauge",
         "On the leader: append requests sent to each peer and not acknowledged yet.",
         [](const peer_metrics& p) { return p.inflight_messages; });
    each("raftkv_peer_inflight_bytes", "gauge", "On the leader: payload bytes of those append requests.",
         [](const peer_metrics& p) { return p.inflight_bytes; });
    each("raftkv_peer_active", "gauge",
         "On the leader: 1 if the peer answered within the last one to two election timeouts.",
         [](const peer_metrics& p) { return p.active ? 1 : 0; });
    w.family("raftkv_peer_state", "gauge", "On the leader: 1 for the replication state of each peer.");
    for (std::size_t k = 0; k < m.peers.size(); ++k)
        for (const auto mode :
             {peer_metrics::mode::probe, peer_metrics::mode::replicate, peer_metrics::mode::snapshot})
            w.sample("raftkv_peer_state", {{"peer", ids[k]}, {"state", to_string(mode)}},
                     std::uint64_t{m.peers[k].state == mode ? 1u : 0u});
}

void render_wal(exposition_writer& w, const wal::log_store_stats& s, std::size_t segments)
{
    seconds_histogram(w, "raftkv_wal_append_duration_seconds",
                      "From the first append of a group until the group is durable (the longest wait of "
                      "its appends).",
                      s.append_to_durable_ns);
    seconds_histogram(w, "raftkv_wal_write_duration_seconds", "Time to write one group to its segment.",
                      s.write_ns);
    seconds_histogram(w, "raftkv_wal_fsync_duration_seconds", "Time of one group's fdatasync.", s.sync_ns);
    w.family("raftkv_wal_sync_entries", "histogram", "Entries per group (group commit: appends per fsync).");
    w.histogram("raftkv_wal_sync_entries", {}, s.group_entries, entries_first, entries_last, entries_step, 1);
    w.family("raftkv_wal_sync_bytes", "histogram", "Bytes per group written and synced.");
    w.histogram("raftkv_wal_sync_bytes", {}, s.group_bytes, bytes_first, bytes_last, bytes_step, 1);
    w.counter("raftkv_wal_entries_written_total", "Entries written and synced to the log.", s.entries);
    w.counter("raftkv_wal_bytes_written_total", "Bytes written and synced to the log.", s.bytes);
    w.gauge("raftkv_wal_segments", "Segment files the log spans.", static_cast<double>(segments));
}

void render_http(exposition_writer& w, const http_metrics& h, const connection_counts& c)
{
    w.family("raftkv_http_requests_total", "counter",
             "HTTP requests answered, by route, method and status code.");
    std::string code;
    for (std::size_t r = 0; r < route_label_count; ++r)
        for (std::size_t m = 0; m <= http_metrics::methods.size(); ++m)
            for (std::size_t k = 0; k <= http_metrics::codes.size(); ++k) {
                const std::uint64_t n = h.requests(r, m, k);
                if (n == 0)
                    continue;
                code = k < http_metrics::codes.size() ? std::to_string(http_metrics::codes[k]) : "other";
                w.sample("raftkv_http_requests_total",
                         {{"route", route_label_name(r)}, {"method", method_name(m)}, {"code", code}}, n);
            }
    w.family("raftkv_http_request_duration_seconds", "histogram",
             "Time from a request read to its response ready, by route.");
    for (std::size_t r = 0; r < route_label_count; ++r) {
        const duration_histogram::snapshot d = h.duration(r);
        if (d.count() == 0)
            continue;
        w.histogram("raftkv_http_request_duration_seconds", {"route", route_label_name(r)},
                    duration_histogram::bounds,
                    std::span(d.cumulative).first(duration_histogram::bounds.size()), d.count(),
                    d.sum_seconds);
    }
    w.counter("raftkv_session_replays_total",
              "Writes answered with the recorded outcome of their client session's sequence, already "
              "applied (Raftkv-Replayed).",
              h.replays());
    w.counter("raftkv_session_sequence_reuses_total",
              "Writes refused (422) because their client session's sequence was applied for another "
              "request: a client bug, or two clients sharing an id.",
              h.sequence_reuses());
    w.gauge("raftkv_http_open_connections", "HTTP connections open.", static_cast<double>(c.open));
    w.counter("raftkv_http_connections_rejected_total",
              "HTTP connections turned away at --max-connections (none was idle).", c.rejected);
    w.counter("raftkv_http_connections_evicted_total",
              "Idle HTTP connections closed to admit new ones at --max-connections.", c.evicted);
    w.counter("raftkv_http_connections_unread_responses_closed_total",
              "HTTP connections reset for holding too many bytes of responses their client had not read.",
              c.held_response_closes);
}

void render_watches(exposition_writer& w, const metrics_inputs& in)
{
    w.gauge("raftkv_watchers", "GET /watch streams open on this node (counted once their header is sent).",
            static_cast<double>(in.watchers));
    w.counter("raftkv_watchers_stalled_closed_total",
              "Watches closed because their client stopped reading (--http-idle-timeout-ms, "
              "--watch-buffer-bytes).",
              in.connections.stalled_streams);
    w.gauge("raftkv_watch_history_entries", "Changes the watch journal holds.",
            static_cast<double>(in.watch_history_entries));
    w.gauge("raftkv_watch_history_bytes", "Bytes of keys and values the watch journal holds.",
            static_cast<double>(in.watch_history_bytes));
}

void render_process(exposition_writer& w, const process_stats& p)
{
    w.gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
            static_cast<double>(p.resident_bytes));
    w.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
            static_cast<double>(p.virtual_bytes));
    w.gauge("process_open_fds", "Open file descriptors.", static_cast<double>(p.open_fds));
    w.gauge("process_max_fds", "The limit on open file descriptors.", static_cast<double>(p.max_fds));
    w.family("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
    w.sample("process_cpu_seconds_total", {}, p.cpu_seconds);
    w.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.",
            p.start_time_seconds);
}

} // namespace

std::string render_metrics(const metrics_inputs& in, const http_metrics& http)
{
    exposition_writer w;
    render_node(w, in);
    if (in.node) {
        render_counters(w, *in.node);
        render_peers(w, in.status, *in.node);
    }
    if (in.apply_ns)
        seconds_histogram(w, "raftkv_apply_duration_seconds", "Time to apply one batch to the state machine.",
                          *in.apply_ns);
    if (in.checkpoint_ns)
        seconds_histogram(w, "raftkv_snapshot_duration_seconds",
                          "Time to take one snapshot (a checkpoint of the state machine).",
                          *in.checkpoint_ns);
    if (in.wal)
        render_wal(w, *in.wal, in.wal_segments);
    render_http(w, http, in.connections);
    w.counter("raftkv_write_retries_total",
              "Writes proposed again within their request: overwritten by a new leader, or carrying a "
              "client session when the leader changed before they were applied.",
              in.write_retries);
    render_watches(w, in);
    w.gauge("raftkv_state_bytes", "Bytes of the key-value state's tables on disk, measured each second.",
            static_cast<double>(in.state_bytes));
    w.gauge("raftkv_quota_bytes",
            "--quota-bytes: past it, writes other than deletes are refused (0: no quota).",
            static_cast<double>(in.quota_bytes));
    w.counter("raftkv_quota_refusals_total", "Writes answered 507 because the state was past --quota-bytes.",
              in.quota_refusals);
    w.counter("raftkv_state_compactions_total",
              "Compactions of the whole state this node completed: after a snapshot install or a restore "
              "replaced its state, and while it was past --quota-bytes.",
              in.state_compactions);
    render_process(w, in.process);
    return w.take();
}

} // namespace raftkv::server
