#include "log.hpp"

#define BOOST_TEST_MODULE server_log
#include <boost/test/unit_test.hpp>

#include <raftkv/log.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono;
using namespace std::chrono_literals;
using raftkv::server::format_log_line;
using raftkv::server::log_event;
using raftkv::server::log_format;
using raftkv::server::log_level;

const system_clock::time_point example_time = sys_days{year{2026} / 12 / 3} + 14h + 5min + 9s + 123ms + 456us;

std::string line_of(log_format format, const log_event& e)
{
    std::string out;
    format_log_line(format, e, out);
    return out;
}

log_event event(std::string_view message, raftkv::node_id node = 1, raftkv::term_t term = 3)
{
    return {example_time, log_level::info, node, term, message};
}

/// The line as a JSON object; fails the test if it is not one object followed by a newline.
boost::json::object parse_line(const std::string& line)
{
    BOOST_TEST_REQUIRE(line.ends_with('\n'), line);
    BOOST_TEST_REQUIRE(line.find('\n') == line.size() - 1, "not one line: " << line);
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(std::string_view(line).substr(0, line.size() - 1), ec);
    BOOST_TEST_REQUIRE(!ec, ec.message() << ": " << line);
    BOOST_TEST_REQUIRE(v.is_object(), line);
    return v.as_object();
}

std::string msg_of(const std::string& line)
{
    return std::string(parse_line(line).at("msg").as_string());
}

/// Captures what this process writes to stderr (file descriptor 2) while alive.
class captured_stderr {
public:
    captured_stderr()
        : path_(std::filesystem::temp_directory_path() / ("raftkv-log-test-" + std::to_string(::getpid())))
    {
        std::fflush(stderr);
        saved_ = ::dup(2);
        const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        BOOST_TEST_REQUIRE(fd >= 0);
        ::dup2(fd, 2);
        ::close(fd);
    }
    ~captured_stderr()
    {
        restore();
        std::filesystem::remove(path_);
    }
    /// Puts stderr back and returns what was written meanwhile.
    std::string text()
    {
        restore();
        std::ifstream in(path_);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }

private:
    void restore()
    {
        if (saved_ < 0)
            return;
        std::fflush(stderr);
        ::dup2(saved_, 2);
        ::close(saved_);
        saved_ = -1;
    }

    std::filesystem::path path_;
    int saved_ = -1;
};

} // namespace

BOOST_AUTO_TEST_SUITE(text)

BOOST_AUTO_TEST_CASE(a_text_line_has_time_level_node_term_and_message)
{
    BOOST_TEST(line_of(log_format::text, event("became leader (term 3)")) ==
               "2026-12-03T14:05:09.123Z info node=1 term=3 became leader (term 3)\n");
}

BOOST_AUTO_TEST_CASE(the_timestamp_is_rfc3339_utc_with_milliseconds)
{
    const std::regex shape(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z warn node=7 term=0 x\n$)");
    log_event now = event("x", 7, 0);
    now.time = system_clock::now();
    now.level = log_level::warn;
    const std::string line = line_of(log_format::text, now);
    BOOST_TEST(std::regex_match(line, shape), line);

    log_event early = event("x");
    early.time = sys_days{year{2001} / 2 / 9} + 3h + 4min + 5s + 7ms + 999us; // truncated, not rounded
    BOOST_TEST(line_of(log_format::text, early).starts_with("2001-02-09T03:04:05.007Z "));
}

BOOST_AUTO_TEST_CASE(every_level_is_named_as_log_level_spells_it)
{
    for (const auto& [level, name] :
         {std::pair{log_level::error, "error"}, std::pair{log_level::warn, "warn"},
          std::pair{log_level::info, "info"}, std::pair{log_level::debug, "debug"}}) {
        log_event e = event("m");
        e.level = level;
        BOOST_TEST(line_of(log_format::text, e) ==
                   std::string("2026-12-03T14:05:09.123Z ") + name + " node=1 term=3 m\n");
        BOOST_TEST(raftkv::server::parse_log_level(name).has_value());
    }
}

BOOST_AUTO_TEST_CASE(a_text_line_stays_one_line_whatever_the_message_holds)
{
    BOOST_TEST(line_of(log_format::text, event("a\nb\r\tc\x1b[31md \"q\" \\")) ==
               "2026-12-03T14:05:09.123Z info node=1 term=3 a\\nb\\r\\tc\\u001b[31md \"q\" \\\n");
}

