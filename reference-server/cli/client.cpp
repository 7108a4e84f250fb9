#include "cli/client.hpp"

#include "client_stream.hpp"
#include "config.hpp"
#include "tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/version.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <thread>
#include <utility>

// GCC 12 reports Asio's coroutine frame allocation as a mismatched new and delete (GCC PR
// 109224), a false positive, as in api.cpp.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace raftkv::cli {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;
using server::http_request;

constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

// A scan page is at most a few MiB of JSON; nothing the server sends is larger.
constexpr std::size_t body_limit = std::size_t{64} << 20;

// How long to wait before asking the endpoints again after each answered 503.
constexpr std::chrono::milliseconds retry_pause{1000};

// The least time an attempt of a repeatable request gets before the next endpoint is tried,
// unless an equal share of the timeout between the endpoints is less.
constexpr std::chrono::milliseconds min_attempt{1000};

/// What one request to one endpoint got.
struct attempt_result {
    int status = 0;
    std::string body;
    /// Why there is no status.
    std::string error;
    /// Whether the request may have reached the server (writing it began).
    bool sent = false;
    /// A stream's X-Raftkv-Watch-From header.
    std::string watch_from;
    /// answer::tls_refused.
    bool tls_refused = false;
    bool done = false;
};

/// Whether `ec` is a TLS alert the server sent: it refused the handshake (with TLS 1.3 the
/// client's side ends first, so the refusal of its certificate arrives as the answer's read
/// fails), and so never read the request.
bool refused_by_alert(const beast::error_code& ec)
{
    if (ec.category() != asio::error::get_ssl_category())
        return false;
    const int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    return reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256;
}

/// When `ec` is refused_by_alert(), records that in `out` (the request was not read, and no
/// retry mends it) and returns true.
bool note_refusal(const beast::error_code& ec, attempt_result& out)
{
    if (!refused_by_alert(ec))
        return false;
    out.sent = false;
    out.tls_refused = true;
    out.error = "the server refused the TLS handshake: " + ec.message();
    return true;
}

/// Why connecting over `stream` failed, from `ec`; sets `tls_refused` when TLS failed for
/// good (the certificate, the CA, or a port that does not speak TLS), which no retry mends.
std::string connect_failure(const beast::error_code& ec, const server::http_client_stream& stream,
                            bool& tls_refused)
{
    if (ec == beast::error::timeout)
        return "timed out connecting";
    std::string why = "cannot connect: " + ec.message();
    if (const std::string verify = stream.verify_failure(); !verify.empty())
        why += " (" + verify + ")";
    if (ec.category() == asio::error::get_ssl_category()) {
        const int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
        tls_refused = reason == SSL_R_CERTIFICATE_VERIFY_FAILED || reason == SSL_R_WRONG_VERSION_NUMBER ||
                      refused_by_alert(ec);
        if (reason == SSL_R_WRONG_VERSION_NUMBER)
            why += " (the port does not answer TLS: if it serves plain HTTP, use an http:// URL)";
    }
    return why;
}

