// The example configuration files in config/ (RAFTKV_CONFIG_DIR), read by the server's own
// parser: each must be a configuration the server starts with, and the three node files
// must describe one cluster.
#include "config.hpp"

#define BOOST_TEST_MODULE server_config_files
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using raftkv::server::parse_arguments;
using raftkv::server::parse_result;
using raftkv::server::server_config;

const fs::path config_dir = RAFTKV_CONFIG_DIR;

/// The files of config/, by name.
std::vector<std::string> config_files()
{
    std::vector<std::string> names;
    for (const fs::directory_entry& e : fs::directory_iterator(config_dir))
        names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

/// config/<name> as `raftkv-server --config config/<name>` reads it.
server_config load(const std::string& name)
{
    const parse_result r = parse_arguments({"--config", (config_dir / name).string()});
    BOOST_TEST_REQUIRE(r.ok(), name << ": " << r.error);
    return r.config;
}

} // namespace

BOOST_AUTO_TEST_CASE(every_file_in_config_is_a_yaml_configuration_the_server_accepts)
{
    const std::vector<std::string> names = config_files();
    BOOST_TEST_REQUIRE(!names.empty(), config_dir << " holds no files");
    for (const std::string& name : names) {
        BOOST_TEST_CONTEXT(name)
        {
            BOOST_TEST(fs::path(name).extension() == ".yaml");
            load(name);
        }
    }
}

BOOST_AUTO_TEST_CASE(the_documented_files_are_there)
{
    // README.md, docs/server.md and scripts/cluster.sh name these.
    const std::vector<std::string> names = config_files();
    for (const char* name : {"single-node.yaml", "node1.yaml", "node2.yaml", "node3.yaml"})
        BOOST_TEST((std::find(names.begin(), names.end(), name) != names.end()), name << " is missing");
}

BOOST_AUTO_TEST_CASE(single_node_is_the_default_configuration_written_out)
{
    const server_config c = load("single-node.yaml");
    const server_config defaults = parse_arguments({}).config;
    BOOST_TEST(c.id == defaults.id);
    BOOST_TEST(c.data_dir == defaults.data_dir);
    BOOST_TEST(c.http.to_string() == defaults.http.to_string());
    BOOST_TEST(c.raft.to_string() == defaults.raft.to_string());
    BOOST_TEST((c.peers == defaults.peers));
    BOOST_TEST(c.peers_given);
}

BOOST_AUTO_TEST_CASE(the_three_node_files_describe_one_loopback_cluster)
{
    std::set<fs::path> data_dirs;
    std::set<std::string> http;
    std::optional<std::map<raftkv::node_id, raftkv::server::host_port>> peers;
    for (const raftkv::node_id id : {1u, 2u, 3u}) {
        const std::string name = "node" + std::to_string(id) + ".yaml";
        BOOST_TEST_CONTEXT(name)
        {
            const server_config c = load(name);
            BOOST_TEST(c.id == id);
            BOOST_TEST(c.peers_given);
            BOOST_TEST(c.peers.size() == 3u);
            if (!peers)
                peers = c.peers;
            BOOST_TEST((c.peers == *peers), "the member lists differ");
            // The Raft port is this node's entry in peers; the ports are scripts/cluster.sh's.
            BOOST_TEST(c.raft.to_string() == c.peers.at(id).to_string());
            BOOST_TEST(c.raft.to_string() == "127.0.0.1:908" + std::to_string(id));
            BOOST_TEST(c.http.to_string() == "127.0.0.1:808" + std::to_string(id));
            BOOST_TEST(c.advertise_http.to_string() == c.http.to_string());
            data_dirs.insert(c.data_dir.lexically_normal());
            http.insert(c.http.to_string());
            BOOST_TEST(raftkv::server::advertise_http_problem(c).empty());
        }
    }
    BOOST_TEST(data_dirs.size() == 3u, "two nodes share a data directory");
    BOOST_TEST(http.size() == 3u, "two nodes share an HTTP address");
}
