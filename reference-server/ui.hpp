#ifndef RAFTKV_SERVER_UI_HPP
#define RAFTKV_SERVER_UI_HPP

// The cluster page, GET /ui: the HTML, CSS and JavaScript in reference-server/ui/, compiled
// into the binary by the build (embed_ui.cmake writes ui_assets.cpp), so the server needs no
// files beside it and the page needs nothing from elsewhere. The page reads
// GET /cluster/status and GET /metrics from the node that served it; docs/ui.md describes it.
//
//     if (m.route == route::ui)
//         return ui_response(req, m.asset);

#include "http_server.hpp"

#include <span>
#include <string_view>

namespace raftkv::server {

/// One file of the page.
struct ui_asset {
    /// "/ui/{file name}"
    std::string_view path;
    std::string_view content_type;
    /// A strong ETag, quotes included: the first 16 hex digits of the file's SHA-256.
    std::string_view etag;
    std::string_view body;
};

/// Every file of the page, in path order (generated).
std::span<const ui_asset> ui_assets();

/// The answer to a GET or HEAD of `path`, "/ui", "/ui/" (both index.html) or "/ui/{file}":
/// 200 with the file, its Content-Type, ETag, "Cache-Control: no-cache" (a browser
/// revalidates, so a new binary's page is never stale) and a Content-Security-Policy that
/// loads and connects to nothing but this origin; 304 when If-None-Match names the ETag;
/// 404 for any other path. A HEAD answer carries the body too: http_server leaves it out.
http_response ui_response(const http_request& req, std::string_view path);

} // namespace raftkv::server

#endif
