#include "auth.hpp"

#define BOOST_TEST_MODULE server_auth
#include <boost/test/unit_test.hpp>

#include "leveldb/temp_dir.hpp"

#include <fstream>
#include <string>
#include <vector>

namespace {

using raftkv::server::access;
using raftkv::server::auth_decision;
using raftkv::server::auth_token;
using raftkv::server::authorizer;
using raftkv::server::bearer_token;
using raftkv::server::parse_auth_tokens;
using outcome = auth_decision::outcome;

const std::string writer = "w-0123456789abcdef";
const std::string reader = "r-0123456789abcdef";

std::vector<auth_token> parse_ok(std::string_view text)
{
    std::string error;
    auto tokens = parse_auth_tokens(text, "tokens", error);
    BOOST_TEST_REQUIRE(tokens.has_value(), error);
    BOOST_TEST(error.empty());
    return *tokens;
}

// The error for `text`, which must name `expected` and never a token of the text.
std::string parse_error(std::string_view text, const std::string& expected)
{
    std::string error;
    const auto tokens = parse_auth_tokens(text, "tokens", error);
    BOOST_TEST_REQUIRE(!tokens.has_value(), text);
    BOOST_TEST(error.find(expected) != std::string::npos,
               "error '" << error << "' lacks '" << expected << "'");
    BOOST_TEST(error.find('\n') == std::string::npos, error);
    BOOST_TEST(error.find("0123456789abcdef") == std::string::npos, "the error shows a token: " << error);
    return error;
}

const authorizer& two_tokens()
{
    static const authorizer a{{{writer, access::write, "alice"}, {reader, access::read, "bob"}}};
    return a;
}

} // namespace

