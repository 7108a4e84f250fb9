// Fuzz target: raftkv-server's configuration (reference-server/config.hpp): the YAML text of
// a --config file, through parse_config_text(), and command-line flags, through
// parse_arguments().
//
// The input up to its first NUL byte is the config file's text; the rest, split at NUL
// bytes, is the argument list (any --config flag dropped, so that no file is read).
// Properties:
// - neither parser crashes, throws or hangs;
// - the result is an error, one line (main() prints it after "raftkv-server: "), or a
//   configuration that satisfies what the server relies on: an id that is not 0 and is
//   among the peers, election-ticks above heartbeat-ticks, ports that are not 0.

#include "check.hpp"

#include "config.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace raftkv::server;

void check_address(const host_port& a)
{
    FUZZ_CHECK(a.port != 0 && !a.host.empty());
    FUZZ_CHECK(parse_host_port(a.to_string()) == a);
}

void check_result(const parse_result& r)
{
    if (r.help)
        return;
    if (!r.ok()) {
        FUZZ_CHECK(r.error.find('\n') == std::string::npos);
        return;
    }
    const server_config& c = r.config;
    FUZZ_CHECK(c.id != raftkv::no_node);
    FUZZ_CHECK(c.peers.contains(c.id));
    FUZZ_CHECK(c.election_ticks > c.heartbeat_ticks);
    FUZZ_CHECK(c.tick_ms >= 1 && c.threads >= 1);
    check_address(c.http);
    check_address(c.advertise_http);
    check_address(c.raft);
    for (const auto& [id, address] : c.peers) {
        FUZZ_CHECK(id != raftkv::no_node);
        check_address(address);
    }
    if (c.join)
        check_address(*c.join);
    FUZZ_CHECK(advertise_http_problem(c).empty());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view input = raftkv::fuzz::as_chars(data, size);
    const std::size_t nul = input.find('\0');
    const std::string_view yaml = input.substr(0, nul);

    check_result(parse_config_text(yaml, "fuzz.yaml"));

    if (nul == std::string_view::npos)
        return 0;
    std::vector<std::string> args;
    std::string_view rest = input.substr(nul + 1);
    for (;;) {
        const std::size_t end = rest.find('\0');
        const std::string arg(rest.substr(0, end));
        if (arg != "--config" && !arg.starts_with("--config="))
            args.push_back(arg);
        if (end == std::string_view::npos)
            break;
        rest.remove_prefix(end + 1);
    }
    check_result(parse_arguments(args));
    return 0;
}
