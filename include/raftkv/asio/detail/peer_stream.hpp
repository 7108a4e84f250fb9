#ifndef RAFTKV_ASIO_DETAIL_PEER_STREAM_HPP
#define RAFTKV_ASIO_DETAIL_PEER_STREAM_HPP

// A connection between two nodes: plain TCP, or TLS over TCP when the transport has peer
// TLS (tcp_transport_options::tls). Holds the TLS context and the checks of a peer's
// certificate. This is the only place the transport touches Boost.Asio SSL and OpenSSL;
// it is included by the transport's compiled part only (impl/tcp_transport.ipp), so no
// header a user includes pulls them in.

#include <raftkv/asio/tcp_transport.hpp>
#include <raftkv/types.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace raftkv::asio::detail {

/// The subject common name a node's certificate must carry: "raftkv-node-<id>".
inline std::string node_common_name(node_id id)
{
    return "raftkv-node-" + std::to_string(id);
}

/// The TLS context of a transport with peer TLS: its own certificate and key, and the CA
/// a peer's certificate must chain to. Both sides of every connection present a
/// certificate and verify the other's. reload() reads the files again (a renewed
/// certificate): connections made afterwards use them, those open keep what they began with.
/// Thread-safe.
class tls_context {
public:
    /// Loads the three PEM files. Throws std::runtime_error naming the file and the cause.
    explicit tls_context(const tcp_transport_tls& files) : context_(load_files(files)) {}

    /// The context a new connection uses; the connection holds it while it lives.
    std::shared_ptr<boost::asio::ssl::context> current() const
    {
        std::lock_guard lock(mutex_);
        return context_;
    }

    /// Loads `files` and makes them the context of the connections made from now on.
    /// Throws std::runtime_error, keeping the context in use, when one does not load or the
    /// certificate's common name is not `common_name`.
    void reload(const tcp_transport_tls& files, const std::string& common_name)
    {
        std::shared_ptr<boost::asio::ssl::context> next = load_files(files);
        if (const std::string own = own_common_name(*next); own != common_name)
            throw std::runtime_error("peer TLS: the certificate " + files.certificate_file +
                                     " is for CN=" + own + ", not this node's CN=" + common_name);
        std::lock_guard lock(mutex_);
        context_ = std::move(next);
    }

    /// The subject common name of this node's own certificate ("" if it has none).
    std::string own_common_name() const { return own_common_name(*current()); }
    static std::string own_common_name(boost::asio::ssl::context& c)
    {
        return common_name(SSL_CTX_get0_certificate(c.native_handle()));
    }

    /// The subject common name of `cert`, "" if none; "(several)" if it has more than one.
    static std::string common_name(const X509* cert)
    {
        if (!cert)
            return {};
        const X509_NAME* subject = X509_get_subject_name(cert);
        const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
        if (at < 0)
            return {};
        if (X509_NAME_get_index_by_NID(subject, NID_commonName, at) >= 0)
            return "(several)";
        const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
        return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                           static_cast<std::size_t>(ASN1_STRING_length(data)));
    }

private:
    static std::shared_ptr<boost::asio::ssl::context> load_files(const tcp_transport_tls& files)
    {
        auto c = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls);
        c->set_options(boost::asio::ssl::context::default_workarounds | boost::asio::ssl::context::no_sslv2 |
                       boost::asio::ssl::context::no_sslv3 | boost::asio::ssl::context::no_tlsv1 |
                       boost::asio::ssl::context::no_tlsv1_1);
        load("certificate", files.certificate_file, [&](boost::system::error_code& ec) {
            c->use_certificate_chain_file(files.certificate_file, ec);
        });
        load("private key", files.private_key_file, [&](boost::system::error_code& ec) {
            c->use_private_key_file(files.private_key_file, boost::asio::ssl::context::pem, ec);
        });
        load("CA certificate", files.ca_file,
             [&](boost::system::error_code& ec) { c->load_verify_file(files.ca_file, ec); });
        if (SSL_CTX_check_private_key(c->native_handle()) != 1)
            throw std::runtime_error("peer TLS: the private key " + files.private_key_file +
                                     " does not match the certificate " + files.certificate_file);
        c->set_verify_mode(boost::asio::ssl::verify_peer | boost::asio::ssl::verify_fail_if_no_peer_cert);
        return c;
    }

    template <class F>
    static void load(const char* what, const std::string& file, F f)
    {
        if (!std::ifstream(file))
            throw std::runtime_error("peer TLS: cannot read the " + std::string(what) + " file " + file);
        boost::system::error_code ec;
        f(ec);
        if (ec)
            throw std::runtime_error("peer TLS: cannot load the " + std::string(what) + " file " + file +
                                     ": " + ec.message());
    }

    mutable std::mutex mutex_;
    std::shared_ptr<boost::asio::ssl::context> context_; // under mutex_
};

