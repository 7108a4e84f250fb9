#include "api.hpp"

#define BOOST_TEST_MODULE server_api
#include <boost/test/unit_test.hpp>

#include "cluster_api.hpp"
#include "kv_service.hpp"
#include "log.hpp"
#include "member_info.hpp"

#include <raftkv/error.hpp>

#include <boost/json/serialize.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace {

namespace http = boost::beast::http;
using raftkv::server::check_key;
using raftkv::server::check_put_body;
using raftkv::server::match_route;
using raftkv::server::percent_decode;
using raftkv::server::route;
using raftkv::server::route_match;
using outcome = raftkv::server::route_match::outcome;

void check_found(http::verb method, std::string_view target, route r)
{
    const route_match m = match_route(method, target);
    BOOST_TEST((m.result == outcome::found), target);
    BOOST_TEST((m.route == r), target);
}

void check_not_allowed(http::verb method, std::string_view target, std::string_view allow)
{
    const route_match m = match_route(method, target);
    BOOST_TEST((m.result == outcome::method_not_allowed), target);
    BOOST_TEST(m.allow == allow, target);
}

void check_rejected(const raftkv::server::checked_input& in, http::status status, const std::string& error)
{
    BOOST_TEST(!in.value.has_value());
    BOOST_TEST((in.status == status), static_cast<int>(in.status));
    BOOST_TEST(in.error == error);
}

} // namespace

// ---- Routing --------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(kv_route_takes_get_head_put_and_delete)
{
    for (http::verb v : {http::verb::get, http::verb::head, http::verb::put, http::verb::delete_})
        check_found(v, "/kv/key", route::kv);
    BOOST_TEST(match_route(http::verb::get, "/kv/a%20b").raw_key == "a%20b");
}

BOOST_AUTO_TEST_CASE(status_health_and_metrics_take_get_and_head)
{
    for (http::verb v : {http::verb::get, http::verb::head}) {
        check_found(v, "/status", route::status);
        check_found(v, "/health", route::health);
        check_found(v, "/health?timeout=2s", route::health);
        check_found(v, "/livez", route::livez);
        check_found(v, "/readyz", route::readyz);
        check_found(v, "/metrics", route::metrics);
    }
    for (http::verb v : {http::verb::put, http::verb::delete_, http::verb::post, http::verb::options}) {
        check_not_allowed(v, "/status", "GET, HEAD");
        check_not_allowed(v, "/health", "GET, HEAD");
        check_not_allowed(v, "/livez", "GET, HEAD");
        check_not_allowed(v, "/readyz", "GET, HEAD");
        check_not_allowed(v, "/metrics", "GET, HEAD");
    }
    BOOST_TEST((match_route(http::verb::get, "/livez/x").result == outcome::not_found));
    BOOST_TEST((match_route(http::verb::get, "/readyzz").result == outcome::not_found));
}

BOOST_AUTO_TEST_CASE(version_takes_get_and_head)
{
    check_found(http::verb::get, "/version", route::version);
    check_found(http::verb::get, "/version?x=1", route::version);
    check_found(http::verb::head, "/version", route::version);
    for (http::verb v : {http::verb::put, http::verb::delete_, http::verb::post})
        check_not_allowed(v, "/version", "GET, HEAD");
    for (const char* target : {"/version/", "/versions", "/Version", "/version/x"})
        BOOST_TEST((match_route(http::verb::get, target).result == outcome::not_found), target);
}

BOOST_AUTO_TEST_CASE(watch_takes_get_only_with_the_key_still_encoded)
{
    check_found(http::verb::get, "/watch/a%2Fb?prefix=true", route::watch);
    BOOST_TEST(match_route(http::verb::get, "/watch/a%2Fb?from=3").raw_key == "a%2Fb");
    BOOST_TEST(match_route(http::verb::get, "/watch/?prefix=true").raw_key == "");
    BOOST_TEST(match_route(http::verb::get, "/watch").raw_key == "");
    for (http::verb v : {http::verb::put, http::verb::delete_, http::verb::post, http::verb::head})
        check_not_allowed(v, "/watch/k", "GET");
    BOOST_TEST((match_route(http::verb::get, "/watchx").result == outcome::not_found));
}

BOOST_AUTO_TEST_CASE(wrong_method_on_kv_is_not_allowed_with_the_allowed_list)
{
    for (http::verb v : {http::verb::post, http::verb::patch, http::verb::options, http::verb::unknown})
        check_not_allowed(v, "/kv/key", "GET, HEAD, PUT, DELETE");
    // The method is checked before the key: a bad method on an empty key is still 405.
    check_not_allowed(http::verb::post, "/kv/", "GET, HEAD, PUT, DELETE");
}

BOOST_AUTO_TEST_CASE(unknown_routes_are_not_found)
{
    for (const char* target :
         {"/", "/kv2", "/kvx/a", "/KV/a", "/status/", "/statusx", "/health/x", "*", "http://host/kv/a", "",
          "/v1/kv/a", "/cluster", "/cluster/", "/cluster/members/4/demote", "/cluster/members/4/promote/x",
          "/cluster/leader/2", "/cluster/membersx"})
        BOOST_TEST((match_route(http::verb::get, target).result == outcome::not_found), target);
}

BOOST_AUTO_TEST_CASE(query_strings_are_ignored)
{
    check_found(http::verb::get, "/status?verbose=1", route::status);
    check_found(http::verb::get, "/health?", route::health);
    BOOST_TEST(match_route(http::verb::get, "/kv/a?b=c").raw_key == "a");
    BOOST_TEST(match_route(http::verb::get, "/kv/?b").raw_key == "");
}

BOOST_AUTO_TEST_CASE(the_key_is_everything_after_kv_slashes_included)
{
    BOOST_TEST(match_route(http::verb::get, "/kv/a/b/c").raw_key == "a/b/c");
    BOOST_TEST(match_route(http::verb::put, "/kv//").raw_key == "/");
    BOOST_TEST(match_route(http::verb::get, "/kv/").raw_key == "");
}

// ---- Keys -----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(percent_decoding_handles_both_cases_and_leaves_plus_alone)
{
    BOOST_TEST(percent_decode("a%20b").value() == "a b");
    BOOST_TEST(percent_decode("%2f%2F").value() == "//");
    BOOST_TEST(percent_decode("a+b").value() == "a+b");
    BOOST_TEST(percent_decode("%25").value() == "%");
    BOOST_TEST(percent_decode("%00").value() == std::string(1, '\0'));
    BOOST_TEST(percent_decode("%E2%9C%93").value() == "\xe2\x9c\x93");
    BOOST_TEST(percent_decode("").value() == "");
}

BOOST_AUTO_TEST_CASE(malformed_escapes_do_not_decode)
{
    for (const char* bad : {"%", "%2", "a%", "%zz", "%2g", "%g2", "%%", "abc%4"})
        BOOST_TEST(!percent_decode(bad).has_value(), bad);
}

BOOST_AUTO_TEST_CASE(keys_decode_to_their_bytes)
{
    BOOST_TEST(check_key("hello%20world").value.value() == "hello world");
    BOOST_TEST(check_key("a%2Fb").value.value() == "a/b");
    BOOST_TEST(check_key("%E2%9C%93").value.value() == "\xe2\x9c\x93");
    BOOST_TEST(check_key("\xe2\x9c\x93").value.value() == "\xe2\x9c\x93"); // unencoded UTF-8 too
    BOOST_TEST(check_key("a%00b").value.value() == std::string("a\0b", 3));
}