BOOST_AUTO_TEST_CASE(a_text_line_before_the_node_id_is_known_names_none)
{
    BOOST_TEST(line_of(log_format::text, event("m", raftkv::no_node, 0)) ==
               "2026-12-03T14:05:09.123Z info term=0 m\n");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(json)

BOOST_AUTO_TEST_CASE(a_json_line_is_one_object_with_ts_level_node_term_msg)
{
    const std::string line = line_of(log_format::json, event("became leader"));
    BOOST_TEST(line ==
               R"({"ts":"2026-12-03T14:05:09.123Z","level":"info","node":1,"term":3,"msg":"became leader"})"
               "\n");
    const boost::json::object o = parse_line(line);
    BOOST_TEST(o.size() == 5u);
    BOOST_TEST(o.at("node").as_int64() == 1);
    BOOST_TEST(o.at("term").as_int64() == 3);
}

BOOST_AUTO_TEST_CASE(quotes_backslashes_and_control_characters_are_escaped)
{
    const std::string message = "say \"hi\"\\ to\nnode 2\r\t\x01\x1f\x7f end";
    BOOST_TEST(msg_of(line_of(log_format::json, event(message))) == message);
}

BOOST_AUTO_TEST_CASE(valid_utf8_is_kept_and_invalid_bytes_become_replacement_characters)
{
    const std::string valid = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
    BOOST_TEST(msg_of(line_of(log_format::json, event(valid))) == valid);

    const std::string fffd = "\xef\xbf\xbd";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"a\xff"
         "b",
         "a" + fffd + "b"},                              // never valid
        {"\xe2\x82", fffd + fffd},                       // truncated at the end
        {"\xe2\x82z", fffd + fffd + "z"},                // truncated inside
        {"\xc0\xaf", fffd + fffd},                       // overlong '/'
        {"\xe0\x80\xaf", fffd + fffd + fffd},            // overlong, 3 bytes
        {"\xed\xa0\x80", fffd + fffd + fffd},            // a UTF-16 surrogate
        {"\xf4\x90\x80\x80", fffd + fffd + fffd + fffd}, // above U+10FFFF
        {"\x80", fffd},                                  // a lone continuation byte
        {std::string("nul\0byte", 8), std::string("nul\0byte", 8)},
    };
    for (const auto& [in, out] : cases) {
        const std::string line = line_of(log_format::json, event(in));
        BOOST_TEST(msg_of(line) == out, line);
    }
}

BOOST_AUTO_TEST_CASE(a_json_line_before_the_node_id_is_known_has_a_null_node)
{
    const boost::json::object o = parse_line(line_of(log_format::json, event("m", raftkv::no_node, 0)));
    BOOST_TEST(o.at("node").is_null());
}

BOOST_AUTO_TEST_CASE(the_log_format_names_are_text_and_json)
{
    BOOST_TEST((raftkv::server::parse_log_format("text") == log_format::text));
    BOOST_TEST((raftkv::server::parse_log_format("json") == log_format::json));
    BOOST_TEST(!raftkv::server::parse_log_format("JSON").has_value());
    BOOST_TEST(!raftkv::server::parse_log_format("").has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(output)

BOOST_AUTO_TEST_CASE(server_and_library_lines_reach_stderr_in_the_chosen_format_and_level)
{
    using namespace raftkv::server;
    set_log_format(log_format::json);
    set_log_level(log_level::info);
    set_log_node(4);
    set_log_term(9);
    route_library_log();
    captured_stderr err;
    log(log_level::info, "from the server");
    log(log_level::debug, "filtered out");
    raftkv::log_message(raftkv::log_severity::warning, "from the \"transport\"");
    raftkv::log_message(raftkv::log_severity::debug, "filtered out too");
    const std::string text = err.text();
    raftkv::set_log_sink(nullptr);
    set_log_format(log_format::text);

    std::vector<boost::json::object> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        lines.push_back(parse_line(line + "\n"));
    BOOST_TEST_REQUIRE(lines.size() == 2u, text);
    BOOST_TEST(lines[0].at("msg").as_string() == "from the server");
    BOOST_TEST(lines[0].at("level").as_string() == "info");
    BOOST_TEST(lines[0].at("node").as_int64() == 4);
    BOOST_TEST(lines[0].at("term").as_int64() == 9);
    BOOST_TEST(lines[1].at("msg").as_string() == "from the \"transport\"");
    BOOST_TEST(lines[1].at("level").as_string() == "warn");
}

BOOST_AUTO_TEST_SUITE_END()
