#ifndef RAFTKV_TEST_NEMESIS_NETNS_HPP
#define RAFTKV_TEST_NEMESIS_NETNS_HPP

// Network namespaces for fault injection (root only): every node runs in a namespace of its
// own, connected by a veth pair to a bridge in a further "hub" namespace, on the private test
// network 10.231.K.0/24 (K from the test's process id). The test process reaches the nodes
// through one more veth pair whose host end has 10.231.K.254; nothing else of the host is
// touched (no other interface, route or firewall rule). Partitions are nftables rules in the
// nodes' own namespaces that drop packets, so connections stay open and TCP retransmits
// into the void, unlike the proxy's closed connections.
//
// Every namespace is deleted by the destructor (the veth pairs go with them), and namespaces
// left behind by a test process that was killed are deleted by the next one.

#include "harness.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace raftkv::nemesis {

class netns_lab {
public:
    /// nullopt if namespaces can be used here (root, `ip` and `nft` installed, a namespace can
    /// be created and deleted); else why not.
    static std::optional<std::string> unusable();

    /// Creates the hub and `nodes` node namespaces (ids 1..nodes). Throws
    /// std::runtime_error, after deleting what it made, if a command fails.
    explicit netns_lab(std::size_t nodes);
    ~netns_lab();
    netns_lab(const netns_lab&) = delete;
    netns_lab& operator=(const netns_lab&) = delete;

    /// Node `id`'s address, 10.231.K.id.
    std::string address(std::uint64_t id) const;
    /// Node `id`'s namespace.
    std::string ns(std::uint64_t id) const;
    /// The command a node is started under: ip netns exec <ns(id)>.
    std::vector<std::string> launcher(std::uint64_t id) const;
    /// An address on the test network where no node is (for a member that never answers).
    std::string nobody() const;

    /// Drops every packet node `from` sends to node `to`, on arrival in `to`'s namespace.
    void drop(std::uint64_t from, std::uint64_t to);
    /// Removes every rule.
    void heal();

private:
    bool run(const std::vector<std::string>& args);
    void must(const std::vector<std::string>& args);
    void teardown();

    std::size_t nodes_;
    e2e::temp_dir dir_; ///< holds the commands' output, until the namespaces are gone
    std::filesystem::path log_;
    std::string prefix_;    ///< rkv<pid>
    int subnet_ = 0;        ///< K
    std::string host_link_; ///< the host end of the test process's veth pair, once made
    std::vector<std::string> created_;
};

} // namespace raftkv::nemesis

#endif