BOOST_AUTO_TEST_CASE(malformed_or_empty_keys_are_bad_requests)
{
    check_rejected(check_key("a%2"), http::status::bad_request, "malformed percent-encoding in the key");
    check_rejected(check_key("%zz"), http::status::bad_request, "malformed percent-encoding in the key");
    check_rejected(check_key(""), http::status::bad_request, "missing key");
}

BOOST_AUTO_TEST_CASE(keys_that_are_not_utf8_are_bad_requests)
{
    for (const char* bad : {"%FF", "%C0%AF", "%E2%9C", "%ED%A0%80", "%F4%90%80%80", "%80"})
        check_rejected(check_key(bad), http::status::bad_request, "the key is not valid UTF-8");
}

BOOST_AUTO_TEST_CASE(keys_up_to_1024_bytes_are_accepted_and_longer_are_too_large)
{
    BOOST_TEST(check_key(std::string(1024, 'k')).value.has_value());
    BOOST_TEST(check_key(std::string(1, 'k')).value.has_value());
    check_rejected(check_key(std::string(1025, 'k')), http::status::payload_too_large,
                   "key too long: 1025 bytes (the limit is 1024)");
    // The limit counts decoded bytes: 342 escapes are 342 bytes, not 1026 characters.
    std::string escaped;
    for (int i = 0; i < 342; ++i)
        escaped += "%41";
    BOOST_TEST(check_key(escaped).value.value() == std::string(342, 'A'));
    escaped.clear();
    for (int i = 0; i < 1025; ++i)
        escaped += "%41";
    check_rejected(check_key(escaped), http::status::payload_too_large,
                   "key too long: 1025 bytes (the limit is 1024)");
}

// ---- PUT bodies -----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(put_body_yields_its_string_value)
{
    BOOST_TEST(check_put_body(R"({"value": "bar"})").value.value() == "bar");
    BOOST_TEST(check_put_body(R"({"value": ""})").value.value() == "");
    BOOST_TEST(check_put_body(R"( {"other": 1, "value": "a\"b\u00e9\u0000"} )").value.value() ==
               std::string("a\"b\xc3\xa9\0", 6));
}

BOOST_AUTO_TEST_CASE(bad_put_bodies_are_bad_requests)
{
    const auto bad = http::status::bad_request;
    BOOST_TEST((check_put_body("").status == bad));
    BOOST_TEST(check_put_body("").error.starts_with("malformed JSON body: "));
    BOOST_TEST((check_put_body(R"({"value": "x")").status == bad));
    BOOST_TEST((check_put_body(R"({"value": "x"} trailing)").status == bad));
    BOOST_TEST((check_put_body("{'value': 'x'}").status == bad));
    BOOST_TEST((check_put_body("\"\xff\"").status == bad)); // invalid UTF-8 in JSON
    check_rejected(check_put_body(R"(["value"])"), bad,
                   "the body must be a JSON object: {\"value\": \"...\"}");
    check_rejected(check_put_body(R"("value")"), bad, "the body must be a JSON object: {\"value\": \"...\"}");
    check_rejected(check_put_body("null"), bad, "the body must be a JSON object: {\"value\": \"...\"}");
    check_rejected(check_put_body(R"({"val": "x"})"), bad, "missing \"value\" in the body");
    for (const char* wrong : {R"({"value": 1})", R"({"value": null})", R"({"value": ["x"]})",
                              R"({"value": {"a": "b"}})", R"({"value": true})"})
        check_rejected(check_put_body(wrong), bad, "\"value\" must be a string");
}

// A DOM parse would keep one of the two (Boost.JSON the last, other parsers the first): a
// proxy that checked one value and a server that stored the other must not be possible.
BOOST_AUTO_TEST_CASE(a_member_named_twice_is_a_bad_request)
{
    const auto bad = http::status::bad_request;
    check_rejected(check_put_body(R"({"value": "a", "value": "b"})"), bad,
                   "\"value\" appears twice in the body");
    // Names compare after unescaping, and any member counts, not only "value".
    check_rejected(check_put_body(R"({"value": "a", "\u0076alue": "b"})"), bad,
                   "\"value\" appears twice in the body");
    check_rejected(check_put_body(R"({"x": 1, "value": "a", "x": 2})"), bad,
                   "\"x\" appears twice in the body");
    const std::string long_name(100, 'n');
    check_rejected(check_put_body("{\"" + long_name + "\": 1, \"value\": \"a\", \"" + long_name + "\": 1}"),
                   bad, "a member name appears twice in the body");
    // Many members cost a set lookup each, not a scan of the others (ctest's timeout would end
    // a quadratic search here).
    std::string many = "{";
    for (int i = 0; i < 200000; ++i)
        many += "\"m" + std::to_string(i) + "\": 0, ";
    BOOST_TEST(check_put_body(many + R"("value": "v"})").value.value() == "v");
    check_rejected(check_put_body(many + R"("value": "v", "m7": 1})"), bad,
                   "\"m7\" appears twice in the body");
    // Names inside a nested value are that value's business, not the body's.
    BOOST_TEST(
        check_put_body(R"({"meta": {"a": 1, "b": [{"a": 2}, {"a": 3}]}, "value": "v"})").value.value() ==
        "v");
    BOOST_TEST(!raftkv::server::duplicate_member_error(R"({"a": {"b": 1, "b": 2}})", 1));
    BOOST_TEST(!raftkv::server::duplicate_member_error(R"([{"a": 1}, {"a": 2}])", 0));
    BOOST_TEST(!raftkv::server::duplicate_member_error(R"({"a": 1, "a": )", 1));
}

BOOST_AUTO_TEST_CASE(values_up_to_1_mib_are_accepted_and_longer_are_too_large)
{
    const std::string mib(std::size_t{1} << 20, 'v');
    BOOST_TEST(check_put_body(R"({"value": ")" + mib + "\"}").value.value().size() == mib.size());
    check_rejected(check_put_body(R"({"value": ")" + mib + "v\"}"), http::status::payload_too_large,
                   "value too large: 1048577 bytes (the limit is 1048576)");
}

// ---- Error responses ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(errors_are_json_with_a_retry_after_when_unavailable)
{
    const auto res = raftkv::server::error_response(http::status::not_found, "key not found");
    BOOST_TEST(res.result_int() == 404u);
    BOOST_TEST(res.body() == R"({"error":"key not found"})");
    BOOST_TEST(res[http::field::content_type] == "application/json");
    BOOST_TEST((res.find(http::field::retry_after) == res.end()));

    const auto busy = raftkv::server::error_response(http::status::service_unavailable, "no \"leader\"");
    BOOST_TEST(busy.body() == R"({"error":"no \"leader\""})");
    BOOST_TEST(busy[http::field::retry_after] == "1");
}

BOOST_AUTO_TEST_CASE(an_error_that_quotes_bytes_that_are_not_utf8_stays_valid_json)
{
    // A decoded query parameter (?consistency=%FF) is quoted back: JSON text must be UTF-8.
    using raftkv::server::check_consistency;
    const auto res = raftkv::server::error_response(http::status::bad_request,
                                                    check_consistency("/kv/k?consistency=%FFa%C0%80").error);
    BOOST_TEST(res.body() == "{\"error\":\"'consistency' must be linearizable, lease or stale, not "
                             "'\xEF\xBF\xBD"
                             "a\xEF\xBF\xBD\xEF\xBF\xBD'\"}");
    using raftkv::server::to_valid_utf8;
    BOOST_TEST(to_valid_utf8("caf\xC3\xA9") == "caf\xC3\xA9");
    BOOST_TEST(to_valid_utf8("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); // a surrogate
    BOOST_TEST(to_valid_utf8("ab\xE2\x82") == "ab\xEF\xBF\xBD\xEF\xBF\xBD");             // cut short
}

BOOST_AUTO_TEST_CASE(an_overloaded_leader_answers_503_saying_the_write_did_not_happen)
{
    using raftkv::server::request_kind;
    const auto res = raftkv::server::failure_response(raftkv::errc::overloaded, request_kind::write);
    BOOST_TEST(res.result_int() == 503u);
    BOOST_TEST(res[http::field::retry_after] == "1");
    BOOST_TEST(res.body() == R"({"error":"overloaded: the leader holds too many uncommitted writes; )"
                             R"(the write did not take effect; retry later"})");
}

