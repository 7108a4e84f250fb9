// raftkv-loadgen: a closed-loop HTTP/1.1 load generator that drives raftkv's API and etcd's v3
// JSON gateway through the same code, spending as little CPU per request as it can, so that on a
// small machine the servers measured get the CPU. See bench/README.md.
//
// Each thread runs one epoll loop over its non-blocking keep-alive connections. Every connection
// keeps --pipeline requests outstanding (1: the next request goes out when the answer to the
// previous one is in, as with wrk). Requests are formatted once per connection; only the key
// digits and the value are written into them before each send. Latency is from the request's
// write to its response's last byte, in a log-linear histogram with 256 buckets per power of
// two (under 0.4% error). The last line printed, "BENCH key=value ...", is what bench/run.sh
// parses; it has the fields of the wrk scripts' line and a few more.

#include "response_parser.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using raftkv::loadgen::parse_response;
using raftkv::loadgen::parse_status;

// ---------------------------------------------------------------------------------------------
// Options

enum class system_kind { raftkv, etcd };
enum class workload_kind { write, read, mixed, prefill };
/// How reads are asked for: linearizable (raftkv's default, etcd's default range), lease
/// (raftkv ?consistency=lease; etcd has none, so its linearizable range), or stale (raftkv
/// ?consistency=stale, etcd "serializable": true: answered by the node asked, from its
/// own state, without asking the leader).
enum class read_kind { linearizable, lease, stale };

struct endpoint {
    std::string name; // host:port as given, also sent as the Host header
    sockaddr_storage address{};
    socklen_t address_size = 0;
};

struct options {
    system_kind system = system_kind::raftkv;
    workload_kind workload = workload_kind::write;
    read_kind reads = read_kind::linearizable;
    int connections = 64;
    int threads = 1;
    double duration_s = 10;
    double warmup_s = 0;
    int pipeline = 1;
    std::vector<endpoint> endpoints;
    int keys = 100000;
    int value_bytes = 128;
    int read_percent = 90;
    double timeout_s = 10;
    std::uint64_t seed = 0;
};

void usage(std::FILE* out)
{
    std::fputs(
        R"(usage: raftkv-loadgen --target raftkv|etcd --endpoints HOST:PORT[,HOST:PORT...] [options]
       raftkv-loadgen --baseline DIR [SAMPLES]

Closed-loop HTTP/1.1 load on raftkv (PUT/GET /kv/<key>) or etcd's v3 JSON gateway
(POST /v3/kv/put, /v3/kv/range, linearizable), keys k00000.. uniformly at random.
read-lease reads with raftkv's ?consistency=lease (etcd has no lease reads: its
linearizable range); read-stale with raftkv's ?consistency=stale and etcd's
"serializable": true (each node answers from its own state, possibly behind).
Connection i goes to endpoint (i mod number of endpoints). Prints one line
"BENCH requests=... throughput=... p50_ms=... p99_ms=... p999_ms=... max_ms=..." at the end.

Options:
  --target SYSTEM       raftkv or etcd: which API to speak (required)
  --endpoints LIST      host:port,...: the nodes, connections spread round-robin (required)
  --workload NAME       write, read, read-lease, read-stale, mixed (--read-percent reads) or
                        prefill (every key once, then exit; --duration is then the limit)
                        (default: write)
  --connections N       open connections (default: 64)
  --threads N           event-loop threads, connections spread over them (default: 1)
  --duration SECONDS    measured time (default: 10)
  --warmup SECONDS      load before the measured time, not counted (default: 0)
  --pipeline N          requests outstanding per connection (default: 1)
  --keys N              key space, 1..100000 (default: 100000)
  --value-bytes N       value size; 2 mod 3 for etcd (default: 128)
  --read-percent N      reads in the mixed workload (default: 90)
  --timeout SECONDS     a request unanswered this long is a timeout; its connection is
                        reopened (default: 10)
  --seed N              random seed (default: from the clock)
  -h, --help            print this help

--baseline measures what a replicated write cannot go below on this machine, for the
one-connection write target: SAMPLES (default 1000) 256-byte appends to a pre-written file
in DIR, each made durable with fdatasync, and SAMPLES round trips of 256 bytes over a
loopback TCP connection between two threads. Prints one line "BASELINE fsync_p50_ms=...
fsync_mean_ms=... rtt_p50_ms=... rtt_mean_ms=... samples=...".
)",
        out);
}

[[noreturn]] void die(const std::string& message)
{
    std::fprintf(stderr, "raftkv-loadgen: %s\n", message.c_str());
    std::exit(2);
}

long parse_int(std::string_view flag, std::string_view text, long low, long high)
{
    long value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value < low || value > high)
        die(std::string(flag) + ": expected a whole number from " + std::to_string(low) + " to " +
            std::to_string(high) + ", got '" + std::string(text) + "'");
    return value;
}

