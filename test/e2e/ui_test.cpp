// The cluster page (GET /ui) and GET /cluster/status against real raftkv-server processes:
// the gathered status with members up, paused and killed; tokens; and the page itself in
// headless Chromium (Debian's chromium package, driven with --dump-dom: no network and no
// npm), which must show three members and one leader, then the new leader and the old one
// unreachable after the leader is killed.
#define BOOST_TEST_MODULE raftkv_e2e_ui
#include <boost/test/unit_test.hpp>

#include "harness.hpp"
#include "three_nodes.hpp"

#include <boost/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace {

using namespace raftkv::e2e;
namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

json::object parse_object(const http_response& r)
{
    BOOST_TEST_REQUIRE(r.status == 200, describe(r));
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    BOOST_TEST_REQUIRE((!ec && v.is_object()), "not a JSON object: " << r.body);
    return std::move(v.as_object());
}

/// GET /cluster/status at `port`: the members by id.
std::map<std::uint64_t, json::object> cluster_status(std::uint16_t port, json::object* whole = nullptr)
{
    json::object body = parse_object(request(port, "GET", "/cluster/status"));
    std::map<std::uint64_t, json::object> members;
    for (const json::value& m : body.at("members").as_array())
        members[m.at("id").to_number<std::uint64_t>()] = m.as_object();
    if (whole)
        *whole = std::move(body);
    return members;
}

std::string error_of(const json::object& member)
{
    const json::value* e = member.if_contains("error");
    return e && e->is_string() ? std::string(e->get_string()) : std::string();
}

/// Waits until GET /cluster/status at `port` has every member's status: a member publishes
/// its HTTP address in the log once it follows a leader, and another node knows it once it
/// has applied that entry. The last answer's errors, empty once every status is there.
std::string wait_for_every_status(std::uint16_t port)
{
    std::string errors;
    wait_until(
        [&] {
            errors.clear();
            for (const auto& [id, m] : cluster_status(port))
                if (!m.contains("status"))
                    errors += "node " + std::to_string(id) + ": " + error_of(m) + "; ";
            return errors.empty();
        },
        10s);
    return errors;
}

// ---- Chromium ---------------------------------------------------------------------------

/// Headless Chromium loading `url` and letting the page run for `budget_ms` of virtual time,
/// in which the page polls about once a second. Virtual time stands still while a request
/// is in flight and jumps ahead between polls, so polls follow each other as fast as the
/// node answers.
class chromium_run {
public:
    chromium_run(const temp_dir& dir, const std::string& url, int budget_ms)
        : dir_(dir), out_(dir / ("dom-" + std::to_string(++runs_) + ".html"))
    {
        const std::filesystem::path chromium = RAFTKV_CHROMIUM;
        BOOST_TEST_REQUIRE(std::filesystem::exists(chromium),
                           "chromium not found at '"
                               << chromium.string()
                               << "': install it (scripts/install-deps.sh), configure again");
        process_.emplace(
            std::vector<std::string>{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                     "--disable-extensions",
                                     "--user-data-dir=" + (dir / "chromium-profile").string(),
                                     "--virtual-time-budget=" + std::to_string(budget_ms), "--dump-dom", url},
            process::options{
                .program = chromium, .stdout_file = out_, .stderr_file = dir / "chromium.log", .cwd = {}});
    }

    /// The DOM as the page left it at the end of its virtual time.
    std::string dom()
    {
        const std::optional<exit_status> status = process_->wait(60s);
        BOOST_TEST_REQUIRE(status.has_value(), "chromium did not finish within 60 s");
        BOOST_TEST_REQUIRE((status->exited && status->code == 0),
                           "chromium: " << *status << ": " << read_tail(dir_ / "chromium.log", 2000));
        std::ifstream in(out_);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }

private:
    static inline int runs_ = 0;
    const temp_dir& dir_;
    std::filesystem::path out_;
    std::optional<process> process_;
};

std::string dump_dom(const temp_dir& dir, const std::string& url, int budget_ms = 4000)
{
    chromium_run run(dir, url, budget_ms);
    return run.dom();
}

using attributes = std::map<std::string, std::string>;

