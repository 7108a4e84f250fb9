#include "tls.hpp"

#include <boost/asio/ssl/context.hpp>
#include <boost/system/system_error.hpp>

#include <openssl/err.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace raftkv::server {

namespace {

namespace ssl = boost::asio::ssl;

// OpenSSL's reason for the last failure, e.g. "no start line" for a file that is not PEM.
std::string reason(const boost::system::system_error& e)
{
    const unsigned long code = ERR_peek_last_error();
    std::string why =
        code != 0 && ERR_reason_error_string(code) ? ERR_reason_error_string(code) : e.code().message();
    ERR_clear_error();
    return why;
}

// Runs `step` on `context`; a failure becomes a tls_error naming `what` and `file`.
template <class Step>
void load(const char* what, const std::string& file, Step step)
{
    try {
        step();
    } catch (const boost::system::system_error& e) {
        std::string why = reason(e);
        if (why.find("PEM lib") != std::string::npos)
            why += " (the file is not PEM of that kind)";
        throw tls_error("cannot use " + std::string(what) + " '" + file + "': " + why);
    }
}

std::unique_ptr<ssl::context> new_context(ssl::context::method method)
{
    auto context = std::make_unique<ssl::context>(method);
    context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    return context;
}

// Checks that `file` can be read: for one it cannot open, OpenSSL says only "system lib".
void readable(const char* what, const std::string& file)
{
    if (std::ifstream in(file); !in)
        throw tls_error("cannot read " + std::string(what) + " '" + file + "': " + std::strerror(errno));
}

void use_certificate(ssl::context& context, const std::string& cert_file, const std::string& key_file)
{
    readable("the certificate", cert_file);
    readable("the private key", key_file);
    load("the certificate", cert_file, [&] { context.use_certificate_chain_file(cert_file); });
    load("the private key", key_file, [&] { context.use_private_key_file(key_file, ssl::context::pem); });
    if (SSL_CTX_check_private_key(context.native_handle()) != 1) {
        ERR_clear_error();
        throw tls_error("the private key '" + key_file + "' does not match the certificate '" + cert_file +
                        "'");
    }
}

} // namespace

tls_context::tls_context(std::unique_ptr<ssl::context> context) : context_(std::move(context)) {}

tls_context::~tls_context() = default;

std::shared_ptr<tls_context> make_server_tls(const std::string& cert_file, const std::string& key_file,
                                             const std::string& client_ca_file)
{
    auto context = new_context(ssl::context::tls_server);
    use_certificate(*context, cert_file, key_file);
    if (!client_ca_file.empty()) {
        readable("the client CA file", client_ca_file);
        load("the client CA file", client_ca_file, [&] { context->load_verify_file(client_ca_file); });
        context->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    return std::make_shared<tls_context>(std::move(context));
}

std::shared_ptr<tls_context> make_client_tls(const std::string& ca_file, const std::string& cert_file,
                                             const std::string& key_file)
{
    auto context = new_context(ssl::context::tls_client);
    if (ca_file.empty())
        load("the system's CA certificates", "default", [&] { context->set_default_verify_paths(); });
    else {
        readable("the CA file", ca_file);
        load("the CA file", ca_file, [&] { context->load_verify_file(ca_file); });
    }
    context->set_verify_mode(ssl::verify_peer);
    if (!cert_file.empty())
        use_certificate(*context, cert_file, key_file);
    return std::make_shared<tls_context>(std::move(context));
}

} // namespace raftkv::server
