#include "api.hpp"

#include "backup.hpp"
#include "client_stream.hpp"
#include "cluster_api.hpp"
#include "cluster_status.hpp"
#include "config.hpp"
#include "health.hpp"
#include "identity.hpp"
#include "kv_service.hpp"
#include "log.hpp"
#include "member_info.hpp"
#include "ui.hpp"
#include "version.hpp"
#include "watch.hpp"

#include <raftkv/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// GCC 12 reports Asio's coroutine frame allocation, once one coroutine's start is inlined
// into another, as a mismatched new and delete (GCC PR 109224): a false positive, which
// the asan preset's -O1 brings out here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace raftkv::server {

/// The HTTP address of the leader, read from the replicated log once per leader rather
/// than once per forwarded request. Safe to use from any thread.
class leader_address_cache {
public:
    explicit leader_address_cache(kv_service& service) : service_(service) {}

    /// The address `leader` published, or nothing while this node has not applied it yet.
    std::optional<std::string> find(node_id leader);

    /// Drops `address` if it is still the one cached for `leader`, so the next find()
    /// reads the log again: after the leader could not be reached there, or answered 503
    /// (it may have restarted elsewhere, or no longer lead).
    void forget(node_id leader, const std::string& address);

private:
    kv_service& service_;
    std::mutex mutex_;
    node_id leader_ = no_node; // whose address_ is cached
    std::string address_;
};

std::optional<std::string> leader_address_cache::find(node_id leader)
{
    {
        const std::lock_guard lock(mutex_);
        if (leader == leader_ && leader != no_node)
            return address_;
    }
    std::optional<std::string> address = service_.http_address(leader);
    if (address) {
        const std::lock_guard lock(mutex_);
        leader_ = leader;
        address_ = *address;
    }
    return address;
}

void leader_address_cache::forget(node_id leader, const std::string& address)
{
    const std::lock_guard lock(mutex_);
    if (leader == leader_ && address == address_)
        leader_ = no_node;
}

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

// A kept-alive connection to the leader idle longer than this is not reused: the leader
// closes idle connections after 60 s, and a request must not race that close.
constexpr std::chrono::seconds forward_max_idle{30};

// The leader's largest answer: a 1 MiB value JSON-escaped at up to 6 bytes per byte.
constexpr std::size_t forward_body_limit = std::size_t{16} << 20;

// How many connections to the leader a client connection keeps open for reuse once the
// requests it forwarded concurrently are answered.
constexpr std::size_t forward_idle_connections = 4;

http_response json_response(http::status status, const json::object& body)
{
    http_response res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = json::serialize(body);
    // serialize() grows its string by doubling: a large body may take up to twice its size
    // for as long as the answer is held (a client that does not read holds it).
    if (res.body().capacity() - res.body().size() > 64 * 1024)
        res.body().shrink_to_fit();
    return res;
}

// Appends `s` as a JSON string, escaped exactly as json::serialize() escapes it.
void append_json_string(std::string& out, std::string_view s)
{
    static constexpr char hex[] = "0123456789abcdef";
    out.push_back('"');
    std::size_t plain = 0; // start of the run of characters copied as they are
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        out.append(s.data() + plain, i - plain);
        plain = i + 1;
        out.push_back('\\');
        switch (c) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '\b': out.push_back('b'); break;
        case '\t': out.push_back('t'); break;
        case '\n': out.push_back('n'); break;
        case '\f': out.push_back('f'); break;
        case '\r': out.push_back('r'); break;
        default:
            out.append("u00");
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xf]);
        }
    }
    out.append(s.data() + plain, s.size() - plain);
    out.push_back('"');
}

// The 200 answer of a key-value request: a JSON object of string members, in order, built
// without a json::object (the same bytes json_response() would write).
http_response kv_response(std::initializer_list<std::pair<std::string_view, std::string_view>> members)
{
    http_response res{http::status::ok, 11};
    res.set(http::field::content_type, "application/json");
    std::string& body = res.body();
    std::size_t size = 2;
    for (const auto& [name, value] : members)
        size += name.size() + value.size() + 6;
    body.reserve(size + size / 8);
    body.push_back('{');
    for (const auto& [name, value] : members) {
        if (body.size() > 1)
            body.push_back(',');
        append_json_string(body, name);
        body.push_back(':');
        append_json_string(body, value);
    }
    body.push_back('}');
    return res;
}

// The 200 answer of a scan: {"items":[{"key":..,"value":..,"version":..},..],"more":..,"next":..}
// (the bytes json_response() would write for that object), written straight from the page
// into a body sized for it: a page is up to 2 MiB, and a json::object would copy it, then
// serialize it into a string grown by doubling, up to twice its size. What an answer
// holds is what the server counts against its caps on unread responses.
http_response scan_response(const scan_result& r, bool keys_only)
{
    http_response res{http::status::ok, 11};
    res.set(http::field::content_type, "application/json");
    std::string& body = res.body();
    std::size_t size = 64;
    for (const auto& [key, value] : r.items)
        size += key.size() + (keys_only ? 0 : value.size()) + 48;
    if (r.more)
        size += r.items.back().first.size();
    body.reserve(size + size / 8); // escapes lengthen a few characters
    body.append("{\"items\":[");
    for (std::size_t i = 0; i < r.items.size(); ++i) {
        const auto& [key, value] = r.items[i];
        body.append(i == 0 ? "{\"key\":" : ",{\"key\":");
        append_json_string(body, key);
        if (!keys_only) {
            body.append(",\"value\":");
            append_json_string(body, value);
        }
        if (i < r.versions.size())
            body.append(",\"version\":").append(std::to_string(r.versions[i]));
        body.push_back('}');
    }
    body.append(r.more ? "],\"more\":true,\"next\":" : "],\"more\":false");
    if (r.more)
        append_json_string(body, r.items.back().first);
    body.push_back('}');
    return res;
}

// Sets the ETag of a key at `version`: "7", which If-Match and If-None-Match accept as is.
void set_etag(http_response& res, index_t version)
{
    res.set(http::field::etag, "\"" + std::to_string(version) + "\"");
}

// Adds a key's version to a kv_response(): a "version" member, and with `etag` its ETag.
http_response with_version(http_response res, index_t version, bool etag)
{
    std::string& body = res.body();
    body.pop_back(); // the closing brace
    body.append(",\"version\":").append(std::to_string(version)).push_back('}');
    if (etag)
        set_etag(res, version);
    return res;
}

// Every value of header `f`, in order; empty when absent (the common case: no allocation).
std::vector<std::string_view> header_values(const http_request& req, http::field f)
{
    std::vector<std::string_view> out;
    for (auto [it, end] = req.equal_range(f); it != end; ++it)
        out.push_back(it->value());
    return out;
}

// Every value of the header named `name`; empty when absent.
std::vector<std::string_view> header_values(const http_request& req, std::string_view name)
{
    std::vector<std::string_view> out;
    for (auto [it, end] = req.equal_range(name); it != end; ++it)
        out.push_back(it->value());
    return out;
}

// The client session of a PUT or DELETE, from its Raftkv-Client-Id and Raftkv-Sequence.
checked_session session_of(const http_request& req)
{
    return check_session(header_values(req, client_id_header), header_values(req, sequence_header));
}

// The answer to a write of session `s` that was not applied for what its sequence says:
// `status`, and `what` after "sequence S of client C", with the id and sequence in the body.
http_response session_refusal(http::status status, const kv_client_session& s, std::string_view what)
{
    return json_response(status, {{"error", "sequence " + std::to_string(s.sequence) + " of client " +
                                                std::to_string(s.client) + " " + std::string(what)},
                                  {"client_id", std::to_string(s.client)},
                                  {"sequence", s.sequence}});
}

// The 409 answer of a write whose sequence its session no longer remembers.
http_response stale_sequence_response(const kv_client_session& s)
{
    return session_refusal(http::status::conflict, s,
                           "is older than the " + std::to_string(kv_session_window) +
                               " latest sequences the cluster remembers for it: not applied now, "
                               "and whether it was applied before is unknown");
}

// The 422 answer of a write whose sequence its session applied for another request.
http_response sequence_reused_response(const kv_client_session& s)
{
    return session_refusal(http::status::unprocessable_entity, s,
                           "was applied for another request (another method, key, value or "
                           "precondition): not applied; a retry must repeat its request exactly, "
                           "and a new request takes a new sequence");
}

// Marks the answer to a write that repeated a sequence already applied, and counts it.
http_response replay_marked(http_response res, bool replayed, http_metrics& metrics)
{
    if (replayed) {
        res.set(replayed_header, "true");
        metrics.record_replay();
    }
    return res;
}