double parse_seconds(std::string_view flag, std::string_view text, double low)
{
    char* end = nullptr;
    const std::string copy(text);
    const double value = std::strtod(copy.c_str(), &end);
    if (copy.empty() || *end != '\0' || !(value >= low) || value > 86400)
        die(std::string(flag) + ": expected seconds, at least " + std::to_string(low) + ", got '" + copy +
            "'");
    return value;
}

endpoint resolve(std::string_view text)
{
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
        die("--endpoints: expected host:port, got '" + std::string(text) + "'");
    std::string host(text.substr(0, colon));
    const std::string port(text.substr(colon + 1));
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
        die("--endpoints: cannot resolve '" + std::string(text) + "': " + ::gai_strerror(rc));
    endpoint e;
    e.name = std::string(text);
    std::memcpy(&e.address, found->ai_addr, found->ai_addrlen);
    e.address_size = found->ai_addrlen;
    ::freeaddrinfo(found);
    return e;
}

options parse_options(int argc, char** argv)
{
    options o;
    bool have_target = false;
    o.seed =
        static_cast<std::uint64_t>(std::time(nullptr)) * 1000003u + static_cast<std::uint64_t>(::getpid());
    for (int i = 1; i < argc; ++i) {
        std::string_view flag = argv[i];
        if (flag == "-h" || flag == "--help") {
            usage(stdout);
            std::exit(0);
        }
        std::string_view value;
        if (const std::size_t eq = flag.find('='); flag.starts_with("--") && eq != std::string_view::npos) {
            value = flag.substr(eq + 1);
            flag = flag.substr(0, eq);
        } else {
            if (i + 1 >= argc)
                die(std::string(flag) + " needs a value (see --help)");
            value = argv[++i];
        }
        if (flag == "--target") {
            if (value == "raftkv")
                o.system = system_kind::raftkv;
            else if (value == "etcd")
                o.system = system_kind::etcd;
            else
                die("--target: raftkv or etcd, got '" + std::string(value) + "'");
            have_target = true;
        } else if (flag == "--workload") {
            if (value == "write")
                o.workload = workload_kind::write;
            else if (value == "read")
                o.workload = workload_kind::read;
            else if (value == "read-lease") {
                o.workload = workload_kind::read;
                o.reads = read_kind::lease;
            } else if (value == "read-stale") {
                o.workload = workload_kind::read;
                o.reads = read_kind::stale;
            } else if (value == "mixed")
                o.workload = workload_kind::mixed;
            else if (value == "prefill")
                o.workload = workload_kind::prefill;
            else
                die("--workload: write, read, read-lease, read-stale, mixed or prefill, got '" +
                    std::string(value) + "'");
        } else if (flag == "--endpoints") {
            o.endpoints.clear();
            while (!value.empty()) {
                const std::size_t comma = value.find(',');
                o.endpoints.push_back(resolve(value.substr(0, comma)));
                value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
            }
        } else if (flag == "--connections") {
            o.connections = static_cast<int>(parse_int(flag, value, 1, 20000));
        } else if (flag == "--threads") {
            o.threads = static_cast<int>(parse_int(flag, value, 1, 64));
        } else if (flag == "--duration") {
            o.duration_s = parse_seconds(flag, value, 0.001);
        } else if (flag == "--warmup") {
            o.warmup_s = parse_seconds(flag, value, 0);
        } else if (flag == "--pipeline") {
            o.pipeline = static_cast<int>(parse_int(flag, value, 1, 1024));
        } else if (flag == "--keys") {
            o.keys = static_cast<int>(parse_int(flag, value, 1, 100000));
        } else if (flag == "--value-bytes") {
            o.value_bytes = static_cast<int>(parse_int(flag, value, 2, 64 * 1024));
        } else if (flag == "--read-percent") {
            o.read_percent = static_cast<int>(parse_int(flag, value, 0, 100));
        } else if (flag == "--timeout") {
            o.timeout_s = parse_seconds(flag, value, 0.001);
        } else if (flag == "--seed") {
            o.seed = static_cast<std::uint64_t>(parse_int(flag, value, 0, 1L << 62));
        } else {
            die("unknown argument '" + std::string(flag) + "' (see --help)");
        }
    }
    if (!have_target)
        die("--target raftkv|etcd is required (see --help)");
    if (o.endpoints.empty())
        die("--endpoints host:port,... is required (see --help)");
    if (o.system == system_kind::etcd && o.value_bytes % 3 != 2)
        die("--value-bytes: must be 2 mod 3 for etcd (128 is), so that the base64 value ends in one '='");
    o.threads = std::min(o.threads, o.connections);
    if (o.workload == workload_kind::prefill)
        o.warmup_s = 0; // every key once: nothing to throw away
    return o;
}

// ---------------------------------------------------------------------------------------------
// Time, randomness, statistics