attributes data_attributes(const std::string& tag)
{
    attributes a;
    static const std::regex attribute(R"re(data-([a-z-]+)="([^"]*)")re");
    for (auto it = std::sregex_iterator(tag.begin(), tag.end(), attribute); it != std::sregex_iterator();
         ++it)
        a[(*it)[1]] = (*it)[2];
    return a;
}

/// What the page shows: the body's data attributes, and each member row's by node id.
struct shown {
    attributes page;
    std::map<std::uint64_t, attributes> members;
    std::string summary;
    std::string dom;
};

shown read_page(const std::string& dom)
{
    shown s;
    s.dom = dom;
    std::smatch m;
    if (std::regex_search(dom, m, std::regex("<body([^>]*)>")))
        s.page = data_attributes(m[1]);
    if (std::regex_search(dom, m, std::regex(R"re(<span id="summary">([^<]*)<)re")))
        s.summary = m[1];
    static const std::regex row(R"re(<tr( data-id="[^>]*)>)re");
    for (auto it = std::sregex_iterator(dom.begin(), dom.end(), row); it != std::sregex_iterator(); ++it) {
        attributes a = data_attributes((*it)[1]);
        s.members[std::stoull(a["id"])] = a;
    }
    return s;
}

std::string page_url(std::uint16_t port)
{
    return "http://127.0.0.1:" + std::to_string(port) + "/ui";
}

} // namespace

BOOST_AUTO_TEST_CASE(cluster_status_gathers_every_member_and_says_which_do_not_answer)
{
    three_nodes f;
    const std::uint64_t follower = f.followers()[0], other = f.followers()[1];
    const std::uint16_t port = f.c.http_port(follower);
    BOOST_TEST_REQUIRE(put(port, "k", "v").status == 200);
    BOOST_TEST_REQUIRE(wait_for_every_status(port).empty());

    // Any member answers for all: each one's own /status, and the leader's match indexes.
    json::object whole;
    auto members = cluster_status(port, &whole);
    BOOST_TEST(whole.at("id").to_number<std::uint64_t>() == follower);
    BOOST_TEST(whole.at("leader").to_number<std::uint64_t>() == f.leader);
    BOOST_TEST_REQUIRE(members.size() == 3u);
    for (auto& [id, m] : members) {
        BOOST_TEST(m.at("reachable").as_bool(), "node " << id << ": " << error_of(m));
        BOOST_TEST_REQUIRE(m.contains("status"), "node " << id << ": " << error_of(m));
        const json::object& s = m.at("status").as_object();
        BOOST_TEST(s.at("id").to_number<std::uint64_t>() == id);
        BOOST_TEST(std::string(s.at("role").as_string()) == (id == f.leader ? "leader" : "follower"));
        BOOST_TEST(s.at("commit_index").to_number<std::uint64_t>() >= 1u);
        BOOST_TEST(m.contains("match"), "node " << id << ": no match index");
        BOOST_TEST(std::string(m.at("http").as_string()) == f.c.spec(id).http_address());
    }

    // A paused member accepts the connection and never answers: it is reported within the
    // timeout, not waited for.
    f.c.signal(other, SIGSTOP);
    const auto start = clock_type::now();
    members = cluster_status(port);
    const auto took = clock_type::now() - start;
    f.c.signal(other, SIGCONT);
    BOOST_TEST(std::chrono::duration_cast<milliseconds>(took).count() < 1500);
    BOOST_TEST(!members.at(other).at("reachable").as_bool());
    BOOST_TEST(error_of(members.at(other)).find("timed out") != std::string::npos,
               error_of(members.at(other)));
    BOOST_TEST(members.at(f.leader).at("reachable").as_bool());

    // A dead leader is unreachable, and the answer names the new one.
    f.c.kill9(f.leader);
    const std::optional<std::uint64_t> next = f.c.wait_for_leader(10s);
    BOOST_TEST_REQUIRE(next.has_value());
    members = cluster_status(port, &whole);
    BOOST_TEST(whole.at("leader").to_number<std::uint64_t>() == *next);
    BOOST_TEST(!members.at(f.leader).at("reachable").as_bool());
    BOOST_TEST(error_of(members.at(f.leader)).find("cannot connect") != std::string::npos,
               error_of(members.at(f.leader)));
    BOOST_TEST(std::string(members.at(*next).at("status").at("role").as_string()) == "leader");
}

