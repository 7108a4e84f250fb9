#ifndef RAFTKV_SERVER_METRICS_HPP
#define RAFTKV_SERVER_METRICS_HPP

// raftkv-server's GET /metrics: the Prometheus text exposition format (version 0.0.4) of
// what the node, its log and state machine, the HTTP server and the process report. The
// library keeps its own counters as plain data (<raftkv/metrics.hpp>); this file owns the
// HTTP counters, which every request updates, and turns everything into text. Every metric
// is listed in docs/metrics.md.
//
//     http_metrics http;
//     http.record(route_label_of(route::kv), http::verb::put, 200, elapsed);   // per request
//     std::string text = render_metrics(inputs, http);                          // per scrape

#include "request_parsing.hpp"

#include <raftkv/metrics.hpp>
#include <raftkv/types.hpp>
#include <raftkv/wal/log_store.hpp>

#include <boost/beast/http/verb.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace raftkv::server {

/// The Content-Type of GET /metrics.
inline constexpr std::string_view metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";

/// A request's route as a metric label: one per `route`, and `unmatched` for a request no
/// route took (404) or refused before it was routed.
inline constexpr std::size_t route_label_count = static_cast<std::size_t>(route::metrics) + 2;
inline constexpr std::size_t unmatched_route = route_label_count - 1;

/// The label index of `r`.
constexpr std::size_t route_label_of(route r) noexcept
{
    return static_cast<std::size_t>(r);
}

/// The label value of route label `index` ("kv", "status", ..., "unmatched").
std::string_view route_label_name(std::size_t index) noexcept;

/** Fixed-bucket histogram of durations, for a path hot enough that it must not lock:
    each bucket, the count and the sum are relaxed atomics; a reader sums the buckets into
    the cumulative form Prometheus wants. A reader may see a request in one bucket and not
    yet in the sum: fine for monitoring.
*/
class duration_histogram {
public:
    /// The upper bounds of the buckets, in seconds (the last bucket, +Inf, is implicit).
    static constexpr std::array<double, 16> bounds = {
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

    void record(std::chrono::nanoseconds d) noexcept;

    struct snapshot {
        /// Cumulative: [k] counts the durations at most bounds[k]; the last is +Inf.
        std::array<std::uint64_t, bounds.size() + 1> cumulative{};
        double sum_seconds = 0;
        std::uint64_t count() const noexcept { return cumulative.back(); }
    };
    snapshot read() const noexcept;

private:
    std::array<std::atomic<std::uint64_t>, bounds.size() + 1> buckets_{};
    std::atomic<std::uint64_t> sum_ns_{0};
};

/** The counters of the HTTP API: requests by route, method and status code, and their
    duration by route. record() is lock-free (three relaxed atomic adds) and may be called
    from any thread.
*/
class http_metrics {
public:
    /// The methods and status codes counted under their own label; others count as
    /// method "other" and code "other".
    static constexpr std::array<boost::beast::http::verb, 6> methods = {
        boost::beast::http::verb::get,  boost::beast::http::verb::put,  boost::beast::http::verb::delete_,
        boost::beast::http::verb::post, boost::beast::http::verb::head, boost::beast::http::verb::patch};
    /// Every code the server answers with, so that none is counted as "other".
    static constexpr std::array<unsigned, 22> codes = {200, 201, 204, 304, 400, 401, 403, 404, 405, 409, 410,
                                                       412, 413, 415, 417, 422, 429, 431, 500, 501, 503, 507};

    /// Counts one answered request. REQUIRES: route_label < route_label_count.
    void record(std::size_t route_label, boost::beast::http::verb method, unsigned status,
                std::chrono::nanoseconds elapsed) noexcept;

    /// Counts one response the HTTP server sent itself, before routing
    /// (http_server_options::on_refusal), under route label `unmatched`; not timed.
    void record_refusal(boost::beast::http::verb method, unsigned status) noexcept;

    /// Counts one write answered with the recorded outcome of its client session's
    /// sequence, already applied (Raftkv-Replayed).
    void record_replay() noexcept { replays_.fetch_add(1, std::memory_order_relaxed); }
    std::uint64_t replays() const noexcept { return replays_.load(std::memory_order_relaxed); }
    /// A PUT or DELETE refused because its client session's sequence was applied for
    /// another request (422).
    void record_sequence_reuse() noexcept { sequence_reuses_.fetch_add(1, std::memory_order_relaxed); }
    std::uint64_t sequence_reuses() const noexcept
    {
        return sequence_reuses_.load(std::memory_order_relaxed);
    }