std::int64_t now_ns()
{
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// xoshiro256** seeded by splitmix64: fast, and good enough to pick keys and offsets.
class random_source {
public:
    explicit random_source(std::uint64_t seed)
    {
        for (auto& word : s_) {
            seed += 0x9e3779b97f4a7c15u;
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
            word = z ^ (z >> 31);
        }
    }
    std::uint64_t next()
    {
        const std::uint64_t result = std::rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = std::rotl(s_[3], 45);
        return result;
    }
    /// Uniform in [0, n) (the modulo bias is below 1e-13 for the n used here).
    std::uint64_t below(std::uint64_t n) { return next() % n; }

private:
    std::array<std::uint64_t, 4> s_{};
};

/// Log-linear histogram of nanoseconds: exact below 256 ns, then 256 buckets per power of two.
class histogram {
public:
    static constexpr int sub_bits = 8;
    static constexpr std::uint64_t sub_count = 1u << sub_bits;
    static constexpr int max_exponent = 44; // ~4.9 hours; longer values land in the last bucket

    histogram() : counts_(bucket_count(), 0) {}

    void record(std::int64_t ns)
    {
        const auto v = static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0));
        ++counts_[std::min(index(v), bucket_count() - 1)];
        ++count_;
        max_ = std::max(max_, v);
    }
    void merge(const histogram& other)
    {
        for (std::size_t i = 0; i < counts_.size(); ++i)
            counts_[i] += other.counts_[i];
        count_ += other.count_;
        max_ = std::max(max_, other.max_);
    }
    std::uint64_t count() const { return count_; }
    std::uint64_t max() const { return max_; }

    /// The p-th percentile in ns, ranked as wrk does (the value at rank round(p/100*n + 0.5)),
    /// reported as the middle of its bucket.
    double percentile(double p) const
    {
        if (count_ == 0)
            return 0;
        const auto rank = static_cast<std::uint64_t>(p / 100.0 * static_cast<double>(count_) + 1.0);
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= rank)
                return std::min(middle(i), static_cast<double>(max_));
        }
        return static_cast<double>(max_);
    }

private:
    static std::size_t bucket_count() { return sub_count + (max_exponent - sub_bits + 1) * sub_count; }
    static std::size_t index(std::uint64_t v)
    {
        if (v < sub_count)
            return v;
        const int exponent = 63 - std::countl_zero(v); // >= sub_bits
        const int shift = exponent - sub_bits;
        return sub_count + static_cast<std::size_t>(shift) * sub_count + ((v >> shift) - sub_count);
    }
    static double middle(std::size_t i)
    {
        if (i < sub_count)
            return static_cast<double>(i);
        const std::size_t shift = (i - sub_count) / sub_count;
        const std::uint64_t mantissa = sub_count + (i - sub_count) % sub_count;
        const std::uint64_t width = std::uint64_t{1} << shift;
        return static_cast<double>(mantissa << shift) + static_cast<double>(width - 1) / 2;
    }

    std::vector<std::uint64_t> counts_;
    std::uint64_t count_ = 0;
    std::uint64_t max_ = 0;
};

struct counters {
    std::uint64_t requests = 0; // answered in the measured time, errors included
    std::uint64_t ok = 0;
    std::uint64_t non2xx = 0;
    std::uint64_t missing = 0;
    std::uint64_t connect_errors = 0;
    std::uint64_t read_errors = 0;
    std::uint64_t write_errors = 0;
    std::uint64_t protocol_errors = 0; // responses the parser refused
    std::uint64_t timeouts = 0;
    std::uint64_t prefill_acked = 0;
    std::uint64_t prefill_size = 0;
    std::string error_sample;

    std::uint64_t socket_errors() const
    {
        return connect_errors + read_errors + write_errors + protocol_errors + timeouts;
    }
    void merge(const counters& o)
    {
        requests += o.requests;
        ok += o.ok;
        non2xx += o.non2xx;
        missing += o.missing;
        connect_errors += o.connect_errors;
        read_errors += o.read_errors;
        write_errors += o.write_errors;
        protocol_errors += o.protocol_errors;
        timeouts += o.timeouts;
        prefill_acked += o.prefill_acked;
        prefill_size += o.prefill_size;
        if (error_sample.empty())
            error_sample = o.error_sample;
    }
};

// ---------------------------------------------------------------------------------------------
// Requests: formatted once per connection, patched before each send

constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
constexpr std::size_t key_digits = 5;   // keys are "k00000".."k99999"
constexpr std::size_t key_b64_size = 8; // base64 of the 6-byte key
constexpr std::size_t pool_size = 256 * 1024;

/// A request with the places to patch: the key's digits (raftkv) or its base64 (etcd) and the
/// value; npos where the request has none.
struct request_template {
    std::string text;
    std::size_t key_at = std::string::npos;
    std::size_t value_at = std::string::npos;
};

void write_digits(char* out, std::uint64_t key)
{
    for (std::size_t i = key_digits; i-- > 0;) {
        out[i] = static_cast<char>('0' + key % 10);
        key /= 10;
    }
}