BOOST_AUTO_TEST_CASE(leadership_lost_is_an_unknown_outcome_for_a_write_and_a_retry_for_a_read)
{
    using raftkv::server::request_kind;
    const auto write = raftkv::server::failure_response(raftkv::errc::leadership_lost, request_kind::write);
    BOOST_TEST(write.result_int() == 503u);
    BOOST_TEST(write[http::field::retry_after] == "1");
    BOOST_TEST(write.body() ==
               R"({"error":"leadership lost before the write was applied; the outcome is unknown"})");
    const auto read = raftkv::server::failure_response(raftkv::errc::leadership_lost, request_kind::read);
    BOOST_TEST(read.result_int() == 503u);
    BOOST_TEST(read.body() == R"({"error":"leadership lost; retry"})");
}

BOOST_AUTO_TEST_CASE(every_raftkv_failure_is_a_503_with_a_message_and_others_are_500)
{
    using raftkv::errc;
    using raftkv::server::request_kind;
    for (const errc e :
         {errc::timeout, errc::proposal_dropped, errc::transfer_in_progress, errc::shutting_down,
          errc::not_leader, errc::overloaded, errc::leadership_lost, errc::node_failed}) {
        const auto res = raftkv::server::failure_response(e, request_kind::write);
        BOOST_TEST(res.result_int() == 503u, static_cast<int>(e));
        BOOST_TEST(res.body().find("\"error\":\"") != std::string::npos, res.body());
    }
    const auto odd = raftkv::server::failure_response(errc::storage_inconsistent, request_kind::read);
    BOOST_TEST(odd.result_int() == 500u);
    BOOST_TEST(odd.body().starts_with(R"({"error":"internal error","error_id":")"), odd.body());
}

BOOST_AUTO_TEST_CASE(an_internal_error_names_an_error_id_and_nothing_else)
{
    const auto res = raftkv::server::internal_error_response("7f3a9c21");
    BOOST_TEST(res.result_int() == 500u);
    BOOST_TEST(res[http::field::content_type] == "application/json");
    BOOST_TEST(res.body() == R"({"error":"internal error","error_id":"7f3a9c21"})");

    // What failed stays in the log: the answer carries no error text, only a fresh id.
    const auto odd = raftkv::server::failure_response(raftkv::errc::storage_inconsistent,
                                                      raftkv::server::request_kind::write);
    const std::string message = std::error_code(raftkv::errc::storage_inconsistent).message();
    BOOST_TEST(odd.body().find(message) == std::string::npos, odd.body());
    const auto again = raftkv::server::failure_response(raftkv::errc::storage_inconsistent,
                                                        raftkv::server::request_kind::write);
    BOOST_TEST(odd.body() != again.body());
    const std::string id = raftkv::server::new_error_id();
    BOOST_TEST(id.size() == 8u);
    BOOST_TEST(id.find_first_not_of("0123456789abcdef") == std::string::npos, id);
}

BOOST_AUTO_TEST_CASE(a_storage_failure_is_a_503_naming_it_and_saying_whether_a_write_took_effect)
{
    using raftkv::server::request_kind;
    using raftkv::server::storage_failure_response;
    raftkv::server::storage_status failed;
    failed.error = "cannot apply entries 7 to 7: IO error: 000003.log: No space left on device";
    failed.since_steady = std::chrono::steady_clock::now();
    failed.retrying = true;
    const auto before = failed.since_steady - std::chrono::milliseconds(1);
    const auto after = failed.since_steady + std::chrono::milliseconds(1);

    const auto in_flight = storage_failure_response(failed, request_kind::write, before);
    BOOST_TEST(in_flight.result_int() == 503u);
    BOOST_TEST(in_flight[http::field::retry_after] == "1");
    BOOST_TEST(
        in_flight.body() ==
        R"({"error":"storage failure: cannot apply entries 7 to 7: IO error: 000003.log: No space left )"
        R"(on device; this node is not serving until its storage recovers (the write was in progress: )"
        R"x(its outcome is unknown)"})x");
    const auto refused = storage_failure_response(failed, request_kind::write, after);
    BOOST_TEST(refused.body().find("(the write did not take effect)") != std::string::npos, refused.body());
    const auto read = storage_failure_response(failed, request_kind::read, before);
    BOOST_TEST(read.body().find("write") == std::string::npos, read.body());

    failed.retrying = false;
    const auto stuck = storage_failure_response(failed, request_kind::read, after);
    BOOST_TEST(stuck.body().find("until it is repaired and restarted") != std::string::npos, stuck.body());

    // Recovered meanwhile: still the outcome of a failure, without its details.
    const auto recovered = storage_failure_response({}, request_kind::write, before);
    BOOST_TEST(recovered.result_int() == 503u);
    BOOST_TEST(recovered.body().find("outcome is unknown") != std::string::npos, recovered.body());
}

BOOST_AUTO_TEST_CASE(status_reports_the_storage_state)
{
    namespace json = boost::json;
    BOOST_TEST(json::serialize(raftkv::server::storage_json({})) == R"({"state":"ok"})");
    raftkv::server::storage_status failed;
    failed.error = "No space left on device";
    failed.since = std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000123));
    failed.retrying = true;
    BOOST_TEST(
        json::serialize(raftkv::server::storage_json(failed)) ==
        R"({"state":"failed","error":"No space left on device","since":1700000000123,"retrying":true})");
}

// ---- Membership routes ----------------------------------------------------------------

using raftkv::server::check_leader_body;
using raftkv::server::check_member_body;
using raftkv::server::check_member_id;
using raftkv::server::check_member_update_body;

BOOST_AUTO_TEST_CASE(cluster_routes_take_their_methods_and_the_member_id_from_the_path)
{
    check_found(http::verb::get, "/cluster/members", route::members);
    check_found(http::verb::post, "/cluster/members", route::members);
    check_found(http::verb::delete_, "/cluster/members/4", route::member);
    check_found(http::verb::patch, "/cluster/members/4", route::member);
    check_found(http::verb::post, "/cluster/members/4/promote", route::promote);
    check_found(http::verb::post, "/cluster/leader?wait=1", route::leader);
    check_found(http::verb::get, "/cluster/status", route::cluster_status);
    check_found(http::verb::head, "/cluster/status", route::cluster_status);
    check_found(http::verb::head, "/cluster/members", route::members);
    check_not_allowed(http::verb::post, "/cluster/status", "GET, HEAD");
    BOOST_TEST(match_route(http::verb::delete_, "/cluster/members/42").raw_id == "42");
    BOOST_TEST(match_route(http::verb::post, "/cluster/members/7/promote").raw_id == "7");
    BOOST_TEST(match_route(http::verb::delete_, "/cluster/members/").raw_id == "");

    for (http::verb v : {http::verb::put, http::verb::delete_, http::verb::patch})
        check_not_allowed(v, "/cluster/members", "GET, HEAD, POST");
    for (http::verb v : {http::verb::get, http::verb::put, http::verb::post})
        check_not_allowed(v, "/cluster/members/4", "PATCH, DELETE");
    for (http::verb v : {http::verb::get, http::verb::delete_})
        check_not_allowed(v, "/cluster/members/4/promote", "POST");
    for (http::verb v : {http::verb::get, http::verb::put})
        check_not_allowed(v, "/cluster/leader", "POST");
}