// The 412 answer of a request whose If-Match or If-None-Match did not hold, for a key that
// exists at `version` or does not (`exists` false). `expected` is the write's If-Match
// version, if any: 0 on an absent key gets a hint, since 0 is no "absent" marker.
http_response precondition_failed_response(const std::string& key, bool exists, index_t version,
                                           std::optional<std::uint64_t> expected = std::nullopt)
{
    std::string error = exists ? "precondition failed: the key is at version " + std::to_string(version)
                               : std::string("precondition failed: the key does not exist");
    if (!exists && expected == 0)
        error += " (If-Match: 0 matches only a key written before versions existed; to write a key "
                 "only if it is absent, send If-None-Match: *)";
    http_response res =
        json_response(http::status::precondition_failed,
                      {{"error", error}, {"key", key}, {"version", version}, {"exists", exists}});
    if (exists)
        set_etag(res, version);
    return res;
}

/// One keep-alive connection to the leader, reopened when the leader changes or the
/// connection fails; over TLS when `tls` is set. Forwards one request at a time.
class forward_client {
public:
    forward_client(asio::any_io_executor ex, std::shared_ptr<tls_context> tls)
        : ex_(std::move(ex)), tls_(std::move(tls))
    {
    }

    /// Forwards `original` with the forwarding marker `marker`.
    asio::awaitable<http_response> forward(const http_request& original, const std::string& address,
                                           const std::string& marker, std::chrono::milliseconds timeout);

    /// Whether the connection stayed open after the last request, for the next one.
    bool open() const { return stream_.has_value(); }

private:
    asio::awaitable<beast::error_code> connect(const std::string& address, clock::time_point deadline);
    void close();
    static http_request outgoing(const http_request& original, const std::string& address,
                                 const std::string& marker);
    static http_response relay(const http_response& from_leader);
    static http_response failure(const beast::error_code& ec, const std::string& address, bool sent);

    asio::any_io_executor ex_;
    std::shared_ptr<tls_context> tls_;
    std::optional<http_client_stream> stream_;
    std::string address_;
    beast::flat_buffer buffer_;
    clock::time_point idle_since_{};
};

asio::awaitable<http_response> forward_client::forward(const http_request& original,
                                                       const std::string& address, const std::string& marker,
                                                       std::chrono::milliseconds timeout)
{
    http_request req = outgoing(original, address, marker);
    const clock::time_point deadline = clock::now() + timeout;
    for (int attempt = 0;; ++attempt) {
        const bool reused = stream_ && address_ == address && clock::now() - idle_since_ < forward_max_idle;
        if (!reused) {
            close();
            if (beast::error_code ec = co_await connect(address, deadline))
                co_return failure(ec, address, false);
        }
        // A reused connection the leader has just closed fails before any answer: retry
        // once on a new one. A write whose request went out is not retried after a failed
        // read: the leader may have applied it, and applying it twice is not linearizable.
        const bool may_retry = reused && attempt == 0;
        const bool idempotent = req.method() == http::verb::get;
        stream_->expires_at(deadline);
        if (const beast::error_code ec = co_await stream_->write(req); ec) {
            close();
            if (may_retry && ec != beast::error::timeout)
                continue;
            co_return failure(ec, address, false);
        }
        http::response_parser<http::string_body> parser;
        parser.body_limit(forward_body_limit);
        if (const beast::error_code ec = co_await stream_->read(buffer_, parser); ec) {
            const bool nothing_read = !parser.got_some();
            close();
            if (may_retry && idempotent && nothing_read && ec != beast::error::timeout)
                continue;
            co_return failure(ec, address, true);
        }
        http_response res = parser.release();
        if (res.keep_alive()) {
            stream_->expires_never();
            idle_since_ = clock::now();
        } else {
            close();
        }
        co_return relay(res);
    }
}

asio::awaitable<beast::error_code> forward_client::connect(const std::string& address,
                                                           clock::time_point deadline)
{
    const std::optional<host_port> hp = parse_host_port(address);
    if (!hp)
        co_return asio::error::make_error_code(asio::error::invalid_argument);
    tcp::resolver resolver(ex_);
    auto [resolve_ec, endpoints] =
        co_await resolver.async_resolve(hp->host, std::to_string(hp->port), nothrow_awaitable);
    if (resolve_ec)
        co_return resolve_ec;
    stream_.emplace(ex_, tls_);
    const beast::error_code ec = co_await stream_->connect(endpoints, hp->host, deadline);
    if (ec) {
        close();
        co_return ec;
    }
    address_ = address;
    buffer_.clear();
    co_return beast::error_code{};
}

void forward_client::close()
{
    if (stream_) {
        stream_->close();
        stream_.reset();
    }
    address_.clear();
    buffer_.clear();
}

// The client's Authorization goes along unchanged: the leader checks the token again.
http_request forward_client::outgoing(const http_request& original, const std::string& address,
                                      const std::string& marker)
{
    // A HEAD goes as a GET: the answer's body, dropped when this node answers, gives the
    // client the Content-Length a HEAD answer must carry.
    http_request req{original.method() == http::verb::head ? http::verb::get : original.method(),
                     original.target(), 11};
    req.set(http::field::host, address);
    for (const http::field f : {http::field::content_type, http::field::authorization}) {
        if (const auto it = original.find(f); it != original.end())
            req.set(f, it->value());
    }
    // A write's precondition and client session go along: the leader applies them.
    for (const http::field f : {http::field::if_match, http::field::if_none_match}) {
        for (auto [it, end] = original.equal_range(f); it != end; ++it)
            req.insert(f, it->value());
    }
    for (const std::string_view name : {client_id_header, sequence_header}) {
        for (auto [it, end] = original.equal_range(name); it != end; ++it)
            req.insert(name, it->value());
    }
    req.set(forwarded_header, marker);
    req.body() = original.body();
    req.keep_alive(true);
    req.prepare_payload();
    return req;
}

http_response forward_client::relay(const http_response& from_leader)
{
    http_response res{from_leader.result(), 11};
    for (const http::field f : {http::field::content_type, http::field::etag, http::field::retry_after,
                                http::field::allow, http::field::www_authenticate}) {
        if (const auto it = from_leader.find(f); it != from_leader.end())
            res.set(f, it->value());
    }
    for (const std::string_view name : {replayed_header, read_header, applied_index_header}) {
        if (const auto it = from_leader.find(name); it != from_leader.end())
            res.set(name, it->value());
    }
    res.body() = from_leader.body();
    return res;
}

http_response forward_client::failure(const beast::error_code& ec, const std::string& address, bool sent)
{
    if (ec == beast::error::timeout)
        return error_response(http::status::service_unavailable,
                              sent ? "timed out; the outcome is unknown"
                                   : "timed out reaching the leader at " + address);
    if (sent)
        return error_response(http::status::service_unavailable, "lost the connection to the leader at " +
                                                                     address + " (" + ec.message() +
                                                                     "); the outcome is unknown");
    return error_response(http::status::service_unavailable,
                          "cannot reach the leader at " + address + ": " + ec.message());
}

/// The connections to the leader of one client connection: each forwarded request takes
/// one of its own (opening one if none is idle), so the requests a client pipelines are
/// forwarded concurrently. Used on the client connection's strand.
class forward_pool {
public:
    forward_pool(asio::any_io_executor ex, std::shared_ptr<tls_context> tls)
        : ex_(std::move(ex)), tls_(std::move(tls))
    {
    }

    asio::awaitable<http_response> forward(const http_request& original, const std::string& address,
                                           const std::string& marker, std::chrono::milliseconds timeout);

private:
    asio::any_io_executor ex_;
    std::shared_ptr<tls_context> tls_;
    // At most forward_idle_connections, the most recently used last.
    std::vector<std::unique_ptr<forward_client>> idle_;
};

asio::awaitable<http_response> forward_pool::forward(const http_request& original, const std::string& address,
                                                     const std::string& marker,
                                                     std::chrono::milliseconds timeout)
{
    std::unique_ptr<forward_client> client;
    if (idle_.empty()) {
        client = std::make_unique<forward_client>(ex_, tls_);
    } else {
        client = std::move(idle_.back());
        idle_.pop_back();
    }
    http_response res = co_await client->forward(original, address, marker, timeout);
    if (client->open() && idle_.size() < forward_idle_connections)
        idle_.push_back(std::move(client));
    co_return res;
}

/// Runs the requests of one connection that name the same key one after another, in the
/// order they arrived, while requests on other keys run alongside: a client that pipelines
/// a PUT and then a GET of a key reads what it wrote, and a GET and then a PUT reads what
/// was there before. Used on the connection's strand.
class key_order {
public:
    explicit key_order(asio::any_io_executor ex) : ex_(std::move(ex)) {}

    /// A request's place in the line of its key, taken when constructed: construct it in
    /// arrival order. Destroying it lets the next request on the key run.
    class turn {
    public:
        turn(key_order& order, std::string key);
        ~turn();
        turn(const turn&) = delete;
        turn& operator=(const turn&) = delete;