void write_key_base64(char* out, std::uint64_t key)
{
    std::array<unsigned char, 6> raw{'k'};
    write_digits(reinterpret_cast<char*>(raw.data() + 1), key);
    for (std::size_t g = 0; g < 2; ++g) {
        const std::uint32_t n =
            (std::uint32_t{raw[3 * g]} << 16) | (std::uint32_t{raw[3 * g + 1]} << 8) | raw[3 * g + 2];
        out[4 * g] = base64_alphabet[(n >> 18) & 63];
        out[4 * g + 1] = base64_alphabet[(n >> 12) & 63];
        out[4 * g + 2] = base64_alphabet[(n >> 6) & 63];
        out[4 * g + 3] = base64_alphabet[n & 63];
    }
}

/// Formats a request as wrk.format() does: request line, Host, then Content-Type and
/// Content-Length when there is a body.
request_template format_request(std::string_view method, std::string_view path, const std::string& host,
                                std::string_view body_before, std::size_t body_gap,
                                std::string_view body_after)
{
    request_template t;
    t.text.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: ").append(host).append("\r\n");
    const std::size_t body_size = body_before.size() + body_gap + body_after.size();
    if (body_size > 0)
        t.text.append("Content-Type: application/json\r\nContent-Length: ")
            .append(std::to_string(body_size))
            .append("\r\n");
    t.text.append("\r\n");
    const std::size_t body_at = t.text.size();
    t.text.append(body_before).append(body_gap, 'x').append(body_after);
    if (body_gap > 0)
        t.value_at = body_at + body_before.size();
    return t;
}

struct request_kit {
    request_template read;
    request_template write;
};

request_kit make_requests(const options& o, const std::string& host)
{
    request_kit kit;
    const auto size = static_cast<std::size_t>(o.value_bytes);
    if (o.system == system_kind::raftkv) {
        const std::string path = "/kv/k" + std::string(key_digits, '0');
        const char* query = o.reads == read_kind::lease   ? "?consistency=lease"
                            : o.reads == read_kind::stale ? "?consistency=stale"
                                                          : "";
        kit.read = format_request("GET", path + query, host, "", 0, "");
        kit.read.key_at = kit.read.text.find("/kv/k") + 5;
        kit.write = format_request("PUT", path, host, R"({"value":")", size, R"("})");
        kit.write.key_at = kit.write.text.find("/kv/k") + 5;
    } else {
        const std::string key(key_b64_size, 'A');
        const char* serializable = o.reads == read_kind::stale ? R"(,"serializable":true)" : "";
        kit.read = format_request("POST", "/v3/kv/range", host,
                                  R"({"key":")" + key + R"(")" + serializable + "}", 0, "");
        kit.read.key_at = kit.read.text.find(R"({"key":")") + 8;
        const std::size_t b64_size = (size + 1) / 3 * 4;
        kit.write = format_request("POST", "/v3/kv/put", host, R"({"key":")" + key + R"(","value":")",
                                   b64_size, R"("})");
        kit.write.key_at = kit.write.text.find(R"({"key":")") + 8;
    }
    return kit;
}

/// Random text values are cut from: [A-Za-z0-9] for raftkv (sent as a JSON string), base64
/// digits for etcd (the value is then value_bytes random bytes).
std::string make_pool(system_kind system, random_source& random)
{
    const std::string_view alphabet = system == system_kind::raftkv ? alphanumeric : base64_alphabet;
    std::string pool(pool_size, ' ');
    for (char& c : pool)
        c = alphabet[random.below(alphabet.size())];
    return pool;
}

// ---------------------------------------------------------------------------------------------
// The event loop

std::atomic<bool> interrupted{false};

struct pending_request {
    std::int64_t sent_ns = 0;
    bool read = false;
};

struct connection {
    int fd = -1;
    bool connecting = false;
    bool want_write = false;      // EPOLLOUT is registered
    std::int64_t retry_at_ns = 0; // when closed after a connect error: when to try again
    const endpoint* target = nullptr;
    request_kit requests;
    std::string out; // bytes still to send
    std::size_t out_sent = 0;
    std::vector<char> in; // bytes received, not yet parsed
    std::size_t in_size = 0;
    std::vector<pending_request> queue; // a ring of --pipeline entries, oldest at queue_head
    std::size_t queue_head = 0;
    std::size_t queue_count = 0;
};