BOOST_AUTO_TEST_CASE(member_ids_in_the_path_are_1_to_2_64_minus_1)
{
    BOOST_TEST(check_member_id("4").value.value() == 4u);
    BOOST_TEST(check_member_id("18446744073709551615").value.value() == 18446744073709551615u);
    for (const char* bad : {"", "0", "-1", "abc", "4a", "18446744073709551616", "1.5", "%34"}) {
        const auto r = check_member_id(bad);
        BOOST_TEST(!r.value.has_value(), bad);
        BOOST_TEST((r.status == http::status::bad_request), bad);
    }
}

BOOST_AUTO_TEST_CASE(a_member_body_yields_its_id_addresses_and_kind)
{
    const auto r =
        check_member_body(R"({"id": 4, "raft": "127.0.0.1:9084", "http": "[::1]:8084", "learner": true})");
    BOOST_REQUIRE(r.value.has_value());
    BOOST_TEST(r.value->id == 4u);
    BOOST_TEST(r.value->raft.to_string() == "127.0.0.1:9084");
    BOOST_TEST(r.value->http.value().to_string() == "[::1]:8084");
    BOOST_TEST(r.value->learner);

    // "http" and "learner" are optional; a new member is a voter unless it says otherwise.
    const auto v = check_member_body(R"({"raft": "node5:9080", "id": 18446744073709551615})");
    BOOST_REQUIRE(v.value.has_value());
    BOOST_TEST(v.value->id == 18446744073709551615u);
    BOOST_TEST(!v.value->http.has_value());
    BOOST_TEST(!v.value->learner);
}

BOOST_AUTO_TEST_CASE(bad_member_bodies_are_bad_requests_that_say_why)
{
    const auto bad = http::status::bad_request;
    const auto rejected = [&](std::string_view body, std::string_view why) {
        const auto r = check_member_body(body);
        BOOST_TEST(!r.value.has_value(), body);
        BOOST_TEST((r.status == bad), body);
        BOOST_TEST(r.error.find(why) != std::string::npos, r.error);
    };
    rejected("", "malformed JSON body");
    rejected(R"({"id": 4, "raft": "a:1")", "malformed JSON body");
    rejected(R"([4, "a:1"])", "must be a JSON object");
    rejected(R"({"raft": "a:1"})", "missing \"id\"");
    rejected(R"({"id": 4})", "missing \"raft\"");
    for (const char* id : {"0", "-4", "4.5", "1e3", "\"4\"", "null", "true", "18446744073709551616"})
        rejected(std::string(R"({"raft": "a:1", "id": )") + id + "}", "\"id\" must be an integer from 1 to");
    for (const char* raft : {"\"a\"", "\"a:0\"", "\"a:65536\"", "\":80\"", "9084", "null", "[]"})
        rejected(std::string(R"({"id": 4, "raft": )") + raft + "}", "\"raft\" must be a string");
    rejected(R"({"id": 4, "raft": "a:1", "http": "nope"})", "\"http\" must be a string");
    rejected(R"({"id": 4, "raft": "a:1", "learner": "yes"})", "\"learner\" must be true or false");
    rejected(R"({"id": 4, "raft": "a:1", "lerner": true})", "unknown member \"lerner\"");
    rejected(R"({"id": 4, "raft": "a:1", "id": 5})", "\"id\" appears twice in the body");
    rejected(R"({"id": 4, "raft": "0.0.0.0:9084"})", "\"raft\": 0.0.0.0:9084 is a wildcard address");
    rejected(R"({"id": 4, "raft": "a:1", "http": "[::]:8084"})", "\"http\": [::]:8084 is a wildcard address");
}

BOOST_AUTO_TEST_CASE(an_update_body_gives_one_address_or_both)
{
    const auto both = check_member_update_body(R"({"http": "[::1]:8084", "raft": "node4:9084"})");
    BOOST_REQUIRE(both.value.has_value());
    BOOST_TEST(both.value->raft.value().to_string() == "node4:9084");
    BOOST_TEST(both.value->http.value().to_string() == "[::1]:8084");
    const auto raft = check_member_update_body(R"({"raft": "node4:9084"})");
    BOOST_REQUIRE(raft.value.has_value());
    BOOST_TEST(!raft.value->http.has_value());
    const auto rejected = [&](std::string_view body, std::string_view why) {
        const auto r = check_member_update_body(body);
        BOOST_TEST(!r.value.has_value(), body);
        BOOST_TEST((r.status == http::status::bad_request), body);
        BOOST_TEST(r.error.find(why) != std::string::npos, r.error);
    };
    rejected("", "malformed JSON body");
    rejected("[]", "must be a JSON object");
    rejected("{}", "nothing to change");
    rejected(R"({"id": 4, "raft": "a:1"})", "unknown member \"id\"");
    rejected(R"({"raft": "a:0"})", "\"raft\" must be a string");
    rejected(R"({"http": null})", "\"http\" must be a string");
    rejected(R"({"raft": "a:1", "raft": "b:1"})", "\"raft\" appears twice");
    rejected(R"({"raft": "0.0.0.0:9084"})", "\"raft\": 0.0.0.0:9084 is a wildcard address");
    rejected(R"({"raft": "a:1", "http": "[::]:8084"})", "\"http\": [::]:8084 is a wildcard address");
}

BOOST_AUTO_TEST_CASE(a_leader_body_names_one_node)
{
    BOOST_TEST(check_leader_body(R"({"id": 2})").value.value() == 2u);
    for (const char* bad :
         {"", "{}", R"({"id": 0})", R"({"id": "2"})", R"({"id": 2, "force": true})", "[2]"}) {
        const auto r = check_leader_body(bad);
        BOOST_TEST(!r.value.has_value(), bad);
        BOOST_TEST((r.status == http::status::bad_request), bad);
    }
}

BOOST_AUTO_TEST_CASE(a_change_in_progress_or_a_learner_behind_is_409_and_an_invalid_change_400)
{
    using raftkv::errc;
    using raftkv::server::membership_failure_response;
    const auto busy = membership_failure_response(errc::change_in_progress);
    BOOST_TEST(busy.result_int() == 409u);
    BOOST_TEST(busy.body().find("a membership change is in progress") != std::string::npos, busy.body());
    const auto behind = membership_failure_response(errc::learner_behind, 4, 1234);
    BOOST_TEST(behind.result_int() == 409u);
    BOOST_TEST(
        behind.body() ==
        R"({"error":"learner 4 has not caught up: it is 1234 entries behind the leader; retry once it has"})");
    BOOST_TEST(membership_failure_response(errc::invalid_argument).result_int() == 400u);
    for (const errc e : {errc::timeout, errc::leadership_lost, errc::proposal_dropped,
                         errc::transfer_in_progress, errc::shutting_down}) {
        const auto res = membership_failure_response(e);
        BOOST_TEST(res.result_int() == 503u, static_cast<int>(e));
        BOOST_TEST(res[http::field::retry_after] == "1");
    }
    BOOST_TEST(membership_failure_response(errc::storage_inconsistent).result_int() == 500u);
}