        /// Completes once every earlier request on the key has finished.
        asio::awaitable<void> wait();

    private:
        key_order& order_;
        std::string key_;
        std::optional<asio::steady_timer> wake_; // made only by a turn that has to wait
        bool running_ = false;
    };

private:
    asio::any_io_executor ex_;
    // Every turn taken and not yet destroyed, in arrival order: no more than the requests a
    // connection has in progress (a pipeline's worth), so a scan costs less than a map. A
    // turn runs once no earlier one names its key.
    std::vector<turn*> turns_;
};

key_order::turn::turn(key_order& order, std::string key) : order_(order), key_(std::move(key))
{
    std::vector<turn*>& turns = order_.turns_;
    running_ = std::none_of(turns.begin(), turns.end(), [this](const turn* t) { return t->key_ == key_; });
    turns.push_back(this);
}

key_order::turn::~turn()
{
    std::vector<turn*>& turns = order_.turns_;
    const auto after = turns.erase(std::find(turns.begin(), turns.end(), this));
    if (!running_)
        return;
    // No earlier turn names the key: the first later one that does runs now.
    const auto next = std::find_if(after, turns.end(), [this](const turn* t) { return t->key_ == key_; });
    if (next != turns.end()) {
        (*next)->running_ = true;
        if ((*next)->wake_)
            (*next)->wake_->cancel();
    }
}

asio::awaitable<void> key_order::turn::wait()
{
    if (!running_)
        wake_.emplace(order_.ex_, asio::steady_timer::time_point::max());
    while (!running_)
        co_await wake_->async_wait(nothrow_awaitable);
}

class api_handler : public request_handler {
public:
    api_handler(kv_service& service, leader_address_cache& addresses, read_coalescer& health_reads,
                const api_options& options, std::shared_ptr<tls_context> forward_tls, const authorizer* auth,
                api::metrics_state& metrics, asio::any_io_executor ex)
        : service_(service), addresses_(addresses), health_reads_(health_reads), options_(options),
          forward_tls_(std::move(forward_tls)), auth_(auth), metrics_(metrics), order_(ex),
          pool_(ex, forward_tls_)
    {
    }

    asio::awaitable<http_response> handle(http_request req) override;
    bool streams(const http_request& req) const override;
    asio::awaitable<handled_request> handle_streamed(http_request req) override;
    std::optional<http_response> refuse_before_body(const http_request& header) const override;

private:
    std::optional<http_response> refuse_streamed(const http_request& req, const route_match& m) const;
    http_response watch(const http_request& req, std::shared_ptr<response_stream>& stream);
    asio::awaitable<http_response> backup(const http_request& req, std::shared_ptr<response_stream>& stream);
    asio::awaitable<http_response> route_request(const http_request& req, std::size_t& route_label);
    void log_request(const http_request& req, const http_response& res, clock::time_point start) const;
    std::optional<node_id> forwarded_by(const http_request& req) const;
    asio::awaitable<http_response> handle_kv(const http_request& req, std::string_view raw_key);
    asio::awaitable<http_response> scan(const http_request& req);
    asio::awaitable<http_response> put(const http_request& req, const std::string& key);
    asio::awaitable<http_response> get(const http_request& req, const std::string& key);
    asio::awaitable<http_response> del(const http_request& req, const std::string& key);
    asio::awaitable<http_response> not_done(const http_request& req, std::error_code ec, request_kind kind,
                                            clock::time_point started);
    asio::awaitable<http_response> forward(const http_request& req);
    asio::awaitable<http_response> handle_cluster(const http_request& req, const route_match& m);
    /// The member list; with `changed`, says whether the request changed anything.
    asio::awaitable<http_response> list_members(http::status status, std::optional<bool> changed = {});
    asio::awaitable<http_response> add_member(const http_request& req, const member_request& r);
    asio::awaitable<http_response> promote_member(const http_request& req, node_id id);
    asio::awaitable<http_response> remove_member(const http_request& req, node_id id);
    asio::awaitable<http_response> update_member(const http_request& req, node_id id, const member_update& u);
    asio::awaitable<std::optional<http_response>> address_taken(const host_port& address, bool raft,
                                                                node_id except);
    asio::awaitable<http_response> transfer_leader(const http_request& req, node_id id);
    asio::awaitable<http_response> cluster_status(const http_request& req);
    asio::awaitable<http_response> change(const http_request& req, config_change c, http::status success,
                                          std::optional<bool> changed = {});
    bool leads() const { return service_.leader() == service_.id(); }
    http_response status() const;
    asio::awaitable<http_response> health(const http_request& req);
    http_response readiness() const;
    http_response version() const;
    asio::awaitable<http_response> metrics();

    kv_service& service_;
    leader_address_cache& addresses_;
    read_coalescer& health_reads_;
    const api_options& options_;
    // The forwarding client's TLS context when this connection began (api::forward_tls()).
    std::shared_ptr<tls_context> forward_tls_;
    const authorizer* auth_; // null: no authorization
    api::metrics_state& metrics_;
    key_order order_;
    forward_pool pool_;
};

// An exception (from the node or its storage) is logged with the request under an error id;
// the client gets the id, not the exception's text.
asio::awaitable<http_response> api_handler::handle(http_request req)
{
    const auto start = clock::now();
    std::size_t route_label = unmatched_route;
    std::string what;
    try {
        http_response res = co_await route_request(req, route_label);
        log_request(req, res, start);
        metrics_.http.record(route_label, req.method(), res.result_int(), clock::now() - start);
        co_return res;
    } catch (const std::exception& e) {
        what = e.what();
    }
    const std::string id = new_error_id();
    log(log_level::error, std::string(req.method_string()) + " " + std::string(req.target()) +
                              " failed (error id " + id + "): " + what);
    metrics_.http.record(route_label, req.method(), 500, clock::now() - start);
    co_return internal_error_response(id);
}

// Only /watch and /backup stream (any method: the others are refused there).
bool api_handler::streams(const http_request& req) const
{
    const std::string_view target = req.target();
    const auto is = [target](std::string_view path) {
        return target.starts_with(path) && (target.size() == path.size() || target[path.size()] == '?' ||
                                            (path == "/watch" && target[path.size()] == '/'));
    };
    return is("/watch") || is("/backup");
}

asio::awaitable<handled_request> api_handler::handle_streamed(http_request req)
{
    const auto start = clock::now();
    handled_request out;
    if (req.target().starts_with("/backup"))
        out.response = co_await backup(req, out.stream);
    else
        out.response = watch(req, out.stream);
    log_request(req, out.response, start);
    const route_match m = match_route(req.method(), req.target());
    metrics_.http.record(m.result == route_match::outcome::not_found ? unmatched_route
                                                                     : route_label_of(m.route),
                         req.method(), out.response.result_int(), clock::now() - start);
    co_return out;
}

// What a streamed route answers before it looks at its request: bad framing, a missing or
// insufficient token, another method than the route's.
std::optional<http_response> api_handler::refuse_streamed(const http_request& req, const route_match& m) const
{
    if (std::optional<http_response> refusal = framing_refusal(req))
        return refusal;
    if (auth_) {
        if (std::optional<http_response> refusal = authorization_refusal(*auth_, req, m))
            return refusal;
    }
    if (m.result == route_match::outcome::method_not_allowed) {
        http_response res = error_response(http::status::method_not_allowed,
                                           "method " + std::string(req.method_string()) + " not allowed");
        res.set(http::field::allow, m.allow);
        return res;
    }
    return std::nullopt;
}

// What a request whose client waits for 100 Continue is refused before it sends its body:
// what route_request() would refuse before reading it (bad framing, a missing token, no such
// route or method), and a PUT of a key with a query parameter, which it never takes.
std::optional<http_response> api_handler::refuse_before_body(const http_request& header) const
{
    const route_match m = match_route(header.method(), header.target());
    if (std::optional<http_response> refusal = refuse_streamed(header, m))
        return refusal;
    if (m.result == route_match::outcome::not_found)
        return error_response(http::status::not_found, "not found");
    if (m.route == route::kv && header.method() == http::verb::put)
        if (std::optional<std::string> unknown = unknown_parameter(header.target(), "PUT /kv/{key}", {}, ""))
            return error_response(http::status::bad_request, *unknown);
    return std::nullopt;
}