class worker {
public:
    worker(const options& o, int index, std::int64_t start_ns)
        : o_(o), random_(o.seed * 7919 + static_cast<std::uint64_t>(index) + 1),
          measure_from_ns_(start_ns + static_cast<std::int64_t>(o.warmup_s * 1e9)),
          measure_until_ns_(measure_from_ns_ + static_cast<std::int64_t>(o.duration_s * 1e9)),
          timeout_ns_(static_cast<std::int64_t>(o.timeout_s * 1e9))
    {
        pool_ = make_pool(o.system, random_);
        std::vector<request_kit> kits;
        for (const endpoint& e : o.endpoints)
            kits.push_back(make_requests(o, e.name));
        for (int i = index; i < o.connections; i += o.threads) {
            auto c = std::make_unique<connection>();
            const auto e = static_cast<std::size_t>(i) % o.endpoints.size();
            c->target = &o.endpoints[e];
            c->requests = kits[e];
            c->in.resize(16 * 1024);
            c->queue.resize(static_cast<std::size_t>(o.pipeline));
            c->out.reserve(c->requests.write.text.size() * static_cast<std::size_t>(o.pipeline));
            connections_.push_back(std::move(c));
        }
        if (o.workload == workload_kind::prefill) {
            // Thread i writes its own contiguous slice of the key space, once, in order.
            prefill_next_ = static_cast<std::uint64_t>(index) * static_cast<std::uint64_t>(o.keys) /
                            static_cast<std::uint64_t>(o.threads);
            prefill_end_ = static_cast<std::uint64_t>(index + 1) * static_cast<std::uint64_t>(o.keys) /
                           static_cast<std::uint64_t>(o.threads);
            stats_.prefill_size = prefill_end_ - prefill_next_;
            measure_from_ns_ = start_ns;
        }
    }

    void run()
    {
        epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epoll_ < 0)
            die(std::string("epoll_create1: ") + std::strerror(errno));
        for (auto& c : connections_)
            open(*c);
        std::array<epoll_event, 256> events{};
        std::int64_t next_check_ns = now_ns() + 50'000'000;
        while (!interrupted.load(std::memory_order_relaxed) && !prefill_done()) {
            const std::int64_t now = now_ns();
            if (now >= measure_until_ns_)
                break;
            if (now >= next_check_ns) {
                check_connections(now);
                next_check_ns = now + 50'000'000;
            }
            const auto wait_ms = static_cast<int>(std::clamp<std::int64_t>(
                (std::min(measure_until_ns_, next_check_ns) - now) / 1'000'000 + 1, 1, 50));
            const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), wait_ms);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                die(std::string("epoll_wait: ") + std::strerror(errno));
            }
            for (int i = 0; i < n; ++i)
                on_event(*static_cast<connection*>(events[static_cast<std::size_t>(i)].data.ptr),
                         events[static_cast<std::size_t>(i)].events);
        }
        end_ns_ = std::min(now_ns(), measure_until_ns_);
        for (auto& c : connections_)
            if (c->fd >= 0)
                ::close(c->fd);
        ::close(epoll_);
    }

    const counters& stats() const { return stats_; }
    const histogram& latency() const { return latency_; }
    std::int64_t measure_from_ns() const { return measure_from_ns_; }
    std::int64_t end_ns() const { return end_ns_; }

