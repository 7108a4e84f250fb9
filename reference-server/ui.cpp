#include "ui.hpp"

#include "api.hpp"

#include <boost/beast/http/field.hpp>

#include <algorithm>

namespace raftkv::server {

namespace {

namespace http = boost::beast::http;

// Scripts, styles and fetches from this origin only; no inline script, no framing.
constexpr std::string_view content_security_policy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ui_asset* find_asset(std::string_view path)
{
    if (path == "/ui" || path == "/ui/")
        path = "/ui/index.html";
    const std::span<const ui_asset> assets = ui_assets();
    const auto it =
        std::find_if(assets.begin(), assets.end(), [&](const ui_asset& a) { return a.path == path; });
    return it == assets.end() ? nullptr : &*it;
}

// If-None-Match: "*" or a list of ETags, any of them weak (W/"...").
bool etag_matches(std::string_view if_none_match, std::string_view etag)
{
    if (if_none_match == "*")
        return true;
    for (std::size_t at = if_none_match.find(etag); at != std::string_view::npos;
         at = if_none_match.find(etag, at + 1)) {
        const std::size_t end = at + etag.size();
        if (end == if_none_match.size() || if_none_match[end] == ',' || if_none_match[end] == ' ')
            return true;
    }
    return false;
}

} // namespace

http_response ui_response(const http_request& req, std::string_view path)
{
    const ui_asset* asset = find_asset(path);
    if (!asset)
        return error_response(http::status::not_found, "not found");
    const auto condition = req.find(http::field::if_none_match);
    const bool unchanged = condition != req.end() && etag_matches(condition->value(), asset->etag);
    http_response res{unchanged ? http::status::not_modified : http::status::ok, 11};
    res.set(http::field::etag, asset->etag);
    res.set(http::field::cache_control, "no-cache");
    if (unchanged)
        return res;
    res.set(http::field::content_type, asset->content_type);
    res.set("Content-Security-Policy", content_security_policy);
    res.set("X-Content-Type-Options", "nosniff");
    res.set("Referrer-Policy", "no-referrer");
    res.body() = asset->body;
    return res;
}

} // namespace raftkv::server
