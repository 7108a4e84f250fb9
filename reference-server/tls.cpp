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
#include <vector>

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

namespace {

using x509_ptr = std::unique_ptr<X509, decltype(&X509_free)>;

// The certificates in `in` (PEM), the first `max` of them; none when it does not read
// (loading it says why).
std::vector<x509_ptr> read_certificates(BIO* in, std::size_t max)
{
    std::vector<x509_ptr> out;
    while (in && out.size() < max) {
        x509_ptr cert(PEM_read_bio_X509(in, nullptr, nullptr, nullptr), &X509_free);
        if (!cert)
            break;
        out.push_back(std::move(cert));
    }
    ERR_clear_error();
    return out;
}

using bio_ptr = std::unique_ptr<BIO, decltype(&BIO_free)>;

bio_ptr file_bio(const std::string& file)
{
    return bio_ptr(BIO_new_file(file.c_str(), "r"), &BIO_free);
}

bio_ptr text_bio(std::string_view pem)
{
    return bio_ptr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
}

// What is wrong with when `cert`, called `name`, is valid; `who` is who refuses it.
std::optional<std::string> validity_problem(X509* cert, const std::string& name, const std::string& who,
                                            std::chrono::seconds soon)
{
    const ASN1_TIME* not_before = X509_get0_notBefore(cert);
    const ASN1_TIME* not_after = X509_get0_notAfter(cert);
    if (X509_cmp_current_time(not_after) <= 0)
        return name + " expired at " + utc_text(not_after) + ": " + who +
               "; renew it (a changed file is read again within 10 s, or on SIGHUP)";
    if (X509_cmp_current_time(not_before) > 0)
        return name + " is not valid before " + utc_text(not_before) + ": " + who +
               " until then (is this machine's clock right?)";
    int days = 0, seconds = 0;
    if (ASN1_TIME_diff(&days, &seconds, nullptr, not_after) == 1 &&
        std::chrono::days(days) + std::chrono::seconds(seconds) < soon) {
        const auto count = [](int n, const char* unit) {
            return std::to_string(n) + " " + unit + (n == 1 ? "" : "s");
        };
        // What is left, to the hour (to the minute in the last day), rounded down.
        const int hours = seconds / 3600, minutes = seconds % 3600 / 60;
        const auto and_then = [&](int n, const char* unit) { return n > 0 ? " and " + count(n, unit) : ""; };
        const std::string left = days > 0    ? count(days, "day") + and_then(hours, "hour")
                                 : hours > 0 ? count(hours, "hour") + and_then(minutes, "minute")
                                             : count(minutes, "minute");
        return name + " expires at " + utc_text(not_after) + ", in " + left +
               ": renew it (a changed file is read again within 10 s, or on SIGHUP)";
    }
    return std::nullopt;
}

} // namespace

namespace {

std::optional<std::string> first_certificate_problem(BIO* in, const std::string& cert_file,
                                                     std::chrono::seconds soon)
{
    const std::vector<x509_ptr> certs = read_certificates(in, 1);
    if (certs.empty())
        return std::nullopt;
    return validity_problem(certs.front().get(), "the certificate '" + cert_file + "'",
                            "clients and peers that check it refuse every connection", soon);
}

std::vector<std::string> every_ca_problem(BIO* in, const std::string& ca_file, std::chrono::seconds soon)
{
    std::vector<std::string> out;
    for (const x509_ptr& cert : read_certificates(in, 1000)) {
        char subject[256] = "";
        X509_NAME_oneline(X509_get_subject_name(cert.get()), subject, sizeof subject);
        if (std::optional<std::string> problem = validity_problem(
                cert.get(), "the CA certificate " + std::string(subject) + " in '" + ca_file + "'",
                "certificates it signed do not verify", soon))
            out.push_back(std::move(*problem));
    }
    return out;
}

} // namespace

std::optional<std::string> certificate_validity_problem(const std::string& cert_file,
                                                        std::chrono::seconds soon)
{
    return first_certificate_problem(file_bio(cert_file).get(), cert_file, soon);
}

std::optional<std::string> certificate_validity_problem(const std::string& cert_file, std::string_view pem,
                                                        std::chrono::seconds soon)
{
    return first_certificate_problem(text_bio(pem).get(), cert_file, soon);
}

std::vector<std::string> ca_validity_problems(const std::string& ca_file, std::chrono::seconds soon)
{
    return every_ca_problem(file_bio(ca_file).get(), ca_file, soon);
}

std::vector<std::string> ca_validity_problems(const std::string& ca_file, std::string_view pem,
                                              std::chrono::seconds soon)
{
    return every_ca_problem(text_bio(pem).get(), ca_file, soon);
}

} // namespace raftkv::server