private:
    bool prefill_done() const
    {
        return o_.workload == workload_kind::prefill &&
               stats_.prefill_acked + failed_prefill_ >= stats_.prefill_size;
    }

    void open(connection& c)
    {
        c.out.clear();
        c.out_sent = 0;
        c.in_size = 0;
        c.queue_head = 0;
        c.queue_count = 0;
        c.retry_at_ns = 0;
        c.fd = ::socket(c.target->address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c.fd < 0)
            die(std::string("socket: ") + std::strerror(errno));
        const int one = 1;
        ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        const int rc =
            ::connect(c.fd, reinterpret_cast<const sockaddr*>(&c.target->address), c.target->address_size);
        if (rc < 0 && errno != EINPROGRESS) {
            fail_connect(c);
            return;
        }
        c.connecting = true;
        c.want_write = true;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.ptr = &c;
        if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev) < 0)
            die(std::string("epoll_ctl: ") + std::strerror(errno));
    }

    void close(connection& c)
    {
        if (c.fd >= 0)
            ::close(c.fd); // also removes it from the epoll set
        c.fd = -1;
        c.connecting = false;
        c.want_write = false;
        if (o_.workload == workload_kind::prefill)
            failed_prefill_ += c.queue_count; // those keys are lost: the run has failed
        c.queue_count = 0;
    }

    /// A connect that failed: counted, and tried again a little later rather than in a spin.
    void fail_connect(connection& c)
    {
        ++stats_.connect_errors;
        close(c);
        c.retry_at_ns = now_ns() + 100'000'000;
    }

    /// A connection that broke or was closed by the server: reopened at once, as wrk does.
    void reopen(connection& c)
    {
        close(c);
        open(c);
    }

    void check_connections(std::int64_t now)
    {
        for (auto& c : connections_) {
            if (c->fd < 0) {
                if (c->retry_at_ns != 0 && now >= c->retry_at_ns)
                    open(*c);
            } else if (c->queue_count > 0 && now - c->queue[c->queue_head].sent_ns > timeout_ns_) {
                stats_.timeouts += c->queue_count;
                note_error("timeout: no answer within --timeout");
                reopen(*c);
            }
        }
    }

    void set_want_write(connection& c, bool want)
    {
        if (c.want_write == want)
            return;
        c.want_write = want;
        epoll_event ev{};
        ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
        ev.data.ptr = &c;
        ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
    }

    void on_event(connection& c, std::uint32_t events)
    {
        if (c.fd < 0)
            return;
        if (c.connecting) {
            int error = 0;
            socklen_t size = sizeof error;
            ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &size);
            if (error != 0 || (events & (EPOLLERR | EPOLLHUP)) != 0) {
                if (stats_.error_sample.empty())
                    stats_.error_sample = "connect to " + c.target->name + ": " + std::strerror(error);
                fail_connect(c);
                return;
            }
            c.connecting = false;
            fill(c);
            flush(c);
            return;
        }
        if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
            receive(c);
            if (c.fd < 0 || c.connecting)
                return;
        }
        if ((events & EPOLLOUT) != 0)
            flush(c);
    }

    /// Queues requests until --pipeline are outstanding (none once the measured time is over).
    void fill(connection& c)
    {
        if (c.queue_count >= c.queue.size())
            return;
        const std::int64_t now = now_ns();
        if (now >= measure_until_ns_)
            return;
        while (c.queue_count < c.queue.size()) {
            bool read = false;
            std::uint64_t key = 0;
            switch (o_.workload) {
            case workload_kind::write: key = random_.below(static_cast<std::uint64_t>(o_.keys)); break;
            case workload_kind::read:
                read = true;
                key = random_.below(static_cast<std::uint64_t>(o_.keys));
                break;
            case workload_kind::mixed:
                key = random_.below(static_cast<std::uint64_t>(o_.keys));
                read = random_.below(100) < static_cast<std::uint64_t>(o_.read_percent);
                break;
            case workload_kind::prefill:
                if (prefill_next_ >= prefill_end_)
                    return;
                key = prefill_next_++;
                break;
            }
            request_template& t = read ? c.requests.read : c.requests.write;
            patch(t, key);
            c.out.append(t.text);
            c.queue[(c.queue_head + c.queue_count) % c.queue.size()] = {now, read};
            ++c.queue_count;
        }
    }

    void patch(request_template& t, std::uint64_t key)
    {
        if (o_.system == system_kind::raftkv)
            write_digits(t.text.data() + t.key_at, key);
        else
            write_key_base64(t.text.data() + t.key_at, key);
        if (t.value_at == std::string::npos)
            return;
        const auto size = static_cast<std::size_t>(o_.value_bytes);
        char* value = t.text.data() + t.value_at;
        if (o_.system == system_kind::raftkv) {
            std::memcpy(value, pool_.data() + random_.below(pool_size - size), size);
            return;
        }
        // value_bytes random bytes in base64: 2 mod 3 bytes end in one '=', and the digit before
        // it carries two zero bits.
        constexpr std::string_view last_digits = "AEIMQUYcgkosw048";
        const std::size_t b64_size = (size + 1) / 3 * 4;
        std::memcpy(value, pool_.data() + random_.below(pool_size - b64_size), b64_size - 2);
        value[b64_size - 2] = last_digits[random_.below(last_digits.size())];
        value[b64_size - 1] = '=';
    }

    void flush(connection& c)
    {
        while (c.out_sent < c.out.size()) {
            const ssize_t n =
                ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    set_want_write(c, true);
                    return;
                }
                ++stats_.write_errors;
                note_error(std::string("write to ") + c.target->name + ": " + std::strerror(errno));
                reopen(c);
                return;
            }
            c.out_sent += static_cast<std::size_t>(n);
        }
        c.out.clear();
        c.out_sent = 0;
        set_want_write(c, false);
    }

    void receive(connection& c)
    {
        for (;;) {
            if (c.in_size == c.in.size())
                c.in.resize(c.in.size() * 2);
            const ssize_t n = ::recv(c.fd, c.in.data() + c.in_size, c.in.size() - c.in_size, 0);
            if (n > 0) {
                c.in_size += static_cast<std::size_t>(n);
                if (c.in_size < c.in.size())
                    break; // all there was: a second read would only say EAGAIN
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (n < 0 && errno == EINTR)
                continue;
            // The server closed the connection or it broke. With nothing outstanding that is
            // an idle close (not an error); otherwise the requests in flight are lost.
            if (c.queue_count > 0) {
                ++stats_.read_errors;
                note_error(std::string("read from ") + c.target->name + ": " +
                           (n == 0 ? "connection closed by the server" : std::strerror(errno)));
            }
            reopen(c);
            return;
        }
        on_data(c);
    }

    void on_data(connection& c)
    {
        const std::int64_t now = now_ns();
        std::size_t offset = 0;
        bool close_after = false;
        while (offset < c.in_size && !close_after) {
            const auto parsed = parse_response(std::string_view(c.in.data() + offset, c.in_size - offset));
            if (parsed.status == parse_status::incomplete)
                break;
            if (parsed.status == parse_status::error || c.queue_count == 0) {
                ++stats_.protocol_errors;
                note_error(std::string("response from ") + c.target->name + ": " +
                           (parsed.status == parse_status::error ? parsed.error : "an answer to no request"));
                reopen(c);
                return;
            }
            const pending_request request = c.queue[c.queue_head];
            c.queue_head = (c.queue_head + 1) % c.queue.size();
            --c.queue_count;
            const std::string_view body(c.in.data() + offset + parsed.response.body_offset,
                                        parsed.response.body_size);
            count(parsed.response.status, body, request, now);
            offset += parsed.response.size;
            close_after = parsed.response.close;
        }
        if (close_after) {
            reopen(c);
            return;
        }
        if (offset > 0) {
            std::memmove(c.in.data(), c.in.data() + offset, c.in_size - offset);
            c.in_size -= offset;
        }
        fill(c);
        flush(c);
    }

    void count(int status, std::string_view body, const pending_request& request, std::int64_t now)
    {
        if (o_.workload == workload_kind::prefill)
            ++stats_.prefill_acked;
        else if (now < measure_from_ns_ || now >= measure_until_ns_)
            return;
        ++stats_.requests;
        latency_.record(now - request.sent_ns);
        if (status < 200 || status > 299) {
            ++stats_.non2xx;
        } else if (request.read && o_.system == system_kind::etcd &&
                   body.find("\"kvs\"") == std::string_view::npos) {
            ++stats_.missing; // etcd answers a read of a missing key 200 without "kvs"
        } else {
            ++stats_.ok;
            return;
        }
        note_error(std::to_string(status) + " " + std::string(body.substr(0, 200)));
    }

    void note_error(const std::string& what)
    {
        if (stats_.error_sample.empty())
            stats_.error_sample = what;
    }

    const options& o_;
    random_source random_;
    std::string pool_;
    std::vector<std::unique_ptr<connection>> connections_;
    int epoll_ = -1;
    std::int64_t measure_from_ns_;
    std::int64_t measure_until_ns_;
    std::int64_t timeout_ns_;
    std::int64_t end_ns_ = 0;
    std::uint64_t prefill_next_ = 0;
    std::uint64_t prefill_end_ = 0;
    std::uint64_t failed_prefill_ = 0;
    counters stats_;
    histogram latency_;
};