BOOST_AUTO_TEST_CASE(the_page_is_served_with_its_etag_to_get_and_head)
{
    cluster c(1);
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    const std::uint16_t port = c.http_port(1);
    const http_response page = request(port, "GET", "/ui");
    BOOST_TEST_REQUIRE(page.status == 200, describe(page));
    BOOST_TEST(page.headers.at("content-type") == "text/html; charset=utf-8");
    BOOST_TEST(page.body.find("/ui/app.js") != std::string::npos);
    const std::string etag = page.headers.at("etag");
    const http_response again = request(port, "GET", "/ui", {}, header_list{{"If-None-Match", etag}});
    BOOST_TEST(again.status == 304, describe(again));
    BOOST_TEST(again.body.empty());

    // HEAD: the GET's Content-Length, and nothing after the header.
    const raw_result head = send_raw(port, "HEAD /ui HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 2s);
    BOOST_TEST(head.received.starts_with("HTTP/1.1 200"), head.received);
    BOOST_TEST(head.received.find("Content-Length: " + std::to_string(page.body.size()) + "\r\n") !=
                   std::string::npos,
               head.received);
    BOOST_TEST(head.received.ends_with("\r\n\r\n"), head.received);
}

BOOST_AUTO_TEST_CASE(with_tokens_the_page_is_open_and_its_data_needs_a_token)
{
    temp_dir files;
    const std::string read_token = "dash-9a7c3e5b1d2f4068a3c7";
    std::ofstream(files / "tokens") << read_token << " read dashboard\n"
                                    << "ops-5f0c1b9e2d7a4c38b6e1 write ops\n";
    set_bearer_token(read_token);
    struct unset {
        ~unset() { set_bearer_token(""); }
    } unset_token;
    three_nodes f({"--auth-tokens", (files / "tokens").string()});
    const std::uint16_t port = f.c.http_port(f.followers()[0]);
    const header_list none{{"Authorization", ""}};

    BOOST_TEST(request(port, "GET", "/ui", {}, none).status == 200);
    BOOST_TEST(request(port, "GET", "/ui/app.js", {}, none).status == 200);
    BOOST_TEST(request(port, "GET", "/cluster/status", {}, none).status == 401);
    // The token goes along to every member, which checks it as its own /status does.
    const std::string errors = wait_for_every_status(port);
    BOOST_TEST(errors.empty(), errors);
}

BOOST_AUTO_TEST_CASE(the_page_shows_the_members_and_follows_a_leader_change)
{
    three_nodes f;
    const std::uint64_t follower = f.followers()[0];
    const std::uint16_t port = f.c.http_port(follower);
    for (int k = 0; k < 20; ++k)
        BOOST_TEST_REQUIRE(put(port, "key" + std::to_string(k), "v").status == 200);
    BOOST_TEST_REQUIRE(wait_for_every_status(port).empty());

    shown s = read_page(dump_dom(f.c.dir(), page_url(port)));
    BOOST_TEST_REQUIRE(s.page["state"] == "ok", "the page did not load its data: " << s.dom.substr(0, 3000));
    BOOST_TEST(std::stoi(s.page["polls"]) >= 2);
    // On a loaded machine an election may happen while the page loads: then the page shows
    // the leader the nodes agree on afterwards.
    const std::optional<std::uint64_t> after = f.c.wait_for_leader(10s);
    BOOST_TEST_REQUIRE(after.has_value());
    BOOST_TEST((s.page["leader"] == std::to_string(f.leader) || s.page["leader"] == std::to_string(*after)),
               s.summary);
    f.leader = *after;
    BOOST_TEST_REQUIRE(s.members.size() == 3u, s.dom.substr(0, 3000));
    // The page names the cluster, and every member is in it.
    const std::string cluster =
        parse_json(request(port, "GET", "/cluster/members").body).string("cluster_id").value_or("?");
    BOOST_TEST(s.page["cluster"] == cluster);
    BOOST_TEST(s.summary.find("of cluster " + cluster) != std::string::npos, s.summary);
    BOOST_TEST(s.summary.find("another cluster") == std::string::npos, s.summary);
    std::set<std::string> terms;
    for (auto& [id, m] : s.members) {
        BOOST_TEST(m["reachable"] == "true", "node " << id);
        BOOST_TEST(m["cluster"] == cluster, "node " << id);
        BOOST_TEST(m["role"] == (id == f.leader ? "leader" : "follower"), "node " << id);
        BOOST_TEST(std::stoull(m["commit"]) >= 20u, "node " << id);
        BOOST_TEST(std::stoull(m["applied"]) >= 20u, "node " << id);
        // Each member's state size, as its /status gives it, and its storage's health.
        BOOST_TEST((!m["state-bytes"].empty() &&
                    m["state-bytes"].find_first_not_of("0123456789") == std::string::npos),
                   "node " << id << ": '" << m["state-bytes"] << "'");
        BOOST_TEST(m["storage"] == "ok", "node " << id);
        terms.insert(m["term"]);
    }
    BOOST_TEST(terms.size() == 1u);
    BOOST_TEST(std::stoull(*terms.begin()) >= 1u);
    BOOST_TEST(s.summary.find("leader node " + s.page["leader"]) != std::string::npos, s.summary);
    // Without /metrics the page says so; with it, it reads them.
    const bool metrics = request(port, "GET", "/metrics").status == 200;
    BOOST_TEST((s.page["metrics"] == "ok") == metrics, s.page["metrics"]);
    if (!metrics)
        BOOST_TEST(s.dom.find("no metrics") != std::string::npos);

    f.c.kill9(f.leader);
    const std::optional<std::uint64_t> next = f.c.wait_for_leader(10s);
    BOOST_TEST_REQUIRE(next.has_value());
    s = read_page(dump_dom(f.c.dir(), page_url(port)));
    BOOST_TEST_REQUIRE(s.page["state"] == "ok", s.dom.substr(0, 3000));
    const std::optional<std::uint64_t> last = f.c.wait_for_leader(10s);
    BOOST_TEST_REQUIRE(last.has_value());
    BOOST_TEST((s.page["leader"] == std::to_string(*next) || s.page["leader"] == std::to_string(*last)),
               s.summary);
    BOOST_TEST_REQUIRE(s.members.size() == 3u);
    BOOST_TEST(s.members[f.leader]["reachable"] == "false");
    BOOST_TEST(s.members[f.leader]["role"] == "unreachable");
    BOOST_TEST_REQUIRE(!s.page["leader"].empty(), s.summary);
    const std::uint64_t shown_leader = std::stoull(s.page["leader"]);
    BOOST_TEST(s.members[shown_leader]["role"] == "leader");
    BOOST_TEST(std::stoull(s.members[shown_leader]["term"]) > std::stoull(*terms.begin()));
    BOOST_TEST(s.summary.find("1 unreachable") != std::string::npos, s.summary);
}

// The page keeps what it showed while the node serving it is down, and says so.
BOOST_AUTO_TEST_CASE(the_page_shows_a_banner_when_its_node_stops_answering)
{
    cluster c(1, true, {"--log-level", "debug"});
    BOOST_TEST_REQUIRE(c.wait_healthy(1, 20s));
    // Twenty virtual minutes of polls take seconds: the node is killed once it has answered
    // the page's first poll, and the polls after that fail. A poll asks for /metrics once
    // it has read the whole answer of /cluster/status: killed sooner, the node could take
    // that answer with it, and the page would have had nothing to keep.
    chromium_run run(c.dir(), page_url(c.http_port(1)), 20 * 60 * 1000);
    BOOST_TEST_REQUIRE(wait_until(
        [&] { return read_tail(c.spec(1).log_file).find("GET /metrics -> 200") != std::string::npos; }, 30s,
        10ms));
    c.kill9(1);
    shown s = read_page(run.dom());
    BOOST_TEST(s.page["state"] == "down", s.dom.substr(0, 3000));
    std::smatch banner;
    BOOST_TEST_REQUIRE(
        std::regex_search(s.dom, banner, std::regex(R"re(<div id="banner"([^>]*)>([^<]*)<)re")));
    BOOST_TEST(std::string(banner[1]).find("hidden") == std::string::npos, banner[0]);
    BOOST_TEST(std::string(banner[2]).find("is not answering") != std::string::npos, banner[2]);
    BOOST_TEST(s.members.size() == 1u, "the last data shown is kept");
}

BOOST_AUTO_TEST_CASE(the_metrics_reader_passes_its_checks)
{
    temp_dir dir;
    const std::string dom = dump_dom(dir, "file://" RAFTKV_SOURCE_DIR "/test/ui/metrics_test.html", 1000);
    shown s = read_page(dom);
    BOOST_TEST(s.page["result"] == "pass", "failed: " << s.page["failures"]);
}
