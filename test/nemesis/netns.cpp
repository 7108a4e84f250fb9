#include "netns.hpp"

#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <system_error>

namespace raftkv::nemesis {

namespace {

using namespace std::chrono_literals;

std::filesystem::path find_program(const std::string& name)
{
    for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) {
        std::error_code ec;
        const auto p = std::filesystem::path(dir) / name;
        if (std::filesystem::exists(p, ec))
            return p;
    }
    return {};
}

/// Runs `program args...` to completion (10 s at most), its output appended to `log`.
bool run_program(const std::filesystem::path& program, const std::vector<std::string>& args,
                 const std::filesystem::path& log)
{
    e2e::process p(args, {.program = program, .stdout_file = log, .stderr_file = {}, .cwd = {}});
    const auto st = p.wait(10s);
    return st && st->exited && st->code == 0;
}

constexpr const char* name_prefix = "rkv";

/// Deletes the namespaces of test processes that no longer run (named rkv<pid>...).
void sweep_stale(const std::filesystem::path& ip, const std::filesystem::path& log)
{
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
        const std::string name = e.path().filename().string();
        if (!name.starts_with(name_prefix))
            continue;
        std::size_t end = 3;
        while (end < name.size() && name[end] >= '0' && name[end] <= '9')
            ++end;
        if (end == 3)
            continue;
        const std::string pid = name.substr(3, end - 3);
        if (std::filesystem::exists("/proc/" + pid, ec))
            continue;
        run_program(ip, {"netns", "del", name}, log);
    }
}

} // namespace

std::optional<std::string> netns_lab::unusable()
{
    if (::geteuid() != 0)
        return "not running as root";
    const auto ip = find_program("ip"), nft = find_program("nft");
    if (ip.empty())
        return "no `ip` (iproute2) found";
    if (nft.empty())
        return "no `nft` (nftables) found";
    const std::string probe = std::string(name_prefix) + std::to_string(::getpid()) + "probe";
    if (!run_program(ip, {"netns", "add", probe}, "/dev/null"))
        return "`ip netns add` failed (no CAP_SYS_ADMIN?)";
    const bool filter =
        run_program(ip, {"netns", "exec", probe, nft.string(), "add", "table", "inet", "probe"}, "/dev/null");
    run_program(ip, {"netns", "del", probe}, "/dev/null");
    if (!filter)
        return "`nft` fails inside a namespace (no CAP_NET_ADMIN, or no nf_tables in the kernel?)";
    return std::nullopt;
}

netns_lab::netns_lab(std::size_t nodes)
    : nodes_(nodes), log_(dir_ / "commands.log"), prefix_(name_prefix + std::to_string(::getpid())),
      subnet_(1 + static_cast<int>(::getpid() % 250))
{
    sweep_stale(find_program("ip"), log_);
    try {
        const std::string hub = prefix_ + "h";
        must({"netns", "add", hub});
        created_.push_back(hub);
        must({"netns", "exec", hub, "ip", "link", "set", "lo", "up"});
        must({"netns", "exec", hub, "ip", "link", "add", "br0", "type", "bridge"});
        must({"netns", "exec", hub, "ip", "link", "set", "br0", "up"});
        // The test process's way in: the host end keeps 10.231.K.254, the other end joins
        // the bridge (and vanishes with the hub).
        const std::string host_end = prefix_ + "t", hub_end = prefix_ + "u";
        run({"link", "del", host_end}); // a previous round's, if the kernel has not freed it yet
        must({"link", "add", host_end, "type", "veth", "peer", "name", hub_end});
        host_link_ = host_end;
        must({"link", "set", hub_end, "netns", hub});
        must({"netns", "exec", hub, "ip", "link", "set", hub_end, "master", "br0", "up"});
        must({"addr", "add", "10.231." + std::to_string(subnet_) + ".254/24", "dev", host_end});
        must({"link", "set", host_end, "up"});
        for (std::uint64_t id = 1; id <= nodes_; ++id) {
            const std::string name = ns(id), outer = prefix_ + "n" + std::to_string(id);
            must({"netns", "add", name});
            created_.push_back(name);
            must({"link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", name});
            must({"link", "set", outer, "netns", hub});
            must({"netns", "exec", hub, "ip", "link", "set", outer, "master", "br0", "up"});
            must({"netns", "exec", name, "ip", "link", "set", "lo", "up"});
            must({"netns", "exec", name, "ip", "addr", "add", address(id) + "/24", "dev", "eth0"});
            must({"netns", "exec", name, "ip", "link", "set", "eth0", "up"});
            const auto nft = find_program("nft").string();
            must({"netns", "exec", name, nft, "add", "table", "inet", "raftkv"});
            // On input, not output: a packet dropped on output fails the sender's call
            // (EPERM), one dropped on arrival is simply lost.
            must({"netns", "exec", name, nft, "add", "chain", "inet", "raftkv", "in",
                  "{ type filter hook input priority 0; policy accept; }"});
        }
    } catch (...) {
        teardown();
        throw;
    }
}

netns_lab::~netns_lab()
{
    teardown();
}

void netns_lab::teardown()
{
    // Deleting a namespace deletes the veth ends in it, and so their peers, but only once
    // the kernel has freed the namespace, which it does in the background: the host end is
    // deleted at once, so that the next round can make it again.
    if (!host_link_.empty())
        run({"link", "del", host_link_});
    host_link_.clear();
    for (auto it = created_.rbegin(); it != created_.rend(); ++it)
        run({"netns", "del", *it});
    created_.clear();
}

std::string netns_lab::address(std::uint64_t id) const
{
    return "10.231." + std::to_string(subnet_) + "." + std::to_string(id);
}

std::string netns_lab::ns(std::uint64_t id) const
{
    return prefix_ + "n" + std::to_string(id);
}

std::vector<std::string> netns_lab::launcher(std::uint64_t id) const
{
    return {find_program("ip").string(), "netns", "exec", ns(id)};
}

std::string netns_lab::nobody() const
{
    return "10.231." + std::to_string(subnet_) + ".200";
}

void netns_lab::drop(std::uint64_t from, std::uint64_t to)
{
    const auto nft = find_program("nft").string();
    must({"netns", "exec", ns(to), nft, "add", "rule", "inet", "raftkv", "in", "ip", "saddr", address(from),
          "drop"});
}

void netns_lab::heal()
{
    const auto nft = find_program("nft").string();
    for (std::uint64_t id = 1; id <= nodes_; ++id)
        must({"netns", "exec", ns(id), nft, "flush", "chain", "inet", "raftkv", "in"});
}

bool netns_lab::run(const std::vector<std::string>& args)
{
    return run_program(find_program("ip"), args, log_);
}

void netns_lab::must(const std::vector<std::string>& args)
{
    if (run(args))
        return;
    std::string cmd = "ip";
    for (const auto& a : args)
        cmd += " " + a;
    throw std::runtime_error("netns: `" + cmd + "` failed:\n" + e2e::read_tail(log_, 2000));
}

} // namespace raftkv::nemesis