// Served from this node's own journal, whatever its role: never forwarded.
http_response api_handler::watch(const http_request& req, std::shared_ptr<response_stream>& stream)
{
    const route_match m = match_route(req.method(), req.target());
    if (std::optional<http_response> refusal = refuse_streamed(req, m))
        return std::move(*refusal);
    const auto accept = req.find(http::field::accept);
    const auto last_event_id = req.find("Last-Event-ID");
    checked_watch_request checked = check_watch_request(
        m.raw_key, req.target(), accept == req.end() ? std::string_view{} : std::string_view(accept->value()),
        last_event_id == req.end() ? std::nullopt : std::optional<std::string_view>(last_event_id->value()));
    if (!checked.value)
        return error_response(checked.status, checked.error);
    watch_request& q = *checked.value;
    if (service_.storage().failed())
        return storage_failure_response(service_.storage(), request_kind::read, clock::now());
    // A removed node's journal never grows again: a watch there would wait for ever.
    if (service_.removed())
        if (std::optional<std::string> outside = outside_configuration(service_.status()))
            return error_response(http::status::service_unavailable, *outside);
    change_journal& journal = service_.changes();
    const index_t applied = journal.applied();
    const index_t from = q.from.value_or(applied + 1);
    const index_t oldest = journal.resumable_from();
    if (from < oldest) {
        json::object body{{"error", "this node no longer holds the changes from index " +
                                        std::to_string(from) + " (it holds those from index " +
                                        std::to_string(oldest) + ")"},
                          {"oldest_index", oldest},
                          {"applied_index", applied}};
        return json_response(http::status::gone, body);
    }
    if (!journal.acquire_watcher())
        return error_response(http::status::service_unavailable, "too many watches open (--max-watchers)");
    const bool sse = q.sse;
    stream = std::make_shared<watch_stream>(journal, std::move(q), from, options_.watch_buffer_bytes);
    http_response res{http::status::ok, 11};
    res.set(http::field::content_type, sse ? "text/event-stream" : "application/x-ndjson");
    res.set(http::field::cache_control, "no-cache");
    res.set("X-Raftkv-Watch-From", std::to_string(from));
    return res;
}

namespace {

/// GET /backup's body: the backup file's header, then the state machine's snapshot stream,
/// read from LevelDB a chunk at a time as the client takes them.
class backup_stream final : public response_stream {
public:
    backup_stream(std::string header, std::unique_ptr<backup_source> source)
        : header_(std::move(header)), source_(std::move(source))
    {
    }

    asio::awaitable<void> run(stream_writer& out) override
    {
        if (!co_await out.write(header_))
            co_return;
        std::string chunk;
        for (bool last = false; !last;) {
            // Ending the body early would look like a whole backup to an HTTP client; closing
            // the connection says it is not.
            if (out.stopping())
                throw std::runtime_error("the server is stopping");
            last = source_->read(chunk, chunk_bytes);
            if (!chunk.empty() && !co_await out.write(chunk))
                co_return;
        }
    }

private:
    static constexpr std::size_t chunk_bytes = 256 * 1024;
    std::string header_;
    std::unique_ptr<backup_source> source_;
};

} // namespace

// A backup of this node's state after a linearizable read, so it holds every write
// acknowledged before the request; served by any node that can make that read, never
// forwarded (the body would be buffered on the way).
asio::awaitable<http_response> api_handler::backup(const http_request& req,
                                                   std::shared_ptr<response_stream>& stream)
{
    const auto started = clock::now();
    if (std::optional<http_response> refusal = refuse_streamed(req, match_route(req.method(), req.target())))
        co_return std::move(*refusal);
    if (const std::string_view target = req.target(); target.size() > 7 && target != "/backup?")
        co_return error_response(http::status::bad_request, "GET /backup takes no query parameters");
    if (service_.storage().failed())
        co_return storage_failure_response(service_.storage(), request_kind::read, started);
    auto [ec, source] = co_await service_.backup();
    if (ec == raftkv::errc::node_failed)
        co_return storage_failure_response(service_.storage(), request_kind::read, started);
    if (ec == raftkv::errc::not_leader) {
        if (std::optional<std::string> outside = outside_configuration(service_.status()))
            co_return error_response(http::status::service_unavailable, *outside);
        co_return error_response(http::status::service_unavailable,
                                 "no leader: a backup follows a linearizable read, which needs one");
    }
    if (ec)
        co_return failure_response(ec, request_kind::read);
    const backup_header header{source->index(), service_.status().cluster_id, service_.id()};
    http_response res{http::status::ok, 11};
    res.set(http::field::content_type, "application/octet-stream");
    res.set(http::field::content_disposition,
            "attachment; filename=\"raftkv-backup-" + std::to_string(header.index) + ".bin\"");
    res.set(http::field::cache_control, "no-store");
    res.set("X-Raftkv-Backup-Index", std::to_string(header.index));
    stream = std::make_shared<backup_stream>(format_backup_header(header), std::move(source));
    co_return res;
}

void api_handler::log_request(const http_request& req, const http_response& res,
                              clock::time_point start) const
{
    // failure_response() logged what failed under the error id the body names; this line
    // ties that id to the request.
    if (res.result() == http::status::internal_server_error)
        log(log_level::error, std::string(req.method_string()) + " " + std::string(req.target()) +
                                  " answered 500: " + res.body());
    if (!log_enabled(log_level::debug))
        return;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start).count();
    const std::optional<node_id> from = forwarded_by(req);
    log(log_level::debug, std::string(req.method_string()) + " " + std::string(req.target()) +
                              (from ? " (forwarded by node " + std::to_string(*from) + ")" : "") + " -> " +
                              std::to_string(res.result_int()) + " in " + std::to_string(ms) + " ms");
}

// The member that forwarded `req`, if it carries a marker that verifies. Anyone can send
// the header; only a member knows the key that makes it verify.
std::optional<node_id> api_handler::forwarded_by(const http_request& req) const
{
    const auto marker = req.find(forwarded_header);
    if (marker == req.end())
        return std::nullopt;
    return verify_forward_marker(options_.forward_key, marker->value(), req.method_string(), req.target());
}

asio::awaitable<http_response> api_handler::route_request(const http_request& req, std::size_t& route_label)
{
    if (std::optional<http_response> refusal = framing_refusal(req))
        co_return std::move(*refusal);
    const route_match m = match_route(req.method(), req.target());
    if (m.result != route_match::outcome::not_found)
        route_label = route_label_of(m.route);
    if (auth_) {
        if (std::optional<http_response> refusal = authorization_refusal(*auth_, req, m))
            co_return std::move(*refusal);
    }
    if (m.result == route_match::outcome::not_found)
        co_return error_response(http::status::not_found, "not found");
    if (m.result == route_match::outcome::method_not_allowed) {
        http_response res = error_response(http::status::method_not_allowed,
                                           "method " + std::string(req.method_string()) + " not allowed");
        res.set(http::field::allow, m.allow);
        co_return res;
    }
    if (m.route == route::status)
        co_return status();
    if (m.route == route::health)
        co_return co_await health(req);
    if (m.route == route::livez)
        co_return json_response(http::status::ok, {{"status", "ok"}});
    if (m.route == route::readyz)
        co_return readiness();
    if (m.route == route::ui)
        co_return ui_response(req, m.asset);
    if (m.route == route::cluster_status)
        co_return co_await cluster_status(req);
    if (m.route == route::version)
        co_return version();
    if (m.route == route::metrics)
        co_return co_await metrics();
    if (m.route == route::kv)
        co_return co_await handle_kv(req, m.raw_key);
    if (m.route == route::scan)
        co_return co_await scan(req);
    if (m.route == route::watch || m.route == route::backup) // handle_streamed() serves them
        co_return error_response(http::status::not_implemented, "a streamed response was needed");
    co_return co_await handle_cluster(req, m);
}

// Membership requests are checked here, then run on the leader: a follower forwards them
// (its view of the configuration may lag), exactly as it forwards the writes Raft could not
// hand over. GET /cluster/members is this node's own view, like /status.
asio::awaitable<http_response> api_handler::handle_cluster(const http_request& req, const route_match& m)
{
    // These routes take no parameters: a change asked with one it would ignore
    // (?dry_run=true, ?force=1) must not happen.
    const std::string_view route_name = m.route == route::members   ? "/cluster/members"
                                        : m.route == route::promote ? "/cluster/members/{id}/promote"
                                        : m.route == route::leader  ? "/cluster/leader"
                                                                    : "/cluster/members/{id}";
    if (std::optional<std::string> unknown = unknown_parameter(
            req.target(), std::string(req.method_string()) + " " + std::string(route_name), {}, ""))
        co_return error_response(http::status::bad_request, *unknown);
    if (m.route == route::members && req.method() != http::verb::post) // GET or HEAD
        co_return co_await list_members(http::status::ok);
    if (m.route == route::members) {
        const checked<member_request> body = check_member_body(req.body());
        if (!body.value)
            co_return error_response(body.status, body.error);
        if (!leads())
            co_return co_await forward(req);
        co_return co_await add_member(req, *body.value);
    }
    const checked<node_id> id =
        m.route == route::leader ? check_leader_body(req.body()) : check_member_id(m.raw_id);
    if (!id.value)
        co_return error_response(id.status, id.error);
    if (m.route == route::member && req.method() == http::verb::patch) {
        const checked<member_update> body = check_member_update_body(req.body());
        if (!body.value)
            co_return error_response(body.status, body.error);
        if (!leads())
            co_return co_await forward(req);
        co_return co_await update_member(req, *id.value, *body.value);
    }
    if (!leads())
        co_return co_await forward(req);
    if (m.route == route::leader)
        co_return co_await transfer_leader(req, *id.value);
    if (m.route == route::promote)
        co_return co_await promote_member(req, *id.value);
    co_return co_await remove_member(req, *id.value);
}

