#include "response_parser.hpp"

#define BOOST_TEST_MODULE loadgen_response_parser
#include <boost/test/unit_test.hpp>

#include <string>
#include <string_view>

using raftkv::loadgen::parse_response;
using raftkv::loadgen::parse_status;

namespace {

const std::string ok_response = "HTTP/1.1 200 OK\r\nServer: x\r\ncontent-length: 5\r\n\r\nhello";

} // namespace

BOOST_AUTO_TEST_CASE(parses_status_body_and_size)
{
    const auto r = parse_response(ok_response);
    BOOST_TEST((r.status == parse_status::complete));
    BOOST_TEST(r.response.status == 200);
    BOOST_TEST(ok_response.substr(r.response.body_offset, r.response.body_size) == "hello");
    BOOST_TEST(r.response.size == ok_response.size());
    BOOST_TEST(!r.response.close);
}

BOOST_AUTO_TEST_CASE(every_proper_prefix_is_incomplete)
{
    for (std::size_t n = 0; n < ok_response.size(); ++n) {
        const auto r = parse_response(std::string_view(ok_response).substr(0, n));
        BOOST_TEST((r.status == parse_status::incomplete), "prefix of " << n << " bytes");
    }
}

BOOST_AUTO_TEST_CASE(parses_only_the_first_of_pipelined_responses)
{
    const std::string two = ok_response + "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    const auto first = parse_response(two);
    BOOST_TEST((first.status == parse_status::complete));
    BOOST_TEST(first.response.size == ok_response.size());
    const auto second = parse_response(std::string_view(two).substr(first.response.size));
    BOOST_TEST((second.status == parse_status::complete));
    BOOST_TEST(second.response.status == 404);
    BOOST_TEST(second.response.body_size == 0u);
}

BOOST_AUTO_TEST_CASE(notes_connection_close)
{
    const auto r = parse_response("HTTP/1.1 503 Service Unavailable\r\nConnection: keep-alive, Close\r\n"
                                  "Content-Length: 2\r\n\r\nno");
    BOOST_TEST((r.status == parse_status::complete));
    BOOST_TEST(r.response.status == 503);
    BOOST_TEST(r.response.close);
}

BOOST_AUTO_TEST_CASE(no_content_status_needs_no_length)
{
    const auto r = parse_response("HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n");
    BOOST_TEST((r.status == parse_status::complete));
    BOOST_TEST(r.response.body_size == 0u);
}

BOOST_AUTO_TEST_CASE(refuses_chunked_bodies)
{
    const auto r =
        parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    BOOST_TEST((r.status == parse_status::error));
    BOOST_TEST(std::string_view(r.error).find("chunked") != std::string_view::npos);
}

BOOST_AUTO_TEST_CASE(refuses_what_it_cannot_frame)
{
    const char* bad[] = {
        "HTTP/1.1 200 OK\r\n\r\nbody until close",                             // no Content-Length
        "HTTP/1.1 100 Continue\r\n\r\n",                                       // interim response
        "HTTP/2 200\r\nContent-Length: 0\r\n\r\n",                             // not HTTP/1.x
        "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",                        // status code
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",                       // length
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", // conflicting
        "HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n",       // header line
        "<html>",                                                              // not a response at all
    };
    for (const char* text : bad) {
        const auto r = parse_response(text);
        BOOST_TEST((r.status == parse_status::error), text);
        BOOST_TEST(std::string_view(r.error).size() > 0u);
    }
}

BOOST_AUTO_TEST_CASE(refuses_oversized_headers_and_bodies)
{
    raftkv::loadgen::parse_limits limits;
    limits.max_header_bytes = 64;
    limits.max_body_bytes = 10;
    const std::string long_header = "HTTP/1.1 200 OK\r\nX: " + std::string(100, 'a');
    BOOST_TEST((parse_response(long_header, limits).status == parse_status::error));
    BOOST_TEST((parse_response("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", limits).status ==
                parse_status::error));
}