asio::awaitable<void> attempt(asio::any_io_executor ex, std::shared_ptr<server::tls_context> tls,
                              const endpoint& e, const http_request& req, clock::time_point deadline,
                              attempt_result& out)
{
    tcp::resolver resolver(ex);
    const std::string port = std::to_string(e.port);
    auto [resolve_ec, results] = co_await resolver.async_resolve(e.host, port, nothrow_awaitable);
    if (resolve_ec) {
        out.error = "cannot resolve " + e.host + ": " + resolve_ec.message();
        co_return;
    }
    server::http_client_stream stream(ex, e.https ? std::move(tls) : nullptr);
    const std::string host = e.host;
    const beast::error_code connect_ec = co_await stream.connect(results, host, deadline);
    if (connect_ec) {
        out.error = connect_failure(connect_ec, stream, out.tls_refused);
        co_return;
    }
    stream.expires_at(deadline);
    out.sent = true;
    const beast::error_code write_ec = co_await stream.write(req);
    if (write_ec) {
        out.error = "cannot send the request: " + write_ec.message();
        co_return;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(body_limit);
    const beast::error_code read_ec = co_await stream.read(buffer, parser);
    stream.close();
    if (read_ec && note_refusal(read_ec, out))
        co_return;
    if (read_ec) {
        out.error = read_ec == beast::error::timeout ? std::string("timed out waiting for the answer")
                                                     : "no answer: " + read_ec.message();
        co_return;
    }
    out.status = static_cast<int>(parser.get().result_int());
    out.body = parser.get().body();
}

// A GET whose 200 answer's body is handed to `on_data` piece by piece (a chunked stream).
asio::awaitable<void> attempt_stream(asio::any_io_executor ex, std::shared_ptr<server::tls_context> tls,
                                     const endpoint& e, const http_request& req, clock::time_point deadline,
                                     std::chrono::milliseconds silence,
                                     const std::function<void(std::string_view)>& on_data,
                                     attempt_result& out)
{
    tcp::resolver resolver(ex);
    const std::string port = std::to_string(e.port);
    auto [resolve_ec, results] = co_await resolver.async_resolve(e.host, port, nothrow_awaitable);
    if (resolve_ec) {
        out.error = "cannot resolve " + e.host + ": " + resolve_ec.message();
        co_return;
    }
    server::http_client_stream stream(ex, e.https ? std::move(tls) : nullptr);
    const std::string host = e.host;
    const beast::error_code connect_ec = co_await stream.connect(results, host, deadline);
    if (connect_ec) {
        out.error = connect_failure(connect_ec, stream, out.tls_refused);
        co_return;
    }
    stream.expires_at(deadline);
    out.sent = true;
    const beast::error_code write_ec = co_await stream.write(req);
    if (write_ec) {
        out.error = "cannot send the request: " + write_ec.message();
        co_return;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);
    // The header within the request's deadline: a node that accepts and never answers is
    // left early, before changes made meanwhile would be missed by a watch that starts
    // elsewhere (without --from it starts at that node's last index). Then each read of the
    // body gets `silence` from the last piece that arrived.
    stream.expires_at(std::min(deadline, clock::now() + silence));
    if (const beast::error_code header_ec = co_await stream.read_header(buffer, parser)) {
        stream.close();
        if (!note_refusal(header_ec, out))
            out.error = header_ec == beast::error::timeout ? std::string("timed out waiting for the answer")
                                                           : "no answer: " + header_ec.message();
        co_return;
    }
    stream.expires_at(clock::now() + silence);
    auto piece = [&](std::uint64_t, beast::string_view body, beast::error_code&) -> std::size_t {
        stream.expires_at(clock::now() + silence);
        if (parser.get().result_int() == 200) {
            on_data(std::string_view(body.data(), body.size()));
            return body.size();
        }
        parser.get().body().append(body.data(), body.size());
        return body.size();
    };
    parser.on_chunk_body(piece);
    const beast::error_code read_ec = co_await stream.read(buffer, parser);
    stream.close();
    if (parser.is_header_done()) {
        out.status = static_cast<int>(parser.get().result_int());
        if (const auto from = parser.get().find("X-Raftkv-Watch-From"); from != parser.get().end())
            out.watch_from = std::string(from->value());
    }
    if (read_ec) {
        out.error = read_ec == beast::error::timeout ? std::string("nothing arrived for too long")
                                                     : "the stream ended: " + read_ec.message();
        if (out.status == 200 || out.status == 0)
            co_return;
    }
    out.body = parser.get().body();
}

bool outcome_unknown(const std::string& body)
{
    return body.find("unknown") != std::string::npos;
}

/// Whether a request of `method` changes anything, so that one sent without an answer has
/// an unknown outcome.
bool changes(std::string_view method)
{
    return method != "GET" && method != "HEAD";
}

} // namespace

std::optional<endpoint> parse_endpoint(std::string_view text)
{
    endpoint e;
    e.url = std::string(text);
    if (text.find("://") != std::string_view::npos) {
        const std::optional<server::join_url> url = server::parse_join_url(text);
        if (!url)
            return std::nullopt;
        e.https = url->https;
        e.host = url->address.host;
        e.port = url->address.port;
        return e;
    }
    const std::optional<server::host_port> address = server::parse_host_port(text);
    if (!address)
        return std::nullopt;
    e.host = address->host;
    e.port = address->port;
    e.url = "http://" + e.url;
    return e;
}