// A change that would stall the cluster: the answer names who does not answer and what to do.
BOOST_AUTO_TEST_CASE(a_change_that_puts_the_quorum_at_risk_is_409_naming_the_silent_voters)
{
    using raftkv::server::quorum_at_risk_response;
    const auto one = quorum_at_risk_response({1, 4}, {1, 2, 3});
    BOOST_TEST(one.result_int() == 409u);
    BOOST_TEST(
        one.body() ==
        R"({"error":"refused: voters 1,4 would remain, and node 4 does not answer the leader (down, cut off )"
        R"(or never started), so 1 of them could not make the quorum of 2 and the cluster would stall. )"
        R"(Bring it back or remove it first; to add a node, add it as a learner and promote it once it )"
        R"(has caught up"})");
    const auto two = quorum_at_risk_response({1, 2, 3, 4, 5}, {1, 2});
    BOOST_TEST(two.body().find("nodes 3,4,5 do not answer") != std::string::npos, two.body());
    BOOST_TEST(two.body().find("so 2 of them could not make the quorum of 3") != std::string::npos,
               two.body());
    BOOST_TEST(raftkv::server::membership_failure_response(raftkv::errc::quorum_at_risk).result_int() ==
               409u);
}

BOOST_AUTO_TEST_CASE(the_member_list_names_roles_addresses_and_match_only_where_known)
{
    using raftkv::server::member_role;
    raftkv::server::service_status s;
    s.cluster_id = 0xabcde;
    s.node.id = 3;
    s.node.leader = 1;
    s.node.members_index = 12;
    s.node.commit_index = 11;
    s.node.members = raftkv::membership{{1, 3}, {1, 2}, {4}};
    s.members = {{1, "h:1", "h:8001", member_role::voter, 0x9c41f0d2a7e35b18},
                 {2, "h:2", std::nullopt, member_role::outgoing, std::nullopt},
                 {3, "h:3", std::nullopt, member_role::voter, std::nullopt},
                 {4, "h:4", "h:8004", member_role::learner, std::nullopt}};
    const std::string body = raftkv::server::members_json(s, {{1, 20}, {4, 18}});
    BOOST_TEST(body == R"({"id":3,"cluster_id":"00000000000abcde","members":[)"
                       R"({"id":1,"raft":"h:1","http":"h:8001","role":"voter","match":20,)"
                       R"("incarnation":"9c41f0d2a7e35b18"},)"
                       R"({"id":2,"raft":"h:2","http":null,"role":"outgoing"},)"
                       R"({"id":3,"raft":"h:3","http":null,"role":"voter"},)"
                       R"({"id":4,"raft":"h:4","http":"h:8004","role":"learner","match":18}],)"
                       R"("members_index":12,"members_committed":false,"joint":true,"leader":1})");
    s.node.leader = raftkv::no_node;
    s.node.commit_index = 12;
    BOOST_TEST(raftkv::server::members_json(s, {}).ends_with(
        R"("members_committed":true,"joint":true,"leader":null})"));
}

// ---- Member info ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(member_info_is_compact_json_with_the_addresses)
{
    using raftkv::server::decode_member_info;
    using raftkv::server::encode_member_info;
    using raftkv::server::host_port;
    BOOST_TEST(encode_member_info({"127.0.0.1", 9081}) == R"({"raft":"127.0.0.1:9081"})");
    BOOST_TEST(encode_member_info({"::1", 9081}, host_port{"node1", 8081}) ==
               R"({"raft":"[::1]:9081","http":"node1:8081"})");
    const auto m = decode_member_info(encode_member_info({"::1", 9081}, host_port{"node1", 8081}));
    BOOST_TEST((m.raft == host_port{"::1", 9081}));
    BOOST_TEST((m.http == host_port{"node1", 8081}));
    BOOST_TEST(m.added == 0u);
    // A member added with POST /cluster/members carries the tag drawn then.
    const std::string tagged = encode_member_info({"::1", 9081}, std::nullopt, 0x6a0c1f9e22d4b871);
    BOOST_TEST(tagged == R"({"raft":"[::1]:9081","added":"0x6a0c1f9e22d4b871"})");
    BOOST_TEST(decode_member_info(tagged).added == 0x6a0c1f9e22d4b871u);
    BOOST_TEST(decode_member_info(R"({"raft":"[::1]:9081","added":"bad"})").added == 0u);
    // One added back also names the data directory its id had before.
    const std::string back = encode_member_info({"::1", 9081}, std::nullopt, 0x11, 0x6a0c1f9e22d4b871);
    BOOST_TEST(back ==
               R"({"raft":"[::1]:9081","added":"0x0000000000000011","replaces":"0x6a0c1f9e22d4b871"})");
    BOOST_TEST(decode_member_info(back).replaces == 0x6a0c1f9e22d4b871u);
    BOOST_TEST(decode_member_info(back).added == 0x11u);
    BOOST_TEST(decode_member_info(tagged).replaces == 0u);
}

BOOST_AUTO_TEST_CASE(bad_member_info_means_unknown_addresses_never_a_crash)
{
    using raftkv::server::decode_member_info;
    for (const char* bad : {"", "x", "[]", "null", "{", R"({"raft": 9081})", R"({"raft": "nope"})",
                            R"({"raft": "a:0"})", "\xff\xfe", R"({"http": ["a:1"]})"}) {
        const auto m = decode_member_info(bad);
        BOOST_TEST(!m.raft.has_value(), bad);
        BOOST_TEST(!m.http.has_value(), bad);
    }
    // One good field survives a bad one.
    const auto half = decode_member_info(R"({"raft": "a:1", "http": 7, "extra": {}})");
    BOOST_TEST(half.raft.has_value());
    BOOST_TEST(!half.http.has_value());
}

// ---- Authorization --------------------------------------------------------------------

namespace {

using raftkv::server::access;
using raftkv::server::authorization_refusal;
using raftkv::server::authorizer;
using raftkv::server::http_request;

const std::string write_token = "w-0123456789abcdef";
const std::string read_token = "r-0123456789abcdef";

const authorizer& tokens()
{
    static const authorizer a{{{write_token, access::write, "ops"}, {read_token, access::read, "dashboard"}}};
    return a;
}

http_request request(http::verb method, std::string_view target, std::string_view token)
{
    http_request req{method, target, 11};
    if (!token.empty())
        req.set(http::field::authorization, "Bearer " + std::string(token));
    return req;
}

// The status `auth` answers, 0 when the request may proceed.
unsigned refusal_status(http::verb method, std::string_view target, std::string_view token)
{
    const http_request req = request(method, target, token);
    const auto res = authorization_refusal(tokens(), req, match_route(method, target));
    return res ? res->result_int() : 0;
}

} // namespace

BOOST_AUTO_TEST_CASE(health_needs_no_token_and_every_other_route_one)
{
    BOOST_TEST(refusal_status(http::verb::get, "/health", "") == 0u);
    BOOST_TEST(refusal_status(http::verb::get, "/health?x", "bogus") == 0u);
    BOOST_TEST(refusal_status(http::verb::get, "/livez", "") == 0u);
    BOOST_TEST(refusal_status(http::verb::get, "/readyz", "bogus") == 0u);
    BOOST_TEST(refusal_status(http::verb::post, "/readyz", "") == 0u); // answered 405
    for (const auto& [method, target] :
         std::vector<std::pair<http::verb, std::string>>{{http::verb::get, "/kv/a"},
                                                         {http::verb::put, "/kv/a"},
                                                         {http::verb::delete_, "/kv/a"},
                                                         {http::verb::get, "/status"},
                                                         {http::verb::get, "/cluster/members"},
                                                         {http::verb::post, "/cluster/members"},
                                                         {http::verb::delete_, "/cluster/members/2"},
                                                         {http::verb::post, "/cluster/members/2/promote"},
                                                         {http::verb::post, "/cluster/leader"},
                                                         {http::verb::get, "/cluster/status"},
                                                         {http::verb::get, "/nowhere"},
                                                         {http::verb::post, "/kv/a"}}) {
        BOOST_TEST(refusal_status(method, target, "") == 401u, target);
        BOOST_TEST(refusal_status(method, target, "not-a-known-token-x") == 401u, target);
        BOOST_TEST(refusal_status(method, target, write_token) == 0u, target);
    }
}