double cpu_seconds()
{
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// --baseline: one fsync and one loopback round trip, the floor under a replicated write

struct sample_summary {
    double p50_ms = 0;
    double mean_ms = 0;
};

sample_summary summarize(std::vector<std::int64_t> ns)
{
    std::sort(ns.begin(), ns.end());
    double sum = 0;
    for (const std::int64_t v : ns)
        sum += static_cast<double>(v);
    return {static_cast<double>(ns[ns.size() / 2]) / 1e6, sum / static_cast<double>(ns.size()) / 1e6};
}

void write_all(int fd, const char* data, std::size_t size, const char* what)
{
    while (size > 0) {
        const ssize_t n = ::write(fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die(std::string(what) + ": " + std::strerror(errno));
        data += n;
        size -= static_cast<std::size_t>(n);
    }
}

void read_exactly(int fd, char* data, std::size_t size, const char* what)
{
    while (size > 0) {
        const ssize_t n = ::read(fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die(std::string(what) + ": " + (n == 0 ? "connection closed" : std::strerror(errno)));
        data += n;
        size -= static_cast<std::size_t>(n);
    }
}

// Appends of `record` bytes to a file whose blocks are written and synced first (as the
// WAL writes zeros ahead of its records), so each fdatasync writes data, not metadata.
std::vector<std::int64_t> time_fsyncs(const std::string& dir, int samples)
{
    constexpr std::size_t record = 256;
    const std::string path = dir + "/raftkv-baseline.probe";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        die("--baseline: cannot create " + path + ": " + std::strerror(errno));
    const std::vector<char> zeros(record * static_cast<std::size_t>(samples), 0);
    write_all(fd, zeros.data(), zeros.size(), "--baseline: cannot write the probe file");
    if (::fsync(fd) != 0)
        die("--baseline: cannot sync the probe file: " + std::string(std::strerror(errno)));
    const std::array<char, record> data{'r', 'a', 'f', 't', 'k', 'v'};
    std::vector<std::int64_t> ns;
    ns.reserve(static_cast<std::size_t>(samples));
    for (int i = 0; i < samples; ++i) {
        const std::int64_t start = now_ns();
        const off_t at = static_cast<off_t>(record) * i;
        if (::pwrite(fd, data.data(), data.size(), at) != static_cast<ssize_t>(data.size()) ||
            ::fdatasync(fd) != 0)
            die("--baseline: cannot append to the probe file: " + std::string(std::strerror(errno)));
        ns.push_back(now_ns() - start);
    }
    ::close(fd);
    ::unlink(path.c_str());
    return ns;
}

// Round trips of 256 bytes between two threads over a loopback TCP connection with
// TCP_NODELAY, as a request and its answer travel between two processes here.
std::vector<std::int64_t> time_round_trips(int samples)
{
    constexpr std::size_t size = 256;
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener, 1) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0)
        die("--baseline: cannot listen on loopback: " + std::string(std::strerror(errno)));
    const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (client < 0 || ::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
        die("--baseline: cannot connect on loopback: " + std::string(std::strerror(errno)));
    const int server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (server < 0)
        die("--baseline: cannot accept on loopback: " + std::string(std::strerror(errno)));
    const int one = 1;
    ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::thread echo([server, samples] {
        std::array<char, size> buffer{};
        for (int i = 0; i < samples; ++i) {
            read_exactly(server, buffer.data(), buffer.size(), "--baseline: echo");
            write_all(server, buffer.data(), buffer.size(), "--baseline: echo");
        }
    });
    std::array<char, size> buffer{'p', 'i', 'n', 'g'};
    std::vector<std::int64_t> ns;
    ns.reserve(static_cast<std::size_t>(samples));
    for (int i = 0; i < samples; ++i) {
        const std::int64_t start = now_ns();
        write_all(client, buffer.data(), buffer.size(), "--baseline: round trip");
        read_exactly(client, buffer.data(), buffer.size(), "--baseline: round trip");
        ns.push_back(now_ns() - start);
    }
    echo.join();
    ::close(client);
    ::close(server);
    ::close(listener);
    return ns;
}

int run_baseline(int argc, char** argv)
{
    if (argc < 3 || argc > 4)
        die("--baseline DIR [SAMPLES] (see --help)");
    const int samples =
        argc == 4 ? static_cast<int>(parse_int("--baseline SAMPLES", argv[3], 10, 100000)) : 1000;
    const sample_summary fsync = summarize(time_fsyncs(argv[2], samples));
    const sample_summary rtt = summarize(time_round_trips(samples));
    std::printf("BASELINE fsync_p50_ms=%.3f fsync_mean_ms=%.3f rtt_p50_ms=%.3f rtt_mean_ms=%.3f samples=%d\n",
                fsync.p50_ms, fsync.mean_ms, rtt.p50_ms, rtt.mean_ms, samples);
    return 0;
}

int main(int argc, char** argv)
{
    if (argc >= 2 && std::string_view(argv[1]) == "--baseline")
        return run_baseline(argc, argv);
    const options o = parse_options(argc, argv);
    struct sigaction on_interrupt {};
    on_interrupt.sa_handler = [](int) { interrupted.store(true); };
    ::sigaction(SIGINT, &on_interrupt, nullptr);
    ::sigaction(SIGTERM, &on_interrupt, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    const std::int64_t start_ns = now_ns();
    std::vector<std::unique_ptr<worker>> workers;
    for (int i = 0; i < o.threads; ++i)
        workers.push_back(std::make_unique<worker>(o, i, start_ns));
    const double cpu_before = cpu_seconds();
    std::vector<std::thread> threads;
    for (auto& w : workers)
        threads.emplace_back([&w] { w->run(); });
    for (auto& t : threads)
        t.join();
    const double cpu = cpu_seconds() - cpu_before;

    counters total;
    histogram latency;
    std::int64_t end_ns = 0;
    for (auto& w : workers) {
        total.merge(w->stats());
        latency.merge(w->latency());
        end_ns = std::max(end_ns, w->end_ns());
    }
    const double seconds =
        std::max(1e-9, static_cast<double>(end_ns - workers.front()->measure_from_ns()) / 1e9);
    if (!total.error_sample.empty())
        std::printf("BENCH_ERROR_SAMPLE %s\n", total.error_sample.c_str());
    if (o.workload == workload_kind::prefill)
        std::printf("BENCH_PREFILL %llu of %llu writes answered\n",
                    static_cast<unsigned long long>(total.prefill_acked),
                    static_cast<unsigned long long>(total.prefill_size));
    const std::uint64_t errors = total.non2xx + total.missing + total.socket_errors();
    std::printf("BENCH tool=native requests=%llu errors=%llu non2xx=%llu missing=%llu socket_errors=%llu "
                "connect_errors=%llu read_errors=%llu write_errors=%llu protocol_errors=%llu timeouts=%llu "
                "duration_s=%.3f throughput=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f "
                "cpu_s=%.3f cpu_us_per_request=%.2f\n",
                static_cast<unsigned long long>(total.requests), static_cast<unsigned long long>(errors),
                static_cast<unsigned long long>(total.non2xx), static_cast<unsigned long long>(total.missing),
                static_cast<unsigned long long>(total.socket_errors()),
                static_cast<unsigned long long>(total.connect_errors),
                static_cast<unsigned long long>(total.read_errors),
                static_cast<unsigned long long>(total.write_errors),
                static_cast<unsigned long long>(total.protocol_errors),
                static_cast<unsigned long long>(total.timeouts), seconds,
                static_cast<double>(total.ok) / seconds, latency.percentile(50) / 1e6,
                latency.percentile(99) / 1e6, latency.percentile(99.9) / 1e6,
                static_cast<double>(latency.max()) / 1e6, cpu,
                total.requests > 0 ? cpu * 1e6 / static_cast<double>(total.requests) : 0.0);
    return 0;
}