asio::awaitable<http_response> api_handler::list_members(http::status status, std::optional<bool> changed)
{
    const service_status s = service_.status();
    std::map<node_id, index_t> match;
    if (s.node.role == raftkv::role::leader)
        match = co_await service_.match_indexes();
    http_response res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = members_json(s, match, changed);
    co_return res;
}

namespace {

/// Whether host names `a` and `b` share an address (localhost and 127.0.0.1). A name that
/// does not resolve now shares none: it may well resolve later, where the member runs.
asio::awaitable<bool> same_host(std::string a, std::string b)
{
    if (a == b)
        co_return true;
    asio::ip::tcp::resolver resolver(co_await asio::this_coro::executor);
    constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
    auto [a_ec, a_results] = co_await resolver.async_resolve(a, "0", nothrow);
    if (a_ec)
        co_return false;
    auto [b_ec, b_results] = co_await resolver.async_resolve(b, "0", nothrow);
    co_return !b_ec && share_an_address(a_results, b_results);
}

} // namespace

asio::awaitable<http_response> api_handler::add_member(const http_request& req, const member_request& r)
{
    const service_status s = service_.status();
    if (s.node.members.contains(r.id))
        co_return error_response(http::status::conflict,
                                 "node " + std::to_string(r.id) + " is already a member");
    // The others forward requests to their leader's advertised address: this node's, a
    // wildcard (a node bootstrapped alone with --http 0.0.0.0:PORT), is none.
    for (const member_status& m : s.members)
        if (const std::optional<host_port> http = parse_host_port(m.http.value_or(""));
            m.id == service_.id() && http && is_wildcard(*http))
            co_return error_response(http::status::conflict,
                                     "this node advertises its HTTP API at " + http->to_string() +
                                         ", which is no address other members can forward requests to: "
                                         "restart it with --advertise-http HOST:PORT before adding members");
    if (std::optional<http_response> taken = co_await address_taken(r.raft, true, no_node))
        co_return std::move(*taken);
    if (r.http)
        if (std::optional<http_response> taken = co_await address_taken(*r.http, false, no_node))
            co_return std::move(*taken);
    // Named, not a temporary in the co_await expression: GCC 12 destroys those twice.
    config_change c{
        r.learner ? config_change::kind::add_learner : config_change::kind::add_voter, r.id,
        encode_member_info(r.raft, r.http, new_incarnation(), service_.retired_incarnation(r.id))};
    co_return co_await change(req, std::move(c), http::status::created);
}

// Two members at one address would each get the other's messages (Raft frames sent to an
// HTTP server, or requests forwarded to a Raft port, reach nobody): the answer when `address`,
// a Raft address (`raft`) or an HTTP one, is a member's Raft or HTTP address, other than the
// same one of member `except`. Only addresses on the same port have their host names
// compared, by address.
asio::awaitable<std::optional<http_response>> api_handler::address_taken(const host_port& address, bool raft,
                                                                         node_id except)
{
    for (const member_status& m : service_.status().members) {
        for (const bool theirs_raft : {true, false}) {
            const std::string text = theirs_raft ? m.raft : m.http.value_or("");
            const std::optional<host_port> theirs = parse_host_port(text);
            if ((theirs_raft == raft && m.id == except) || !theirs || theirs->port != address.port)
                continue;
            const bool same = co_await same_host(theirs->host, address.host);
            if (!same)
                continue;
            co_return error_response(http::status::conflict,
                                     std::string(raft ? "the Raft address " : "the HTTP address ") +
                                         address.to_string() + " is member " + std::to_string(m.id) +
                                         (theirs_raft ? "'s Raft address" : "'s HTTP address") +
                                         (text == address.to_string() ? "" : " (" + text + ")"));
        }
    }
    co_return std::nullopt;
}

// A member's new addresses: the Raft one goes into its member info (a config change, so
// every node dials it there from the entry on); the HTTP one too, and is recorded as if the
// member had published it (a member running elsewhere publishes its own again). Nothing
// is proposed when both are what they are already; the answer's "changed" says which.
asio::awaitable<http_response> api_handler::update_member(const http_request& req, node_id id,
                                                          const member_update& u)
{
    const service_status s = service_.status();
    if (!s.node.members.contains(id))
        co_return error_response(http::status::not_found, "no member " + std::to_string(id));
    const auto info = s.node.members.info.find(id);
    const member_info current =
        info == s.node.members.info.end() ? member_info{} : decode_member_info(info->second);
    std::optional<host_port> raft = u.raft ? u.raft : current.raft;
    if (!raft) // a member of a configuration written before addresses were kept in it
        for (const member_status& m : s.members)
            if (m.id == id)
                raft = parse_host_port(m.raft);
    if (!raft)
        co_return error_response(http::status::bad_request,
                                 "member " + std::to_string(id) +
                                     " has no Raft address on record; give \"raft\"");
    if (u.raft)
        if (std::optional<http_response> taken = co_await address_taken(*u.raft, true, id))
            co_return std::move(*taken);
    if (u.http)
        if (std::optional<http_response> taken = co_await address_taken(*u.http, false, id))
            co_return std::move(*taken);
    if (u.raft && u.raft != current.raft) {
        // The member answers at its new address only once it listens there: until then the
        // change cuts it off, as removing it would. Its followers would answer this leader at
        // an address it does not listen on yet.
        if (id == s.node.id)
            co_return error_response(
                http::status::conflict,
                "node " + std::to_string(id) +
                    " leads, and would not hear its followers at a Raft address it does not "
                    "listen on yet: hand leadership to another voter first (POST "
                    "/cluster/leader), then change its address");
        if (s.node.members.is_voter(id)) {
            const std::set<node_id> answering = co_await service_.answering_members();
            std::size_t others = 0;
            for (node_id v : s.node.members.voters)
                others += v != id && answering.contains(v) ? 1 : 0;
            if (others < s.node.members.quorum())
                co_return error_response(
                    http::status::conflict,
                    "refused: node " + std::to_string(id) +
                        " stops answering the leader when its Raft address changes (until it listens there), "
                        "and only " +
                        std::to_string(others) + " of the other voters answer, fewer than the quorum of " +
                        std::to_string(s.node.members.quorum()) +
                        ": the cluster would stall. Bring the others back first");
        }
    }
    std::string next =
        encode_member_info(*raft, u.http ? u.http : current.http, current.added, current.replaces);
    bool changed = false;
    if (info == s.node.members.info.end() || next != info->second) {
        config_change c{config_change::kind::update, id, std::move(next)};
        http_response answer = co_await change(req, std::move(c), http::status::ok, true);
        if (answer.result() != http::status::ok || !u.http)
            co_return answer;
        changed = true;
    }
    if (u.http && service_.replicated_http_address(id) != u.http->to_string()) {
        const write_result w = co_await service_.set_http_address(id, u.http->to_string());
        if (w.ec == raftkv::errc::not_leader)
            co_return co_await forward(req);
        if (w.ec)
            co_return failure_response(w.ec, request_kind::write);
        changed = true;
    }
    co_return co_await list_members(http::status::ok, changed);
}

asio::awaitable<http_response> api_handler::promote_member(const http_request& req, node_id id)
{
    const membership m = service_.status().node.members;
    if (!m.contains(id))
        co_return error_response(http::status::not_found, "no member " + std::to_string(id));
    if (m.is_voter(id))
        co_return error_response(http::status::bad_request,
                                 "node " + std::to_string(id) + " is already a voter");
    config_change c{config_change::kind::add_voter, id, {}};
    co_return co_await change(req, std::move(c), http::status::ok);
}

asio::awaitable<http_response> api_handler::remove_member(const http_request& req, node_id id)
{
    const raftkv::membership members = service_.status().node.members;
    if (!members.contains(id))
        co_return error_response(http::status::not_found, "no member " + std::to_string(id));
    // Raft needs a voter: the change would be refused, as not applying; say why.
    if (members.voters.size() == 1 && members.voters.front() == id && !members.joint())
        co_return error_response(http::status::conflict,
                                 "node " + std::to_string(id) +
                                     " is the only voter: a cluster needs one; add and promote another "
                                     "member first (or stop the cluster)");
    config_change c{config_change::kind::remove, id, {}};
    co_return co_await change(req, std::move(c), http::status::ok);
}