std::string url_encode(std::string_view text)
{
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' ||
            u == '.' || u == '_' || u == '~')
            out.push_back(c);
        else
            out.append({'%', hex[u >> 4], hex[u & 15]});
    }
    return out;
}

struct client::impl {
    client_options options;
    std::shared_ptr<server::tls_context> tls; // set when an endpoint is https://

    attempt_result run(const endpoint& e, const http_request& req, clock::time_point deadline);
    http_request make_request(const endpoint& e, std::string_view method, const std::string& target,
                              const std::string& body,
                              const std::vector<std::pair<std::string, std::string>>& headers = {}) const;

    // The least time an attempt gets before the next endpoint is asked: min_attempt, or an
    // equal share of the timeout between the endpoints when that is less, so that a short
    // timeout still reaches every endpoint however many never answer.
    clock::duration least_attempt() const
    {
        return std::min<clock::duration>(
            min_attempt,
            options.timeout / static_cast<long>(std::max<std::size_t>(options.endpoints.size(), 1)));
    }
};

// A fresh io_context per attempt: when the deadline passes with the attempt still waiting
// (a name that does not resolve), destroying it abandons everything the attempt started.
attempt_result client::impl::run(const endpoint& e, const http_request& req, clock::time_point deadline)
{
    attempt_result out;
    asio::io_context io;
    asio::co_spawn(io, attempt(io.get_executor(), tls, e, req, deadline, out), [&out](std::exception_ptr ex) {
        out.done = true;
        if (ex && out.error.empty())
            out.error = "the request failed";
    });
    io.run_until(deadline + std::chrono::milliseconds(100));
    if (!out.done) {
        out.status = 0;
        out.error = "timed out";
    }
    return out;
}

http_request client::impl::make_request(const endpoint& e, std::string_view method, const std::string& target,
                                        const std::string& body,
                                        const std::vector<std::pair<std::string, std::string>>& headers) const
{
    http_request req{http::string_to_verb(method), target, 11};
    req.method_string(method);
    const bool v6 = e.host.find(':') != std::string::npos;
    req.set(http::field::host, (v6 ? "[" + e.host + "]" : e.host) + ":" + std::to_string(e.port));
    req.set(http::field::user_agent, "raftkv-cli");
    req.set(http::field::connection, "close");
    if (!options.token.empty())
        req.set(http::field::authorization, "Bearer " + options.token);
    if (!body.empty()) {
        req.set(http::field::content_type, "application/json");
        req.body() = body;
    }
    for (const auto& [name, value] : headers)
        req.insert(name, value);
    req.prepare_payload();
    return req;
}

client::client(client_options options) : impl_(std::make_unique<impl>())
{
    impl_->options = std::move(options);
    bool https = false;
    for (const endpoint& e : impl_->options.endpoints)
        https = https || e.https;
    if (https) {
        try {
            impl_->tls =
                server::make_client_tls(impl_->options.cacert, impl_->options.cert, impl_->options.key);
        } catch (const server::tls_error& e) {
            throw std::runtime_error(e.what());
        }
    }
}

client::~client() = default;

const std::vector<endpoint>& client::endpoints() const noexcept
{
    return impl_->options.endpoints;
}

answer client::request_one(const endpoint& e, std::string_view method, const std::string& target,
                           clock::time_point started, std::size_t endpoints_left)
{
    const auto now = clock::now();
    auto deadline = started + impl_->options.timeout;
    if (now >= deadline)
        return answer{0,
                      "not asked: the timeout (" + std::to_string(impl_->options.timeout.count()) +
                          " ms, --timeout) ran out before this endpoint's turn",
                      e.url,
                      false,
                      {},
                      false};
    if (endpoints_left > 1)
        deadline = share_of(deadline, endpoints_left);
    const attempt_result r = impl_->run(e, impl_->make_request(e, method, target, {}, {}), deadline);
    if (r.status == 0)
        return answer{0, r.error, e.url, r.sent && changes(method), {}, r.tls_refused};
    return answer{r.status, r.body, e.url, false, {}, false};
}

