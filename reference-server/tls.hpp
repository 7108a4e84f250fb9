#ifndef RAFTKV_SERVER_TLS_HPP
#define RAFTKV_SERVER_TLS_HPP

// TLS for the HTTP API: the OpenSSL contexts the HTTP server and the forwarding client use,
// built from PEM files once at start-up. This header keeps Asio's SSL and OpenSSL's headers
// out of the code that only passes a context on; http_server_tls.cpp and client_stream.cpp use
// native().
//
//     std::shared_ptr<tls_context> tls = make_server_tls("node-1.crt", "node-1.key", "ca.crt");
//     options.tls = tls;

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio::ssl {
class context;
} // namespace boost::asio::ssl

namespace raftkv::server {

/// A file cannot be read or is not what it should be (a PEM certificate, key or CA list);
/// what() is one line naming it.
class tls_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/** An OpenSSL context: certificates, keys, trusted CAs and verification mode.

    @par Thread Safety
    Configured once when made; then any number of connections, on any threads, may use it.
*/
class tls_context {
public:
    explicit tls_context(std::unique_ptr<boost::asio::ssl::context> context);
    ~tls_context();
    tls_context(const tls_context&) = delete;
    tls_context& operator=(const tls_context&) = delete;

    boost::asio::ssl::context& native() { return *context_; }

private:
    std::unique_ptr<boost::asio::ssl::context> context_;
};

/// A server context (TLS 1.2 or later) presenting the certificate chain in `cert_file` with
/// the private key in `key_file`. With a `client_ca_file`, a client must present a
/// certificate signed by one of the CAs in it, or the handshake fails. Throws tls_error.
std::shared_ptr<tls_context> make_server_tls(const std::string& cert_file, const std::string& key_file,
                                             const std::string& client_ca_file = {});

/// A client context (TLS 1.2 or later) that verifies the server's certificate against the
/// CAs in `ca_file` (the system's default CAs when empty) and, with a `cert_file` and
/// `key_file`, presents that certificate. Throws tls_error.
std::shared_ptr<tls_context> make_client_tls(const std::string& ca_file, const std::string& cert_file = {},
                                             const std::string& key_file = {});

/// What is wrong with when the first certificate in the PEM file `cert_file` is valid, as
/// of now: expired, not valid yet, or expiring within `soon` ("the certificate 'node.crt'
/// expired at 2026-12-01 00:00:00 UTC: ..."). Nothing when it is valid for longer, or the
/// file holds no certificate that reads (loading it says why).
std::optional<std::string> certificate_validity_problem(const std::string& cert_file,
                                                        std::chrono::seconds soon = std::chrono::days(7));

/// The same for every certificate in the CA file `ca_file` (a CA that expired makes every
/// certificate it signed fail to verify), one line each.
std::vector<std::string> ca_validity_problems(const std::string& ca_file,
                                              std::chrono::seconds soon = std::chrono::days(7));

/// The same, of `pem`: the text `cert_file` (`ca_file`) held when it was loaded. What is in
/// use, which a reload that failed leaves different from the file.
std::optional<std::string> certificate_validity_problem(const std::string& cert_file, std::string_view pem,
                                                        std::chrono::seconds soon = std::chrono::days(7));
std::vector<std::string> ca_validity_problems(const std::string& ca_file, std::string_view pem,
                                              std::chrono::seconds soon = std::chrono::days(7));

} // namespace raftkv::server

#endif