// Answers with the member list once the change is applied here, on the leader.
asio::awaitable<http_response> api_handler::change(const http_request& req, config_change c,
                                                   http::status success, std::optional<bool> changed)
{
    std::vector<config_change> changes; // not a braced list: GCC 12 destroys it twice
    changes.push_back(c);
    const change_result r = co_await service_.change_membership(std::move(changes));
    if (r.ec == raftkv::errc::not_leader)
        co_return co_await forward(req);
    if (!r.ec)
        co_return co_await list_members(success, changed);
    if (r.ec == raftkv::errc::quorum_at_risk) {
        std::vector<node_id> voters = service_.status().node.members.voters;
        if (c.type == config_change::kind::remove)
            std::erase(voters, c.id);
        if (c.type == config_change::kind::add_voter)
            voters.insert(std::upper_bound(voters.begin(), voters.end(), c.id), c.id);
        co_return quorum_at_risk_response(voters, co_await service_.answering_members());
    }
    std::optional<index_t> lag;
    if (r.ec == raftkv::errc::learner_behind && !(co_await service_.answering_members()).contains(c.id))
        co_return error_response(
            http::status::conflict,
            "learner " + std::to_string(c.id) +
                " does not answer the leader (down, cut off, or its storage failed): not "
                "promoted; retry once it answers");
    if (r.ec == raftkv::errc::learner_behind) {
        const std::map<node_id, index_t> match = co_await service_.match_indexes();
        const index_t last = service_.status().node.last_index;
        if (const auto it = match.find(c.id); it != match.end() && it->second <= last)
            lag = last - it->second;
    }
    co_return membership_failure_response(r.ec, c.id, lag);
}

asio::awaitable<http_response> api_handler::transfer_leader(const http_request& req, node_id id)
{
    const std::vector<node_id> voters = service_.status().node.members.voters;
    if (std::find(voters.begin(), voters.end(), id) == voters.end())
        co_return error_response(http::status::not_found, "node " + std::to_string(id) + " is not a voter");
    const auto limit = 2 * service_.election_timeout();
    const std::error_code ec = co_await service_.transfer_leadership(id, limit);
    if (ec == raftkv::errc::not_leader)
        co_return co_await forward(req);
    if (ec == raftkv::errc::invalid_argument)
        co_return error_response(http::status::not_found, "node " + std::to_string(id) + " is not a voter");
    if (ec == raftkv::errc::peer_unreachable)
        co_return error_response(http::status::conflict,
                                 "node " + std::to_string(id) +
                                     " has not answered the leader for an election timeout or more (is it "
                                     "down or cut off?): leadership not moved");
    if (ec == raftkv::errc::timeout)
        co_return error_response(http::status::service_unavailable,
                                 "node " + std::to_string(id) + " did not take over within " +
                                     std::to_string(limit.count()) +
                                     " ms; it may still, if it was told late (GET /status shows the "
                                     "leader); retry");
    if (ec)
        co_return failure_response(ec, request_kind::read);
    co_return json_response(http::status::ok, {{"leader", id}});
}

asio::awaitable<http_response> api_handler::handle_kv(const http_request& req, std::string_view raw_key)
{
    checked_input key = check_key(raw_key);
    if (!key.value)
        co_return error_response(key.status, key.error);
    key_order::turn turn(order_, *key.value);
    co_await turn.wait();
    if (req.method() == http::verb::put)
        co_return co_await put(req, *key.value);
    if (req.method() == http::verb::get || req.method() == http::verb::head)
        co_return co_await get(req, *key.value);
    co_return co_await del(req, *key.value);
}

asio::awaitable<http_response> api_handler::put(const http_request& req, const std::string& key)
{
    if (std::optional<std::string> unknown = unknown_parameter(req.target(), "PUT /kv/{key}", {}, ""))
        co_return error_response(http::status::bad_request, *unknown);
    checked_precondition pre = check_precondition(req.method(), header_values(req, http::field::if_match),
                                                  header_values(req, http::field::if_none_match));
    if (!pre.value)
        co_return error_response(pre.status, pre.error);
    const checked_session session = session_of(req);
    if (!session.error.empty())
        co_return error_response(session.status, session.error);
    checked_input value = check_put_body(req.body());
    if (!value.value)
        co_return error_response(value.status, value.error);
    if (service_.over_quota()) {
        service_.count_quota_refusal();
        co_return error_response(http::status::insufficient_storage,
                                 "the key-value state takes " + std::to_string(service_.state_bytes()) +
                                     " bytes on disk, past --quota-bytes " +
                                     std::to_string(service_.quota_bytes()) +
                                     ": only deletes are taken until they bring it back under");
    }
    const auto started = clock::now();
    const kv_precondition precondition = *pre.value;
    const std::optional<kv_client_session> client_session = session.value;
    const write_result r = co_await service_.put(key, *value.value, precondition, client_session);
    if (r.ec)
        co_return co_await not_done(req, r.ec, request_kind::write, started);
    if (r.status == kv_status::stale_sequence && client_session)
        co_return stale_sequence_response(*client_session);
    if (r.status == kv_status::sequence_reused && client_session) {
        metrics_.http.record_sequence_reuse();
        co_return sequence_reused_response(*client_session);
    }
    if (r.status == kv_status::precondition_failed)
        co_return replay_marked(
            precondition_failed_response(key, r.found, r.version, precondition.expect_version), r.replayed,
            metrics_.http);
    co_return replay_marked(with_version(kv_response({{"key", key},
                                                      {"value", *value.value},
                                                      {"message", "Key-value pair stored successfully"}}),
                                         r.version, true),
                            r.replayed, metrics_.http);
}

namespace {

/// Says how a read was served: Raftkv-Read (read-index, lease or stale) and
/// Raftkv-Applied-Index (the applied index the state was read at, or later).
void set_read_headers(http_response& res, read_path path, raftkv::index_t applied)
{
    res.set(read_header, path == read_path::lease   ? "lease"
                         : path == read_path::stale ? "stale"
                                                    : "read-index");
    res.set(applied_index_header, std::to_string(applied));
}

} // namespace

asio::awaitable<http_response> api_handler::get(const http_request& req, const std::string& key)
{
    const checked_consistency consistency = check_consistency(req.target());
    if (!consistency.value)
        co_return error_response(consistency.status, consistency.error);
    const checked_read_condition condition = check_read_condition(
        header_values(req, http::field::if_match), header_values(req, http::field::if_none_match));
    if (!condition.value)
        co_return error_response(condition.status, condition.error);
    const auto started = clock::now();
    const read_result r = co_await service_.get(key, *consistency.value);
    if (r.ec)
        co_return co_await not_done(req, r.ec, request_kind::read, started);
    http_response res;
    switch (condition.value->evaluate(r.value.has_value(), r.version)) {
    case read_condition::outcome::precondition_failed:
        res = precondition_failed_response(key, r.value.has_value(), r.version);
        break;
    case read_condition::outcome::not_modified:
        // What a 200 would have said about the key, without the body (RFC 9110 15.4.5).
        res = http_response{http::status::not_modified, 11};
        set_etag(res, r.version);
        break;
    case read_condition::outcome::serve:
        res = r.value ? with_version(kv_response({{"key", key}, {"value", *r.value}}), r.version, true)
                      : error_response(http::status::not_found, "key not found");
        break;
    }
    set_read_headers(res, r.path, r.applied_index);
    co_return res;
}

// A scan is not ordered with the requests pipelined before it on the connection (those
// are ordered per key): it is linearizable, as of some moment after it arrived.
asio::awaitable<http_response> api_handler::scan(const http_request& req)
{
    checked_scan_query query = check_scan_query(req.target());
    if (!query.value)
        co_return error_response(query.status, query.error);
    scan_query& q = *query.value;
    const auto started = clock::now();
    scan_result r =
        co_await service_.scan(std::move(q.prefix), std::move(q.after), q.limit, q.keys_only, q.consistency);
    if (r.ec)
        co_return co_await not_done(req, r.ec, request_kind::read, started);
    http_response res = scan_response(r, q.keys_only);
    set_read_headers(res, r.path, r.applied_index);
    co_return res;
}