// The page's files hold no data; the requests it makes for data need a token as any other.
BOOST_AUTO_TEST_CASE(the_cluster_page_needs_no_token)
{
    BOOST_TEST(refusal_status(http::verb::get, "/ui", "") == 0u);
    BOOST_TEST(refusal_status(http::verb::head, "/ui/app.js", "") == 0u);
    BOOST_TEST(refusal_status(http::verb::get, "/ui/nothing-here", "bogus") == 0u);
    BOOST_TEST(refusal_status(http::verb::get, "/uix", "") == 401u);
}

BOOST_AUTO_TEST_CASE(a_401_says_bearer_and_why)
{
    const http_request none = request(http::verb::get, "/kv/a", "");
    const auto missing = authorization_refusal(tokens(), none, match_route(http::verb::get, "/kv/a"));
    BOOST_TEST_REQUIRE(missing.has_value());
    BOOST_TEST((*missing)[http::field::www_authenticate] == R"(Bearer realm="raftkv")");
    BOOST_TEST(missing->body().find("missing bearer token") != std::string::npos, missing->body());
    BOOST_TEST((*missing)[http::field::content_type] == "application/json");

    http_request basic = request(http::verb::get, "/kv/a", "");
    basic.set(http::field::authorization, "Basic " + write_token);
    const auto wrong = authorization_refusal(tokens(), basic, match_route(http::verb::get, "/kv/a"));
    BOOST_TEST_REQUIRE(wrong.has_value());
    BOOST_TEST(wrong->result_int() == 401u);
    BOOST_TEST((*wrong)[http::field::www_authenticate] == R"(Bearer realm="raftkv", error="invalid_token")");
    BOOST_TEST(wrong->body().find(write_token) == std::string::npos, "the answer shows the token");

    // Two Authorization headers are refused, even if one holds a good token.
    http_request twice = request(http::verb::get, "/kv/a", write_token);
    twice.insert(http::field::authorization, "Bearer " + read_token);
    const auto both = authorization_refusal(tokens(), twice, match_route(http::verb::get, "/kv/a"));
    BOOST_TEST_REQUIRE(both.has_value());
    BOOST_TEST(both->result_int() == 401u);
}

BOOST_AUTO_TEST_CASE(a_read_token_reads_and_is_forbidden_every_change)
{
    for (const char* target : {"/kv/a", "/status", "/cluster/members"})
        BOOST_TEST(refusal_status(http::verb::get, target, read_token) == 0u, target);
    BOOST_TEST(refusal_status(http::verb::head, "/kv/a", read_token) == 0u);
    // An unknown route or method is no change: 404 and 405 follow as without tokens.
    BOOST_TEST(refusal_status(http::verb::get, "/nowhere", read_token) == 0u);
    BOOST_TEST(refusal_status(http::verb::post, "/kv/a", read_token) == 0u);
    for (const auto& [method, target] :
         std::vector<std::pair<http::verb, std::string>>{{http::verb::put, "/kv/a"},
                                                         {http::verb::delete_, "/kv/a"},
                                                         {http::verb::post, "/cluster/members"},
                                                         {http::verb::delete_, "/cluster/members/2"},
                                                         {http::verb::post, "/cluster/members/2/promote"},
                                                         {http::verb::post, "/cluster/leader"}})
        BOOST_TEST(refusal_status(method, target, read_token) == 403u, target);

    const http_request put = request(http::verb::put, "/kv/a", read_token);
    const auto res = authorization_refusal(tokens(), put, match_route(http::verb::put, "/kv/a"));
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST(res->body() == R"({"error":"token 'dashboard' may only read; PUT needs a write token"})");
    BOOST_TEST((*res)[http::field::www_authenticate] ==
               R"(Bearer realm="raftkv", error="insufficient_scope")");
}

// ---- Framing --------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(http11_needs_one_host_and_only_chunked_transfer_encoding_is_read)
{
    using raftkv::server::framing_refusal;
    http_request ok{http::verb::get, "/kv/a", 11};
    ok.set(http::field::host, "x");
    BOOST_TEST(!framing_refusal(ok).has_value());
    BOOST_TEST(!framing_refusal(http_request{http::verb::get, "/kv/a", 10}).has_value()); // HTTP/1.0

    const auto no_host = framing_refusal(http_request{http::verb::get, "/kv/a", 11});
    BOOST_TEST_REQUIRE(no_host.has_value());
    BOOST_TEST(no_host->result_int() == 400u);
    BOOST_TEST(no_host->body().find("missing Host header") != std::string::npos, no_host->body());

    http_request two = ok;
    two.insert(http::field::host, "y");
    BOOST_TEST(framing_refusal(two).value().result_int() == 400u);

    http_request chunked = ok;
    chunked.set(http::field::transfer_encoding, "Chunked");
    BOOST_TEST(!framing_refusal(chunked).has_value());
    for (const char* coding : {"gzip", "gzip, chunked", "identity"}) {
        http_request other = ok;
        other.set(http::field::transfer_encoding, coding);
        const auto res = framing_refusal(other);
        BOOST_TEST_REQUIRE(res.has_value(), coding);
        BOOST_TEST(res->body().find("unsupported Transfer-Encoding") != std::string::npos, coding);
    }
}

// ---- Scans (GET /kv) ------------------------------------------------------------------

namespace {

using raftkv::server::check_scan_query;
using raftkv::server::checked_scan_query;

void check_scan_rejected(std::string_view target, const std::string& error)
{
    const checked_scan_query q = check_scan_query(target);
    BOOST_TEST(!q.value.has_value(), target);
    BOOST_TEST((q.status == http::status::bad_request), target);
    BOOST_TEST(q.error == error, target);
}

} // namespace

BOOST_AUTO_TEST_CASE(kv_without_a_key_is_the_scan_route_and_takes_get_and_head)
{
    check_found(http::verb::get, "/kv", route::scan);
    check_found(http::verb::get, "/kv?prefix=a&limit=3", route::scan);
    check_found(http::verb::head, "/kv", route::scan);
    for (http::verb v : {http::verb::put, http::verb::delete_, http::verb::post})
        check_not_allowed(v, "/kv", "GET, HEAD");
    // A trailing slash is still the key route, with an empty key (400 there).
    check_found(http::verb::get, "/kv/", route::kv);
}

BOOST_AUTO_TEST_CASE(scan_query_defaults_when_absent_or_empty)
{
    for (const char* target : {"/kv", "/kv?", "/kv?&&"}) {
        const checked_scan_query q = check_scan_query(target);
        BOOST_TEST_REQUIRE(q.value.has_value(), target);
        BOOST_TEST(q.value->prefix == "");
        BOOST_TEST(q.value->after == "");
        BOOST_TEST(q.value->limit == raftkv::server::default_scan_limit);
        BOOST_TEST(!q.value->keys_only);
    }
}

BOOST_AUTO_TEST_CASE(scan_query_decodes_every_parameter)
{
    const checked_scan_query q =
        check_scan_query("/kv?prefix=a%2Fb%20c+&after=a%2Fb%20c%C3%A9&limit=1000&keys_only=true");
    BOOST_TEST_REQUIRE(q.value.has_value(), q.error);
    BOOST_TEST(q.value->prefix == "a/b c+");
    BOOST_TEST(q.value->after == "a/b c\xc3\xa9");
    BOOST_TEST(q.value->limit == 1000u);
    BOOST_TEST(q.value->keys_only);
    BOOST_TEST(!check_scan_query("/kv?keys_only=false").value->keys_only);
    BOOST_TEST(check_scan_query("/kv?limit=1").value->limit == 1u);
    BOOST_TEST(check_scan_query("/kv?prefix=").value->prefix == "");
}

