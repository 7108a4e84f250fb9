#include "tls.hpp"

#include <boost/asio/ssl/context.hpp>
#include <boost/system/system_error.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
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

namespace {

// "2026-12-01 00:00:00 UTC"; the ASN.1 text when it does not convert.
std::string utc_text(const ASN1_TIME* t)
{
    std::tm tm{};
    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return "an unreadable time";
    char out[32];
    std::strftime(out, sizeof out, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return out;
}

} // namespace

std::optional<std::string> certificate_validity_problem(const std::string& cert_file,
                                                        std::chrono::seconds soon)
{
    const std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_file(cert_file.c_str(), "r"), &BIO_free);
    if (!in) {
        ERR_clear_error();
        return std::nullopt;
    }
    const std::unique_ptr<X509, decltype(&X509_free)> cert(
        PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr), &X509_free);
    ERR_clear_error();
    if (!cert)
        return std::nullopt;
    const std::string name = "the certificate '" + cert_file + "'";
    const ASN1_TIME* not_before = X509_get0_notBefore(cert.get());
    const ASN1_TIME* not_after = X509_get0_notAfter(cert.get());
    if (X509_cmp_current_time(not_after) <= 0)
        return name + " expired at " + utc_text(not_after) +
               ": clients and peers that check it refuse every connection; renew it (a changed file is "
               "read again within 10 s, or on SIGHUP)";
    if (X509_cmp_current_time(not_before) > 0)
        return name + " is not valid before " + utc_text(not_before) +
               ": clients and peers that check it refuse every connection until then (is this machine's "
               "clock right?)";
    int days = 0, seconds = 0;
    if (ASN1_TIME_diff(&days, &seconds, nullptr, not_after) == 1 &&
        std::chrono::days(days) + std::chrono::seconds(seconds) < soon) {
        const auto count = [](int n, const char* unit) {
            return std::to_string(n) + " " + unit + (n == 1 ? "" : "s");
        };
        return name + " expires at " + utc_text(not_after) + ", in less than " +
               (days > 0 ? count(days + 1, "day") : count(seconds / 3600 + 1, "hour")) +
               ": renew it (a changed file is read again within 10 s, or on SIGHUP)";
    }
    return std::nullopt;
}

} // namespace raftkv::server