asio::awaitable<http_response> api_handler::del(const http_request& req, const std::string& key)
{
    if (std::optional<std::string> unknown = unknown_parameter(req.target(), "DELETE /kv/{key}", {}, ""))
        co_return error_response(http::status::bad_request, *unknown);
    checked_precondition pre = check_precondition(req.method(), header_values(req, http::field::if_match),
                                                  header_values(req, http::field::if_none_match));
    if (!pre.value)
        co_return error_response(pre.status, pre.error);
    const checked_session session = session_of(req);
    if (!session.error.empty())
        co_return error_response(session.status, session.error);
    const auto started = clock::now();
    const kv_precondition precondition = *pre.value;
    const std::optional<kv_client_session> client_session = session.value;
    const write_result r = co_await service_.del(key, precondition, client_session);
    if (r.ec)
        co_return co_await not_done(req, r.ec, request_kind::write, started);
    if (r.status == kv_status::stale_sequence && client_session)
        co_return stale_sequence_response(*client_session);
    if (r.status == kv_status::sequence_reused && client_session) {
        metrics_.http.record_sequence_reuse();
        co_return sequence_reused_response(*client_session);
    }
    if (r.status == kv_status::precondition_failed)
        co_return replay_marked(
            precondition_failed_response(key, r.found, r.version, precondition.expect_version), r.replayed,
            metrics_.http);
    if (!r.found)
        co_return replay_marked(error_response(http::status::not_found, "key not found"), r.replayed,
                                metrics_.http);
    co_return replay_marked(
        with_version(kv_response({{"key", key}, {"message", "Key deleted successfully"}}), r.version, false),
        r.replayed, metrics_.http);
}

asio::awaitable<http_response> api_handler::not_done(const http_request& req, std::error_code ec,
                                                     request_kind kind, clock::time_point started)
{
    if (ec == raftkv::errc::not_leader)
        co_return co_await forward(req);
    if (ec == raftkv::errc::node_failed)
        co_return storage_failure_response(service_.storage(), kind, started);
    if (ec == raftkv::errc::not_a_member && kind == request_kind::read) // a stale read
        if (std::optional<std::string> outside = outside_configuration(service_.status()))
            co_return error_response(http::status::service_unavailable, *outside);
    co_return failure_response(ec, kind);
}

namespace {

/// Says in `res`'s error message, a refusal of the token by the leader a request was
/// forwarded to, that the leader refused it: this node took the token (its members may hold
/// other tokens for a while, as during a rotation), so the client would otherwise blame it.
void attribute_to_leader(http_response& res, node_id leader, const std::string& address)
{
    boost::system::error_code ec;
    json::value doc = json::parse(res.body(), ec);
    if (ec || !doc.is_object())
        return;
    json::object& o = doc.as_object();
    if (json::value* e = o.if_contains("error"); e && e->is_string()) {
        *e = "the leader, node " + std::to_string(leader) + " at " + address +
             ", to which this node forwards the request, refused it: " + std::string(e->as_string());
        res.body() = json::serialize(o);
    }
}

} // namespace

asio::awaitable<http_response> api_handler::forward(const http_request& req)
{
    if (const std::optional<node_id> from = forwarded_by(req))
        co_return error_response(http::status::service_unavailable,
                                 "not the leader (request forwarded by node " + std::to_string(*from) + ")");
    const std::string marker =
        forward_marker(options_.forward_key, service_.id(), req.method_string(), req.target());
    // A follower learns a new leader's HTTP address from the leader's first entries, a few
    // milliseconds after it learns the leader's id: wait for it rather than refuse.
    const auto deadline = clock::now() + options_.forward_timeout;
    asio::steady_timer pause(co_await asio::this_coro::executor);
    for (;;) {
        const node_id leader = service_.leader();
        if (leader == no_node || leader == service_.id()) {
            if (std::optional<std::string> outside = outside_configuration(service_.status()))
                co_return error_response(http::status::service_unavailable, *outside);
            co_return error_response(http::status::service_unavailable, "no leader");
        }
        if (std::optional<std::string> address = addresses_.find(leader)) {
            http_response res = co_await pool_.forward(req, *address, marker, options_.forward_timeout);
            if (res.result() == http::status::service_unavailable)
                addresses_.forget(leader, *address);
            if (res.result() == http::status::unauthorized || res.result() == http::status::forbidden)
                attribute_to_leader(res, leader, *address);
            co_return res;
        }
        if (clock::now() >= deadline)
            co_return error_response(http::status::service_unavailable, "no leader");
        pause.expires_after(std::chrono::milliseconds(5));
        co_await pause.async_wait(nothrow_awaitable);
    }
}

asio::awaitable<http_response> api_handler::cluster_status(const http_request& req)
{
    cluster_status_options o;
    o.tls = forward_tls_;
    if (const auto it = req.find(http::field::authorization); it != req.end())
        o.authorization = it->value();
    json::object self = status_json(service_);
    const json::object body = co_await gather_cluster_status(service_, std::move(self), std::move(o));
    co_return json_response(http::status::ok, body);
}

http_response api_handler::status() const
{
    json::object body = status_json(service_);
    const health_check_counts h = health_reads_.counts();
    body["health_checks"] = {
        {"checks", h.checks}, {"rounds", h.rounds}, {"joined", h.joined}, {"reused", h.reused}};
    return json_response(http::status::ok, body);
}

asio::awaitable<http_response> api_handler::metrics()
{
    metrics_inputs in = co_await service_.metrics();
    if (metrics_.connections)
        in.connections = metrics_.connections();
    in.process = read_process_stats(metrics_.started);
    http_response res{http::status::ok, 11};
    res.set(http::field::content_type, metrics_content_type);
    res.body() = render_metrics(in, metrics_.http);
    co_return res;
}

// A 503 of the health checks: {"error": message, "status": "unavailable", "reason": reason}
// (reason one of a few fixed phrases a probe can match), plus the leader /health knows.
http_response unhealthy(std::string_view reason, std::string_view message, std::optional<node_id> leader = {})
{
    http_response res = error_response(http::status::service_unavailable, message);
    json::object body{{"error", message}, {"status", "unavailable"}, {"reason", reason}};
    if (leader)
        body["leader"] = *leader == no_node ? json::value(nullptr) : json::value(*leader);
    res.body() = json::serialize(body);
    return res;
}

// 200 only when a linearizable read through the cluster succeeds within the timeout: a
// node that knows a leader but whose reads and writes time out (no quorum, a leader that
// cannot reach the others) is not healthy. The reads of concurrent checks are shared.
asio::awaitable<http_response> api_handler::health(const http_request& req)
{
    if (std::optional<std::string> unknown =
            unknown_parameter(req.target(), "GET /health", {"timeout"}, "timeout"))
        co_return error_response(http::status::bad_request, *unknown);
    std::string bad_timeout;
    const std::optional<std::chrono::milliseconds> timeout =
        health_timeout(req.target(), options_.health_timeout, bad_timeout);
    if (!timeout)
        co_return error_response(http::status::bad_request, bad_timeout);
    if (const storage_status storage = service_.storage(); storage.failed())
        co_return unhealthy("storage failed", "storage failure: " + storage.error, no_node);
    const node_id leader = service_.leader();
    if (leader == no_node) {
        if (std::optional<std::string> outside = outside_configuration(service_.status()))
            co_return unhealthy("not a member", *outside, no_node);
        co_return unhealthy("no leader", "no leader", no_node);
    }
    const std::error_code ec = co_await health_reads_.check(*timeout);
    if (!ec)
        co_return json_response(http::status::ok, {{"status", "ok"}, {"leader", leader}});
    if (ec == raftkv::errc::node_failed) {
        const storage_status storage = service_.storage();
        co_return unhealthy("storage failed",
                            "storage failure: " + (storage.failed() ? storage.error : ec.message()), no_node);
    }
    if (ec == raftkv::errc::timeout)
        co_return unhealthy("read index timed out",
                            "read index timed out: no linearizable read through leader " +
                                std::to_string(leader) + " within " + std::to_string(timeout->count()) +
                                " ms",
                            leader);
    if (ec == raftkv::errc::not_leader)
        co_return unhealthy("no leader", "no leader", no_node);
    co_return unhealthy("read index failed", "read index failed: " + ec.message(), leader);
}

// 200 when this node is caught up and serves (readiness_problem()), from its local state.
http_response api_handler::readiness() const
{
    const service_status s = service_.status();
    if (const std::optional<not_ready> problem = readiness_problem(s, service_.storage()))
        return unhealthy(problem->reason, problem->message);
    return json_response(http::status::ok, {{"status", "ok"}});
}

// What this binary was built from (version.hpp); the same on every node built alike.
http_response api_handler::version() const
{
    const build_info& b = build();
    return json_response(http::status::ok,
                         {{"version", b.version}, {"commit", b.commit}, {"build_type", b.build_type}});
}

} // namespace

http_response error_response(http::status status, std::string_view message)
{
    // Messages may quote what the client sent, decoded: JSON text must be UTF-8.
    http_response res = json_response(status, {{"error", to_valid_utf8(message)}});
    if (status == http::status::service_unavailable)
        res.set(http::field::retry_after, "1");
    return res;
}