BOOST_AUTO_TEST_CASE(scan_query_rejects_bad_parameters_with_a_clear_message)
{
    const std::string bad_limit = "'limit' must be a whole number from 1 to 1000";
    for (const char* target : {"/kv?limit=0", "/kv?limit=1001", "/kv?limit=-1", "/kv?limit=", "/kv?limit=ten",
                               "/kv?limit=1e3", "/kv?limit=99999999999999999999", "/kv?limit= 5"})
        check_scan_rejected(target, bad_limit);
    check_scan_rejected("/kv?keys_only=1", "'keys_only' must be true or false");
    check_scan_rejected("/kv?keys_only", "'keys_only' must be true or false");
    check_scan_rejected("/kv?limit=5&limit=6", "parameter 'limit' given more than once");
    check_scan_rejected(
        "/kv?start=a",
        "unknown parameter 'start' (GET /kv takes prefix, after, limit, keys_only and consistency)");
    check_scan_rejected("/kv?prefix=%zz", "malformed percent-encoding in 'prefix'");
    check_scan_rejected("/kv?after=%ff", "'after' is not valid UTF-8");
    check_scan_rejected("/kv?prefix=" + std::string(1025, 'a'),
                        "'prefix' too long: 1025 bytes (the limit is 1024)");
}

BOOST_AUTO_TEST_CASE(the_consistency_parameter_names_a_read_mode_or_is_refused)
{
    using raftkv::server::check_consistency;
    using raftkv::server::read_consistency;
    BOOST_TEST((check_consistency("/kv/k").value == read_consistency::linearizable));
    BOOST_TEST((check_consistency("/kv/k?consistency=linearizable").value == read_consistency::linearizable));
    BOOST_TEST((check_consistency("/kv/k?consistency=lease").value == read_consistency::lease));
    // A misspelt parameter is refused, not ignored: it would read linearizably, quietly.
    BOOST_TEST(check_consistency("/kv/k?consitency=stale").error ==
               "unknown parameter 'consitency' (GET /kv/{key} takes consistency)");
    BOOST_TEST(!check_consistency("/kv/k?x=1&consistency=lease").value.has_value());
    BOOST_TEST((check_consistency("/kv/k?consistency=stale").value == read_consistency::stale));
    for (const char* target : {"/kv/k?consistency=", "/kv/k?consistency", "/kv/k?consistency=Stale",
                               "/kv/k?consistency=stale&consistency=stale"}) {
        const auto c = check_consistency(target);
        BOOST_TEST(!c.value.has_value(), target);
        BOOST_TEST((c.status == boost::beast::http::status::bad_request));
    }
    BOOST_TEST(check_consistency("/kv/k?consistency=eventual").error ==
               "'consistency' must be linearizable, lease or stale, not 'eventual'");
    BOOST_TEST((check_scan_query("/kv?consistency=stale").value->consistency == read_consistency::stale));
    check_scan_rejected("/kv?consistency=fast",
                        "'consistency' must be linearizable, lease or stale, not 'fast'");
}

BOOST_AUTO_TEST_CASE(every_query_parameter_is_percent_decoded_name_and_value)
{
    using raftkv::server::check_consistency;
    using raftkv::server::read_consistency;
    using raftkv::server::unknown_parameter;
    BOOST_TEST((check_consistency("/kv/k?consistency=st%61le").value == read_consistency::stale));
    BOOST_TEST((check_consistency("/kv/k?c%6Fnsistency=lease").value == read_consistency::lease));
    BOOST_TEST(check_consistency("/kv/k?consistency=%zz").error ==
               "malformed percent-encoding in 'consistency'");
    BOOST_TEST(check_consistency("/kv/k?%G0=1").error == "malformed percent-encoding in '%G0'");
    const checked_scan_query q = check_scan_query("/kv?l%69mit=%31%30&keys_only=tru%65&consistency=le%61se");
    BOOST_TEST_REQUIRE(q.value.has_value(), q.error);
    BOOST_TEST(q.value->limit == 10u);
    BOOST_TEST(q.value->keys_only);
    BOOST_TEST((q.value->consistency == read_consistency::lease));
    check_scan_rejected("/kv?limit=%", "malformed percent-encoding in 'limit'");
    // Decoded, '+' stays '+' and '%26' is a '&' inside a value, not a separator.
    BOOST_TEST(check_scan_query("/kv?prefix=a%26b+c").value->prefix == "a&b+c");
    BOOST_TEST(unknown_parameter("/kv/k?x%3D1", "PUT /kv/{key}", {}, "").value_or("") ==
               "unknown parameter 'x=1' (PUT /kv/{key} takes none)");
    BOOST_TEST(unknown_parameter("/kv/k?a=%", "PUT /kv/{key}", {}, "").value_or("") ==
               "malformed percent-encoding in 'a'");
}

BOOST_AUTO_TEST_CASE(routes_refuse_query_parameters_they_do_not_take)
{
    using raftkv::server::unknown_parameter;
    BOOST_TEST(!unknown_parameter("/kv/k", "PUT /kv/{key}", {}, "").has_value());
    BOOST_TEST(!unknown_parameter("/kv/k?", "PUT /kv/{key}", {}, "").has_value());
    BOOST_TEST(!unknown_parameter("/kv/k?&&", "PUT /kv/{key}", {}, "").has_value());
    BOOST_TEST(unknown_parameter("/kv/k?ttl=10", "PUT /kv/{key}", {}, "").value_or("") ==
               "unknown parameter 'ttl' (PUT /kv/{key} takes none)");
    BOOST_TEST(!unknown_parameter("/health?timeout=2s", "GET /health", {"timeout"}, "timeout").has_value());
    BOOST_TEST(unknown_parameter("/health?timeout=2s&timout=1", "GET /health", {"timeout"}, "timeout")
                   .value_or("") == "unknown parameter 'timout' (GET /health takes timeout)");
    const std::string long_name(100, 'n');
    BOOST_TEST(unknown_parameter("/kv/k?" + long_name, "DELETE /kv/{key}", {}, "").value_or("") ==
               "unknown parameter '" + long_name.substr(0, 64) + "' (DELETE /kv/{key} takes none)");
}

BOOST_AUTO_TEST_CASE(a_failed_storage_is_checked_at_doubling_intervals_up_to_a_minute)
{
    using raftkv::server::next_storage_probe_interval;
    using raftkv::server::storage_probe_first_interval;
    using raftkv::server::storage_probe_max_interval;
    using std::chrono::seconds;
    BOOST_TEST(storage_probe_first_interval.count() == 2);
    BOOST_TEST(storage_probe_max_interval.count() == 60);
    std::vector<long> waits;
    seconds wait = storage_probe_first_interval;
    for (int i = 0; i < 8; ++i) {
        waits.push_back(static_cast<long>(wait.count()));
        wait = next_storage_probe_interval(wait);
    }
    BOOST_TEST(waits == (std::vector<long>{2, 4, 8, 16, 32, 60, 60, 60}), boost::test_tools::per_element());
    BOOST_TEST(next_storage_probe_interval(seconds(0)).count() == 2);
    BOOST_TEST(next_storage_probe_interval(seconds(45)).count() == 60);
    BOOST_TEST(next_storage_probe_interval(seconds(3600)).count() == 60);
    BOOST_TEST(raftkv::server::storage_recovery_free_bytes == std::uint64_t{80} << 20);
}