clock::time_point client::share_of(clock::time_point deadline, std::size_t endpoints_left) const
{
    const auto now = clock::now();
    if (now >= deadline || endpoints_left <= 1)
        return deadline;
    return std::min(deadline, now + std::max((deadline - now) / static_cast<long>(endpoints_left),
                                             impl_->least_attempt()));
}

std::chrono::milliseconds client::timeout() const noexcept
{
    return impl_->options.timeout;
}

answer client::stream(const endpoint& e, const std::string& target, std::chrono::milliseconds silence,
                      const std::function<void(std::string_view)>& on_data,
                      std::optional<clock::time_point> answer_by)
{
    const auto deadline = answer_by.value_or(clock::now() + impl_->options.timeout);
    const http_request req = impl_->make_request(e, "GET", target, {});
    attempt_result out;
    asio::io_context io;
    asio::co_spawn(io, attempt_stream(io.get_executor(), impl_->tls, e, req, deadline, silence, on_data, out),
                   [&out](std::exception_ptr ex) {
                       out.done = true;
                       if (ex && out.error.empty())
                           out.error = "the request failed";
                   });
    io.run();
    if (out.status == 0 || (out.status == 200 && !out.error.empty()))
        return answer{out.status, out.error, e.url, false, out.watch_from, out.tls_refused};
    return answer{out.status, out.body, e.url, false, out.watch_from, false};
}

answer client::request(std::string_view method, const std::string& target, const std::string& body,
                       retry_policy policy, const std::vector<std::pair<std::string, std::string>>& headers)
{
    const auto deadline = clock::now() + impl_->options.timeout;
    answer last;
    std::string failures; // "url: why; url: why" of the endpoints that did not answer
    // Endpoints that said they were removed from the cluster: they will answer nothing else.
    std::vector<bool> removed(impl_->options.endpoints.size(), false);
    for (;;) {
        bool unavailable = false;
        const std::vector<endpoint>& endpoints = impl_->options.endpoints;
        for (std::size_t i = 0; i < endpoints.size(); ++i) {
            const endpoint& e = endpoints[i];
            if (removed[i])
                continue;
            const auto now = clock::now();
            if (now >= deadline)
                break;
            // A request that may be repeated gets its share of the time left, so that an
            // endpoint that accepts but never answers cannot hold it until the deadline.
            auto attempt_deadline = deadline;
            if (policy == retry_policy::idempotent) {
                const auto share = (deadline - now) / static_cast<long>(endpoints.size() - i);
                attempt_deadline = std::min(deadline, now + std::max(share, impl_->least_attempt()));
            }
            const attempt_result r =
                impl_->run(e, impl_->make_request(e, method, target, body, headers), attempt_deadline);
            if (r.status == 0) {
                failures += (failures.empty() ? "" : "; ") + e.url + ": " + r.error;
                answer failed{0, failures, e.url, r.sent && changes(method), {}, r.tls_refused};
                if (r.sent && policy == retry_policy::once)
                    return failed;
                if (last.status == 0) // an endpoint's answer says more than another's silence
                    last = std::move(failed);
                continue;
            }
            answer a{r.status, r.body, e.url, false, {}, false};
            if (r.status != 503 || (policy == retry_policy::once && outcome_unknown(r.body)))
                return a;
            removed[i] = r.body.find("it was removed and serves nothing") != std::string::npos;
            last = std::move(a);
            unavailable = unavailable || !removed[i];
        }
        const auto now = clock::now();
        if (!unavailable || now + retry_pause >= deadline) {
            if (last.status == 0 && now >= deadline)
                last.body = failures.empty()                                  ? "timed out"
                            : failures.find("timed out") != std::string::npos ? failures
                                                                              : failures + " (timed out)";
            return last;
        }
        std::this_thread::sleep_for(retry_pause);
        failures.clear();
    }
}

} // namespace raftkv::cli
