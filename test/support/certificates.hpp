#ifndef RAFTKV_TEST_SUPPORT_CERTIFICATES_HPP
#define RAFTKV_TEST_SUPPORT_CERTIFICATES_HPP

// Certificates made on the spot, for what scripts/make-certs.sh cannot make: ones that
// expired or are not valid yet. Include after <boost/test/unit_test.hpp>; link OpenSSL.

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>
#include <filesystem>
#include <memory>

namespace raftkv::test {

/// Writes a self-signed certificate (its own new P-256 key, not written) valid from `from`
/// to `to`, offsets from now, to `file`.
inline void write_certificate(const std::filesystem::path& file, std::chrono::seconds from,
                              std::chrono::seconds to)
{
    const std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), &EVP_PKEY_free);
    const std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), &X509_free);
    BOOST_TEST_REQUIRE((key && cert));
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), static_cast<long>(from.count()));
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(to.count()));
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("raftkv test"), -1, -1, 0);
    X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
    BOOST_TEST_REQUIRE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
    const std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new_file(file.c_str(), "w"), &BIO_free);
    BOOST_TEST_REQUIRE(PEM_write_bio_X509(out.get(), cert.get()) == 1);
}

} // namespace raftkv::test

#endif