BOOST_AUTO_TEST_CASE(preconditions_come_from_if_match_and_if_none_match)
{
    using raftkv::server::check_precondition;
    namespace http = boost::beast::http;
    using views = std::vector<std::string_view>;
    const auto version_of = [](const raftkv::server::checked_precondition& c) {
        return c.value && c.value->expect_version ? *c.value->expect_version : ~std::uint64_t{0};
    };
    BOOST_TEST(check_precondition(http::verb::put, {}, {}).value.value().empty());
    BOOST_TEST(version_of(check_precondition(http::verb::put, views{"\"7\""}, {})) == 7u);
    BOOST_TEST(version_of(check_precondition(http::verb::delete_, views{" 7 "}, {})) == 7u);
    BOOST_TEST(version_of(check_precondition(http::verb::put, views{"0"}, {})) == 0u);
    BOOST_TEST(version_of(check_precondition(http::verb::put, views{"18446744073709551615"}, {})) ==
               18446744073709551615ull);
    BOOST_TEST(check_precondition(http::verb::put, {}, views{"*"}).value.value().expect_absent);
    for (const auto& [match, none_match, method] : std::vector<std::tuple<views, views, http::verb>>{
             {views{"*"}, {}, http::verb::put},
             {views{"W/\"7\""}, {}, http::verb::put},
             {views{"\"7\", \"8\""}, {}, http::verb::put},
             {views{"\"7"}, {}, http::verb::put},
             {views{""}, {}, http::verb::put},
             {views{"+7"}, {}, http::verb::put},
             {views{"18446744073709551616"}, {}, http::verb::put},
             {views{"7", "7"}, {}, http::verb::put},
             {views{"7"}, views{"*"}, http::verb::put},
             {{}, views{"\"7\""}, http::verb::put},
             {{}, views{"*", "*"}, http::verb::put},
             {{}, views{"*"}, http::verb::delete_},
         }) {
        const auto c = check_precondition(method, match, none_match);
        BOOST_TEST(!c.value.has_value());
        BOOST_TEST((c.status == http::status::bad_request));
        BOOST_TEST(!c.error.empty());
    }
}

BOOST_AUTO_TEST_CASE(a_read_condition_comes_from_if_match_and_a_list_in_if_none_match)
{
    using raftkv::server::check_read_condition;
    using raftkv::server::read_condition;
    using views = std::vector<std::string_view>;
    using outcome = read_condition::outcome;
    const auto none_match = [](views fields) {
        const auto c = check_read_condition({}, fields);
        BOOST_TEST_REQUIRE(c.value.has_value(), c.error);
        return c.value->none_match;
    };
    using versions = std::vector<std::uint64_t>;

    const read_condition none = check_read_condition({}, {}).value.value();
    BOOST_TEST(!none.match.has_value());
    BOOST_TEST(!none.none_match_any);
    BOOST_TEST(none.none_match.empty());
    BOOST_TEST((none.evaluate(true, 7) == outcome::serve));
    BOOST_TEST((none.evaluate(false, 0) == outcome::serve));

    // If-Match: the forms a PUT takes.
    BOOST_TEST(check_read_condition(views{"\"7\""}, {}).value.value().match.value() == 7u);
    BOOST_TEST(check_read_condition(views{" 7 "}, {}).value.value().match.value() == 7u);

    // If-None-Match: quoted, weak, bare, several fields, empty elements; a tag that is not
    // a version is kept out (it matches nothing).
    BOOST_TEST(none_match(views{"\"7\""}) == versions{7}, boost::test_tools::per_element());
    BOOST_TEST(none_match(views{"W/\"7\", \"9\" ,12"}) == (versions{7, 9, 12}),
               boost::test_tools::per_element());
    BOOST_TEST(none_match(views{"\"7\"", "\"8\""}) == (versions{7, 8}), boost::test_tools::per_element());
    BOOST_TEST(none_match(views{", \"7\",,"}) == versions{7}, boost::test_tools::per_element());
    BOOST_TEST(none_match(views{"\"abc\", \"x,y\", \"\"", "W/\"18446744073709551616\""}).empty());
    BOOST_TEST(check_read_condition({}, views{"*"}).value.value().none_match_any);

    for (const auto& [match, none] : std::vector<std::pair<views, views>>{
             {views{"*"}, {}},
             {views{"W/\"7\""}, {}},
             {views{"\"7\", \"8\""}, {}},
             {views{"7", "7"}, {}},
             {{}, views{"\"7"}},
             {{}, views{"7\""}},
             {{}, views{"\"7\" \"8\""}},
             {{}, views{"W/7"}},
             {{}, views{"abc"}},
             {{}, views{"**"}},
             {{}, views{"\"a b\""}},
         }) {
        const auto c = check_read_condition(match, none);
        BOOST_TEST(!c.value.has_value());
        BOOST_TEST((c.status == http::status::bad_request));
        BOOST_TEST(!c.error.empty());
    }

    // Evaluation: If-Match first (412), then If-None-Match (304 for a key that exists at a
    // listed version, or at any with *). An absent key is never "not modified".
    read_condition c;
    c.match = 7;
    BOOST_TEST((c.evaluate(true, 7) == outcome::serve));
    BOOST_TEST((c.evaluate(true, 8) == outcome::precondition_failed));
    BOOST_TEST((c.evaluate(false, 0) == outcome::precondition_failed));
    c.none_match = {7};
    BOOST_TEST((c.evaluate(true, 7) == outcome::not_modified));
    BOOST_TEST((c.evaluate(true, 8) == outcome::precondition_failed));
    c.match.reset();
    BOOST_TEST((c.evaluate(true, 8) == outcome::serve));
    BOOST_TEST((c.evaluate(false, 0) == outcome::serve));
    c.none_match.clear();
    c.none_match_any = true;
    BOOST_TEST((c.evaluate(true, 8) == outcome::not_modified));
    BOOST_TEST((c.evaluate(false, 0) == outcome::serve));
}

BOOST_AUTO_TEST_CASE(a_client_session_comes_from_both_session_headers_or_neither)
{
    using raftkv::server::check_session;
    namespace http = boost::beast::http;
    using views = std::vector<std::string_view>;
    const auto none = check_session({}, {});
    BOOST_TEST(!none.value.has_value());
    BOOST_TEST(none.error.empty());
    const auto s = check_session(views{" 42 "}, views{"18446744073709551615"});
    BOOST_TEST_REQUIRE(s.value.has_value());
    BOOST_TEST(s.value->client == 42u);
    BOOST_TEST(s.value->sequence == 18446744073709551615ull);
    BOOST_TEST(s.value->expiry_entries == raftkv::kv_session_default_expiry);
    BOOST_TEST(s.value->max_sessions == raftkv::kv_session_default_max_sessions);
    for (const auto& [client, sequence, why] : std::vector<std::tuple<views, views, std::string>>{
             {views{"1"}, {}, "Raftkv-Client-Id needs Raftkv-Sequence"},
             {{}, views{"1"}, "Raftkv-Sequence needs Raftkv-Client-Id"},
             {views{"1", "1"}, views{"1"}, "more than one Raftkv-Client-Id"},
             {views{"1"}, views{"1", "2"}, "more than one Raftkv-Sequence"},
             {views{"0"}, views{"1"}, "Raftkv-Client-Id must be"},
             {views{"abc"}, views{"1"}, "Raftkv-Client-Id must be"},
             {views{"18446744073709551616"}, views{"1"}, "Raftkv-Client-Id must be"},
             {views{"1"}, views{"0"}, "Raftkv-Sequence must be"},
             {views{"1"}, views{"-1"}, "Raftkv-Sequence must be"},
             {views{"1"}, views{""}, "Raftkv-Sequence must be"},
         }) {
        const auto c = check_session(client, sequence);
        BOOST_TEST(!c.value.has_value());
        BOOST_TEST((c.status == http::status::bad_request));
        BOOST_TEST(c.error.find(why) != std::string::npos, c.error);
    }
}