// ---- The tokens file ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_tokens_file_has_one_token_per_line_with_comments_and_blank_lines)
{
    const auto tokens = parse_ok("# raftkv tokens\n"
                                 "\n" +
                                 writer + " write alice\n" + "   \t\n" + "  " + reader +
                                 "\tread   # the dashboard\r\n"
                                 "abcdefghijklmnop== write\n");
    BOOST_TEST_REQUIRE(tokens.size() == 3u);
    BOOST_TEST((tokens[0] == auth_token{writer, access::write, "alice"}));
    BOOST_TEST((tokens[1] == auth_token{reader, access::read, ""}));
    BOOST_TEST((tokens[2] == auth_token{"abcdefghijklmnop==", access::write, ""}));
    // No newline at the end of the last line.
    BOOST_TEST(parse_ok(writer + " read").size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_bad_line_is_an_error_naming_its_number_and_never_the_token)
{
    parse_error(writer + " write\n" + reader, "tokens: line 2: expected '<token> <read|write> [name]'");
    parse_error("# c\n\n" + writer + " admin", "tokens: line 3: the access must be 'read' or 'write'");
    parse_error(writer + " Write", "line 1: the access must be 'read' or 'write'");
    parse_error(writer + " read alice extra",
                "line 1: expected '<token> <read|write> [name]', found 4 fields");
    parse_error("short write", "line 1: the token is 5 characters; it must be 16 to 256");
    parse_error(std::string(257, 'a') + " write", "line 1: the token is 257 characters");
    parse_error("0123456789abcdef\"x write", "line 1: the token has a character outside");
    parse_error("0123456789abcdef=x write", "line 1: the token has a character outside");
    parse_error(writer + " read " + std::string(65, 'n'), "line 1: the name must be at most 64");
    parse_error("\n" + writer + " read a\n" + writer + " write b",
                "tokens: line 3: the token of line 2 again");
}

BOOST_AUTO_TEST_CASE(a_file_without_tokens_is_an_error)
{
    parse_error("", "tokens: no tokens");
    parse_error("# only a comment\n\n", "tokens: no tokens");
}

BOOST_AUTO_TEST_CASE(reading_a_missing_file_says_so)
{
    raftkv::test::temp_dir dir;
    std::string error;
    BOOST_TEST(!raftkv::server::read_auth_tokens(dir / "absent", error).has_value());
    BOOST_TEST(error.find("cannot read auth tokens file") != std::string::npos, error);
    std::ofstream(dir / "tokens") << writer << " write\n";
    const auto tokens = raftkv::server::read_auth_tokens(dir / "tokens", error);
    BOOST_TEST_REQUIRE(tokens.has_value(), error);
    BOOST_TEST(tokens->front().token == writer);
}

// ---- Checking a request ---------------------------------------------------------------

BOOST_AUTO_TEST_CASE(the_bearer_scheme_is_case_insensitive_and_needs_one_token)
{
    BOOST_TEST(bearer_token("Bearer abc").value() == "abc");
    BOOST_TEST(bearer_token("bearer   abc").value() == "abc");
    BOOST_TEST(bearer_token("BEARER abc ").value() == "abc");
    for (const char* bad :
         {"", "Bearer", "Bearer ", "Bearer  ", "Basic abc", "Bearerabc", "Bearer a b", "abc"})
        BOOST_TEST(!bearer_token(bad).has_value(), bad);
}

BOOST_AUTO_TEST_CASE(a_write_token_may_do_everything_and_a_read_token_only_read)
{
    const authorizer& a = two_tokens();
    for (const bool write : {false, true}) {
        const auth_decision d = a.check("Bearer " + writer, write);
        BOOST_TEST((d.result == outcome::allowed));
        BOOST_TEST(d.name == "alice");
    }
    BOOST_TEST((a.check("Bearer " + reader, false).result == outcome::allowed));
    const auth_decision no = a.check("Bearer " + reader, true);
    BOOST_TEST((no.result == outcome::forbidden));
    BOOST_TEST(no.name == "bob");
}

BOOST_AUTO_TEST_CASE(a_missing_malformed_or_unknown_token_is_unauthenticated)
{
    const authorizer& a = two_tokens();
    for (const std::string& header : std::vector<std::string>{
             "", "Bearer", "Basic " + writer, writer, "Bearer " + writer + "x",
             "Bearer " + writer.substr(0, writer.size() - 1), "Bearer " + writer + " " + writer}) {
        BOOST_TEST((a.check(header, false).result == outcome::unauthenticated), header);
        BOOST_TEST((a.check(header, true).result == outcome::unauthenticated), header);
    }
}

// ---- The forwarding marker ------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_marker_verifies_only_for_its_request_under_its_key)
{
    using namespace raftkv::server;
    const std::vector<auth_token> tokens{{writer, access::write, ""}, {reader, access::read, ""}};
    const forwarding_key key = derive_forwarding_key(0x1234, tokens);
    const std::string marker = forward_marker(key, 3, "PUT", "/kv/a");
    BOOST_TEST(marker.starts_with("3 "));
    BOOST_TEST(marker.size() == 2u + 64u);
    BOOST_TEST(verify_forward_marker(key, marker, "PUT", "/kv/a").value() == 3u);

    // The order of the tokens does not matter; the tokens and the cluster do.
    BOOST_TEST(
        verify_forward_marker(derive_forwarding_key(0x1234, {tokens[1], tokens[0]}), marker, "PUT", "/kv/a")
            .has_value());
    BOOST_TEST(!verify_forward_marker(derive_forwarding_key(0x1235, tokens), marker, "PUT", "/kv/a"));
    BOOST_TEST(!verify_forward_marker(derive_forwarding_key(0x1234, {tokens[0]}), marker, "PUT", "/kv/a"));
    BOOST_TEST(!verify_forward_marker(derive_forwarding_key(0x1234, {}), marker, "PUT", "/kv/a"));

    // Another request, another claimed sender, or a forged value does not verify.
    BOOST_TEST(!verify_forward_marker(key, marker, "DELETE", "/kv/a"));
    BOOST_TEST(!verify_forward_marker(key, marker, "PUT", "/kv/b"));
    std::string other = marker;
    other[0] = '4';
    BOOST_TEST(!verify_forward_marker(key, other, "PUT", "/kv/a"));
    other = marker;
    other.back() = other.back() == '0' ? '1' : '0';
    BOOST_TEST(!verify_forward_marker(key, other, "PUT", "/kv/a"));
    for (const char* forged : {"", "3", "3 ", "0 " /* not an id */, "x abc", "3 00"})
        BOOST_TEST(!verify_forward_marker(key, forged, "PUT", "/kv/a"), forged);
}
