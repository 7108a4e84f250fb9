#include "ui.hpp"

#define BOOST_TEST_MODULE server_ui
#include <boost/test/unit_test.hpp>

#include "request_parsing.hpp"

#include <regex>
#include <string>

// The cluster page's files as the server serves them: routing, headers, conditional
// requests, and that the page needs nothing the binary does not hold.

namespace {

namespace http = boost::beast::http;
using raftkv::server::http_request;
using raftkv::server::http_response;
using raftkv::server::match_route;
using raftkv::server::route;
using raftkv::server::route_match;
using raftkv::server::ui_asset;
using raftkv::server::ui_assets;
using raftkv::server::ui_response;

http_response get(std::string_view target, std::string_view if_none_match = {})
{
    http_request req{http::verb::get, target, 11};
    if (!if_none_match.empty())
        req.set(http::field::if_none_match, if_none_match);
    const route_match m = match_route(req.method(), target);
    BOOST_TEST_REQUIRE((m.route == route::ui), target);
    return ui_response(req, m.asset);
}

std::string header(const http_response& res, http::field f)
{
    const auto it = res.find(f);
    return it == res.end() ? std::string() : std::string(it->value());
}

} // namespace

BOOST_AUTO_TEST_CASE(ui_routes_take_get_and_head)
{
    for (const std::string_view target : {"/ui", "/ui/", "/ui/app.js", "/ui/x?y=1"}) {
        for (const http::verb v : {http::verb::get, http::verb::head}) {
            const route_match m = match_route(v, target);
            BOOST_TEST((m.result == route_match::outcome::found), target);
            BOOST_TEST((m.route == route::ui), target);
        }
        const route_match post = match_route(http::verb::post, target);
        BOOST_TEST((post.result == route_match::outcome::method_not_allowed), target);
        BOOST_TEST(post.allow == "GET, HEAD");
    }
    BOOST_TEST(match_route(http::verb::get, "/ui/x?y=1").asset == "/ui/x");
    BOOST_TEST((match_route(http::verb::get, "/uix").result == route_match::outcome::not_found));
}

BOOST_AUTO_TEST_CASE(the_page_is_index_html_with_its_type_etag_and_policy)
{
    const http_response page = get("/ui");
    BOOST_TEST(page.result_int() == 200u);
    BOOST_TEST(header(page, http::field::content_type) == "text/html; charset=utf-8");
    BOOST_TEST(page.body().starts_with("<!doctype html>"));
    BOOST_TEST(header(page, http::field::cache_control) == "no-cache");
    BOOST_TEST(std::regex_match(header(page, http::field::etag), std::regex(R"("[0-9a-f]{16}")")));
    BOOST_TEST(page[std::string_view("Content-Security-Policy")].starts_with("default-src 'none'"));
    BOOST_TEST(page[std::string_view("X-Content-Type-Options")] == "nosniff");
    BOOST_TEST(get("/ui/").body() == page.body());
    BOOST_TEST(get("/ui/index.html").body() == page.body());

    BOOST_TEST(header(get("/ui/app.js"), http::field::content_type) == "text/javascript; charset=utf-8");
    BOOST_TEST(header(get("/ui/style.css"), http::field::content_type) == "text/css; charset=utf-8");
}

BOOST_AUTO_TEST_CASE(a_known_etag_is_answered_304_without_a_body)
{
    const std::string etag = header(get("/ui/app.js"), http::field::etag);
    for (const std::string& condition :
         {etag, "\"0000000000000000\", " + etag, "W/" + etag, std::string("*")}) {
        const http_response res = get("/ui/app.js", condition);
        BOOST_TEST(res.result_int() == 304u, condition);
        BOOST_TEST(res.body().empty());
        BOOST_TEST(header(res, http::field::etag) == etag);
    }
    BOOST_TEST(get("/ui/app.js", "\"0000000000000000\"").result_int() == 200u);
    // An ETag is one file's: style.css's does not match app.js.
    BOOST_TEST(get("/ui/app.js", header(get("/ui/style.css"), http::field::etag)).result_int() == 200u);
}

BOOST_AUTO_TEST_CASE(an_unknown_file_is_404)
{
    for (const std::string_view target :
         {"/ui/nothing.js", "/ui/../api.cpp", "/ui/index.html/", "/ui//app.js"})
        BOOST_TEST(get(target).result_int() == 404u, target);
}

// Every file the page names is served, and none names anything from elsewhere: the page
// works without a network beyond the node, and the Content-Security-Policy would refuse it.
BOOST_AUTO_TEST_CASE(the_page_needs_nothing_but_its_own_files)
{
    const std::string page = get("/ui").body();
    const std::regex reference(R"re((?:src|href)="([^"]*)")re");
    int references = 0;
    for (auto it = std::sregex_iterator(page.begin(), page.end(), reference); it != std::sregex_iterator();
         ++it) {
        const std::string target = (*it)[1];
        if (target.starts_with("data:"))
            continue;
        BOOST_TEST(get(target).result_int() == 200u, target);
        ++references;
    }
    BOOST_TEST(references >= 3);
    for (const ui_asset& a : ui_assets()) {
        std::string body(a.body);
        // The SVG namespace is a name, not a request.
        body = std::regex_replace(body, std::regex(R"(http://www\.w3\.org/2000/svg)"), "");
        BOOST_TEST(!std::regex_search(body, std::regex(R"(https?://|//[a-z0-9.-]+\.[a-z]{2,}/)")), a.path);
        BOOST_TEST(!std::regex_search(body, std::regex(R"(@import|@font-face)")), a.path);
    }
}
