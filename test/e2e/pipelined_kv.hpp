#ifndef RAFTKV_TEST_E2E_PIPELINED_KV_HPP
#define RAFTKV_TEST_E2E_PIPELINED_KV_HPP

// A test scenario: twenty PUTs, GETs and DELETEs on three keys, sent on one connection
// without waiting for the answers, then a request HTTP cannot parse. The server must answer
// them in order, each as if the requests before it on the connection had completed (it
// handles those on one key one after another), then answer 400 and close.

#include "harness.hpp"

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace raftkv::e2e {

struct pipelined_kv {
    struct step {
        std::string method, key, value;
    };

    /// Keys are `prefix` + "a", "b" or "c".
    explicit pipelined_kv(const std::string& prefix)
    {
        const std::string a = prefix + "a", b = prefix + "b", c = prefix + "c";
        steps = {{"GET", a, ""},    {"PUT", a, "1"}, {"GET", a, ""},    {"PUT", b, "2"}, {"PUT", a, "3"},
                 {"GET", b, ""},    {"GET", a, ""},  {"DELETE", a, ""}, {"GET", a, ""},  {"PUT", c, "4"},
                 {"DELETE", a, ""}, {"PUT", a, "5"}, {"GET", c, ""},    {"GET", a, ""},  {"PUT", b, "6"},
                 {"PUT", b, "7"},   {"GET", b, ""},  {"DELETE", c, ""}, {"GET", c, ""},  {"PUT", c, "8"}};
    }

    /// Every step's request, then one that cannot be parsed.
    std::string bytes() const
    {
        std::string out;
        for (const step& s : steps) {
            out += s.method + " " + kv_target(s.key) + " HTTP/1.1\r\nHost: x\r\n";
            if (s.method == "PUT") {
                const std::string body = value_body(s.value);
                out += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                       "\r\n\r\n" + body;
            } else {
                out += "\r\n";
            }
        }
        return out + "NOT-HTTP\r\n\r\n";
    }

    /// What is wrong with `responses`, one line per problem; empty if they are the answers
    /// to the steps in order (on keys that were absent before), then a 400.
    std::vector<std::string> check(const std::vector<http_response>& responses) const
    {
        std::vector<std::string> problems;
        std::map<std::string, std::string> kv;
        for (std::size_t i = 0; i < steps.size(); ++i) {
            const step& s = steps[i];
            const std::string what = "request " + std::to_string(i + 1) + " (" + s.method + " " + s.key + ")";
            if (i >= responses.size()) {
                problems.push_back(what + ": no response");
                continue;
            }
            const http_response& r = responses[i];
            const bool present = kv.count(s.key) != 0;
            int status = 200;
            std::string value;
            if (s.method == "PUT") {
                kv[s.key] = value = s.value;
            } else if (s.method == "GET") {
                status = present ? 200 : 404;
                value = present ? kv[s.key] : "";
            } else {
                status = present ? 200 : 404;
                kv.erase(s.key);
            }
            const json_body body = parse_json(r.body);
            const bool ok = status == 404 ? is_error(r, 404)
                                          : r.status == 200 && body.string("key").value_or("") == s.key &&
                                                body.string("value").value_or("") == value;
            if (!ok)
                problems.push_back(what + ": expected " + std::to_string(status) +
                                   (value.empty() ? "" : " with value " + value) + ", got " + describe(r));
        }
        if (responses.size() != steps.size() + 1 || !is_error(responses.back(), 400))
            problems.push_back("expected " + std::to_string(steps.size()) + " answers and a 400, got " +
                               std::to_string(responses.size()) + " responses" +
                               (responses.empty() ? "" : ", the last " + describe(responses.back())));
        return problems;
    }

    std::vector<step> steps;
};

} // namespace raftkv::e2e

#endif