    /// The number of requests of route label `r`, method index `m` (into `methods`, or
    /// methods.size() for other) and code index `c` (into `codes`, or codes.size()).
    std::uint64_t requests(std::size_t r, std::size_t m, std::size_t c) const noexcept
    {
        return requests_[r][m][c].load(std::memory_order_relaxed);
    }
    duration_histogram::snapshot duration(std::size_t r) const noexcept { return durations_[r].read(); }

private:
    using per_code = std::array<std::atomic<std::uint64_t>, codes.size() + 1>;
    std::array<std::array<per_code, methods.size() + 1>, route_label_count> requests_{};
    std::array<duration_histogram, route_label_count> durations_{};
    std::atomic<std::uint64_t> replays_{0};
    std::atomic<std::uint64_t> sequence_reuses_{0};
};

/// The HTTP server's connection counters (http_server).
struct connection_counts {
    std::uint64_t open = 0;
    /// Turned away with a 503 at --max-connections because none was idle.
    std::uint64_t rejected = 0;
    /// Idle connections closed to admit new ones at --max-connections.
    std::uint64_t evicted = 0;
    /// Streamed responses (watches) closed because their client stopped reading
    /// (http_server::stalled_streams()).
    std::uint64_t stalled_streams = 0;
    /// Connections reset for holding too many bytes of responses their client had not read
    /// (http_server::held_response_closes()).
    std::uint64_t held_response_closes = 0;
};

/// What the process uses, read from /proc (zero where it cannot be read).
struct process_stats {
    std::uint64_t resident_bytes = 0;
    std::uint64_t virtual_bytes = 0;
    std::uint64_t open_fds = 0;
    std::uint64_t max_fds = 0;
    double cpu_seconds = 0;
    /// Unix time, in seconds.
    double start_time_seconds = 0;
};

/// Reads this process's process_stats; `start` is when it started.
process_stats read_process_stats(std::chrono::system_clock::time_point start);

/// Everything GET /metrics reports besides the HTTP counters.
struct metrics_inputs {
    node_status status;
    /// Whether the node's storage failed (it then reports its last status, no counters).
    bool storage_failed = false;
    /// Whether the node knows it was removed (kv_service::removed()).
    bool removed = false;
    /// The running node's counters, log and state machine; absent while storage failed.
    std::optional<node_metrics> node;
    std::optional<wal::log_store_stats> wal;
    std::size_t wal_segments = 0;
    /// The state machine's apply and checkpoint durations, in nanoseconds
    /// (raftkv::leveldb::kv_state_machine_stats).
    std::optional<log2_histogram> apply_ns;
    std::optional<log2_histogram> checkpoint_ns;
    connection_counts connections;
    process_stats process;
    /// GET /watch streams open, and what the change journal holds (watch.hpp).
    std::uint64_t watchers = 0;
    std::uint64_t watch_history_entries = 0;
    std::uint64_t watch_history_bytes = 0;
    /// Writes proposed again after a leader change (kv_service.cpp, propose()); not those
    /// retried during a leadership transfer.
    std::uint64_t write_retries = 0;
    /// The state's tables on disk, --quota-bytes (0: none), the writes it refused, and the
    /// compactions the node ran over it.
    std::uint64_t state_bytes = 0;
    std::uint64_t quota_bytes = 0;
    std::uint64_t quota_refusals = 0;
    std::uint64_t state_compactions = 0;
};

/** Writes the Prometheus text format: one `# HELP` and one `# TYPE` line per family,
    then its samples, with label values and help text escaped as the format requires.
*/
class exposition_writer {
public:
    using label = std::pair<std::string_view, std::string_view>;

    /// Starts a family. `type` is counter, gauge or histogram.
    void family(std::string_view name, std::string_view type, std::string_view help);
    void sample(std::string_view name, std::initializer_list<label> labels, double value);
    void sample(std::string_view name, std::initializer_list<label> labels, std::uint64_t value);
    /// A family of one sample without labels.
    void gauge(std::string_view name, std::string_view help, double value);
    void counter(std::string_view name, std::string_view help, std::uint64_t value);

    /// The samples of one histogram: `{name}_bucket` for each bound (`cumulative[k]` values
    /// at most `bounds[k]`) and +Inf (`count`), `{name}_sum`, `{name}_count`; `extra` is one
    /// more label for every sample (empty name: none).
    void histogram(std::string_view name, label extra, std::span<const double> bounds,
                   std::span<const std::uint64_t> cumulative, std::uint64_t count, double sum);

    /// A log2_histogram's buckets 2^k for k in [first, last] by `step`, each bound divided
    /// by `divisor` (1e9 for nanoseconds as seconds), and its sum divided the same.
    void histogram(std::string_view name, label extra, const log2_histogram& h, std::size_t first,
                   std::size_t last, std::size_t step, double divisor);

    const std::string& text() const noexcept { return out_; }
    std::string take() noexcept { return std::move(out_); }

private:
    void write_sample(std::string_view name, std::string_view suffix, std::initializer_list<label> labels,
                      label extra, std::string_view value);

    std::string out_;
};

/// Formats a sample value as the format reads it: integers in full, others in the
/// shortest form that reads back the same, and NaN, +Inf and -Inf by name.
std::string format_value(double v);

/// The whole text of GET /metrics.
std::string render_metrics(const metrics_inputs& in, const http_metrics& http);

} // namespace raftkv::server

#endif