/// One connection's stream: a TCP socket, or a TLS stream over one. Reads and writes go
/// through whichever it is. Not movable: pending TLS operations refer to it.
class peer_stream {
public:
    using tcp = boost::asio::ip::tcp;

    /// Takes `socket` (connected or not); speaks TLS over it when `tls` is not null.
    peer_stream(tcp::socket socket, tls_context* tls)
    {
        if (tls) {
            context_ = tls->current();
            tls_.emplace(std::move(socket), *context_);
        } else {
            plain_.emplace(std::move(socket));
        }
    }
    peer_stream(const peer_stream&) = delete;
    peer_stream& operator=(const peer_stream&) = delete;

    bool is_tls() const noexcept { return tls_.has_value(); }
    tcp::socket& socket() noexcept { return tls_ ? tls_->next_layer() : *plain_; }

    void close()
    {
        boost::system::error_code ignored;
        socket().close(ignored);
    }

    /// The TLS handshake, as the side that dialed (client) or accepted (server). Completes
    /// at once, successfully, on a plain stream.
    template <class Handler>
    void async_handshake(bool dialed, Handler h)
    {
        if (!tls_)
            return boost::asio::post(socket().get_executor(), [h = std::move(h)]() mutable { h({}); });
        tls_->async_handshake(dialed ? boost::asio::ssl::stream_base::client
                                     : boost::asio::ssl::stream_base::server,
                              std::move(h));
    }

    template <class Buffers, class Handler>
    void async_read(const Buffers& buffers, Handler h)
    {
        if (tls_)
            boost::asio::async_read(*tls_, buffers, std::move(h));
        else
            boost::asio::async_read(*plain_, buffers, std::move(h));
    }

    template <class Buffers, class Handler>
    void async_read_some(const Buffers& buffers, Handler h)
    {
        if (tls_)
            tls_->async_read_some(buffers, std::move(h));
        else
            plain_->async_read_some(buffers, std::move(h));
    }

    template <class Buffers, class Handler>
    void async_write(const Buffers& buffers, Handler h)
    {
        if (tls_)
            boost::asio::async_write(*tls_, buffers, std::move(h));
        else
            boost::asio::async_write(*plain_, buffers, std::move(h));
    }

    /// After a successful handshake: why the peer's certificate does not prove it is node
    /// `expected`, or "" when it does. Its chain to the CA was verified by the handshake;
    /// this checks its subject common name. "" on a plain stream.
    std::string check_peer(node_id expected)
    {
        if (!tls_)
            return {};
        X509* cert = SSL_get1_peer_certificate(tls_->native_handle());
        const std::string name = tls_context::common_name(cert);
        X509_free(cert);
        if (name == node_common_name(expected))
            return {};
        return "node " + std::to_string(expected) + " presented a certificate for " +
               (name.empty() ? std::string("no common name") : "CN=" + name) +
               ", not CN=" + node_common_name(expected) +
               " (a node started with another node's certificate?)";
    }

    /// Why a handshake failed with `ec`, in one line: OpenSSL's reason, and the
    /// certificate verification error when there was one.
    std::string handshake_failure(const boost::system::error_code& ec)
    {
        std::string why = "TLS handshake failed: " + ec.message();
        if (tls_) {
            const long verify = SSL_get_verify_result(tls_->native_handle());
            if (verify != X509_V_OK)
                why += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
        }
        if (ec == boost::asio::ssl::error::stream_truncated || ec == boost::asio::error::eof ||
            ec == boost::asio::error::connection_reset)
            why += "; the peer closed the connection (does it run without peer TLS, or refuse this "
                   "node's certificate?)";
        else if (ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_WRONG_VERSION_NUMBER ||
                 ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_HTTP_REQUEST)
            why += "; the peer does not speak TLS (peer TLS is off there?)";
        return why;
    }

private:
    std::shared_ptr<boost::asio::ssl::context> context_; // outlives tls_, which uses it
    std::optional<tcp::socket> plain_;
    std::optional<boost::asio::ssl::stream<tcp::socket>> tls_;
};

} // namespace raftkv::asio::detail

#endif