http_response failure_response(std::error_code ec, request_kind kind)
{
    using raftkv::errc;
    const auto unavailable = [](std::string_view message) {
        return error_response(http::status::service_unavailable, message);
    };
    if (ec == errc::timeout)
        return unavailable("timed out; the outcome is unknown");
    if (ec == errc::overloaded)
        return unavailable("overloaded: the leader holds too many uncommitted writes; the write did not "
                           "take effect; retry later");
    if (ec == errc::proposal_dropped)
        return unavailable("the write was overwritten by a new leader and did not take effect; retry");
    if (ec == errc::leadership_lost)
        return unavailable(kind == request_kind::write
                               ? "leadership lost before the write was applied; the outcome is unknown"
                               : "leadership lost; retry");
    if (ec == errc::transfer_in_progress)
        return unavailable("leadership transfer in progress; retry");
    if (ec == errc::shutting_down)
        return unavailable("shutting down");
    if (ec == errc::not_leader)
        return unavailable("not the leader");
    if (ec == errc::node_failed)
        return unavailable(kind == request_kind::write
                               ? "storage failure; this node is not serving until its storage recovers; the "
                                 "outcome is unknown"
                               : "storage failure; this node is not serving until its storage recovers");
    if (ec == errc::not_a_member && kind == request_kind::read)
        return unavailable("this node is not a member of the cluster: it was removed and serves nothing; "
                           "send requests to a member");
    if (ec == errc::not_a_member) // the leader refused what this node handed it
        return unavailable(
            "this node is not a member of the cluster (it was removed); the write did not take "
            "effect; send it to another node");
    const std::string id = new_error_id();
    log(log_level::error, "a request failed unexpectedly (error id " + id + "): " + ec.message());
    return internal_error_response(id);
}

http_response internal_error_response(std::string_view error_id)
{
    return json_response(http::status::internal_server_error,
                         {{"error", "internal error"}, {"error_id", error_id}});
}

std::optional<http_response> framing_refusal(const http_request& req)
{
    const std::size_t hosts = req.count(http::field::host);
    if (req.version() >= 11 && hosts == 0)
        return error_response(http::status::bad_request, "missing Host header (HTTP/1.1 requires one)");
    if (hosts > 1)
        return error_response(http::status::bad_request, "more than one Host header");
    // The parser reads a chunked body, but no coding applied before it ("gzip, chunked"). A
    // last coding other than chunked never gets here: http_server refuses it after the header.
    if (const auto te = req.find(http::field::transfer_encoding);
        te != req.end() && !beast::iequals(te->value(), "chunked"))
        return error_response(http::status::bad_request, "unsupported Transfer-Encoding (only chunked)");
    return std::nullopt;
}

bool changes_state(const route_match& m, http::verb method)
{
    return m.result == route_match::outcome::found && method != http::verb::get && method != http::verb::head;
}

std::optional<http_response> authorization_refusal(const authorizer& auth, const http_request& req,
                                                   const route_match& m)
{
    if (m.result != route_match::outcome::not_found && (m.route == route::health || m.route == route::livez ||
                                                        m.route == route::readyz || m.route == route::ui))
        return std::nullopt;
    const auto header = req.find(http::field::authorization);
    const bool present = header != req.end();
    const bool repeated = present && req.count(http::field::authorization) > 1;
    const auth_decision d = repeated
                                ? auth_decision{}
                                : auth.check(present ? header->value() : "", changes_state(m, req.method()));
    if (d.result == auth_decision::outcome::allowed)
        return std::nullopt;
    if (d.result == auth_decision::outcome::forbidden) {
        http_response res = error_response(
            http::status::forbidden, (d.name.empty() ? std::string("this token") : "token '" + d.name + "'") +
                                         " may only read; " + std::string(req.method_string()) +
                                         " needs a write token");
        res.set(http::field::www_authenticate, R"(Bearer realm="raftkv", error="insufficient_scope")");
        return res;
    }
    http_response res = error_response(
        http::status::unauthorized,
        !present   ? "missing bearer token: send \"Authorization: Bearer <token>\""
        : repeated ? "more than one Authorization header"
                   : "unknown bearer token, or an Authorization header that is not \"Bearer <token>\"");
    res.set(http::field::www_authenticate,
            present ? R"(Bearer realm="raftkv", error="invalid_token")" : R"(Bearer realm="raftkv")");
    return res;
}

http_response storage_failure_response(const storage_status& storage, request_kind kind,
                                       std::chrono::steady_clock::time_point started)
{
    if (!storage.failed())
        return failure_response(make_error_code(raftkv::errc::node_failed), kind);
    std::string message = "storage failure: " + storage.error;
    message += storage.retrying ? "; this node is not serving until its storage recovers"
                                : "; this node is not serving until it is repaired and restarted";
    if (kind == request_kind::write)
        message += started < storage.since_steady ? " (the write was in progress: its outcome is unknown)"
                                                  : " (the write did not take effect)";
    return error_response(http::status::service_unavailable, message);
}

json::object storage_json(const storage_status& storage)
{
    if (!storage.failed())
        return {{"state", "ok"}};
    const auto since =
        std::chrono::duration_cast<std::chrono::milliseconds>(storage.since.time_since_epoch()).count();
    return {{"state", "failed"}, {"error", storage.error}, {"since", since}, {"retrying", storage.retrying}};
}

json::object status_json(const kv_service& service)
{
    const service_status s = service.status();
    json::array members;
    for (const member_status& m : s.members) {
        json::object member{{"id", m.id}, {"raft", m.raft}};
        member["http"] = m.http ? json::value(*m.http) : json::value(nullptr);
        members.push_back(std::move(member));
    }
    const node_status& n = s.node;
    json::object body{{"id", n.id},
                      {"cluster_id", cluster_id_hex(s.cluster_id)},
                      {"role", to_string(n.role)},
                      {"term", n.term}};
    body["leader"] = n.leader == no_node ? json::value(nullptr) : json::value(n.leader);
    body["commit_index"] = n.commit_index;
    body["applied_index"] = n.applied_index;
    body["first_index"] = n.first_index;
    body["last_index"] = n.last_index;
    body["snapshot_index"] = n.snapshot_index;
    body["snapshot_term"] = n.snapshot_term;
    body["malformed_dropped"] = n.malformed_dropped;
    if (n.last_step_down.reason == step_down_reason::none) {
        body["last_step_down"] = nullptr;
    } else {
        json::object d{{"reason", to_string(n.last_step_down.reason)}, {"term", n.last_step_down.term}};
        if (n.last_step_down.from != no_node) {
            d["from"] = n.last_step_down.from;
            d["newer_term"] = n.last_step_down.newer_term;
        }
        body["last_step_down"] = std::move(d);
    }
    body["state_bytes"] = service.state_bytes();
    body["quota_bytes"] = service.quota_bytes();
    body["members"] = std::move(members);
    // Its place in the configuration, beside its Raft role: a learner follows, never votes.
    body["learner"] = n.members.is_learner(n.id);
    const storage_status storage = service.storage();
    if (storage.failed()) {
        body["role"] = "unavailable";
        body["leader"] = nullptr;
    } else if (outside_configuration(s)) {
        body["role"] = "removed";
    }
    body["storage"] = storage_json(storage);
    return body;
}

api::api(kv_service& service, api_options options)
    : service_(&service), options_(std::move(options)), forward_tls_(options_.forward_tls),
      leader_addresses_(std::make_unique<leader_address_cache>(service)),
      health_reads_(std::make_unique<read_coalescer>(
          [&service](std::function<void(std::error_code)> done) { service.read_barrier(std::move(done)); },
          options_.health_reuse)),
      metrics_(std::make_unique<metrics_state>())
{
    if (!options_.auth_tokens.empty())
        authorizer_.emplace(options_.auth_tokens);
}

api::~api() = default;

std::unique_ptr<request_handler> api::make_handler(asio::any_io_executor ex)
{
    return std::make_unique<api_handler>(*service_, *leader_addresses_, *health_reads_, options_,
                                         forward_tls(), authorizer_ ? &*authorizer_ : nullptr, *metrics_,
                                         std::move(ex));
}

std::shared_ptr<tls_context> api::forward_tls() const
{
    std::lock_guard lock(forward_tls_mutex_);
    return forward_tls_;
}

void api::set_forward_tls(std::shared_ptr<tls_context> tls)
{
    std::lock_guard lock(forward_tls_mutex_);
    forward_tls_ = std::move(tls);
}

void api::count_connections(std::function<connection_counts()> source)
{
    metrics_->connections = std::move(source);
}

void api::count_refusal(http::verb method, unsigned status) noexcept
{
    metrics_->http.record_refusal(method, status);
}

} // namespace raftkv::server
