#include "peer_incarnations.hpp"

#include "config.hpp"
#include "durable_file.hpp"
#include "identity.hpp"

#include <raftkv/asio/detail/greeting.hpp>

#include <sstream>
#include <stdexcept>

namespace raftkv::server {

std::string format_peer_incarnations(const peer_incarnations& peers)
{
    std::string out(peers_header);
    out += '\n';
    for (const auto& [id, record] : peers) {
        out += "incarnation " + std::to_string(id) + " " +
               raftkv::asio::detail::cluster_id_name(record.incarnation);
        if (record.added != 0)
            out += " added " + raftkv::asio::detail::cluster_id_name(record.added);
        out += "\n";
    }
    return with_checksum(std::move(out));
}

std::map<node_id, std::uint64_t> incarnations_of(const peer_incarnations& peers)
{
    std::map<node_id, std::uint64_t> out;
    for (const auto& [id, record] : peers)
        out.emplace(id, record.incarnation);
    return out;
}

std::optional<peer_incarnations> parse_peer_incarnations(std::string_view text, std::string& error)
{
    const std::optional<std::string_view> body = versioned_text(text, peers_header, peers_header_v1, error);
    if (!body)
        return std::nullopt;
    const bool v1 = text.starts_with(peers_header_v1); // no tags either
    std::istringstream in{std::string(*body)};
    std::string line;
    std::getline(in, line); // the header, checked above
    peer_incarnations peers;
    for (int n = 2; std::getline(in, line); ++n) {
        std::istringstream fields(line);
        std::string key, id, incarnation, added_key, added, extra;
        fields >> key >> id >> incarnation;
        const auto peer = parse_node_id(id);
        const auto value = parse_hex_id(incarnation);
        std::optional<std::uint64_t> tag = 0;
        if (!v1 && (fields >> added_key)) {
            fields >> added;
            tag = added_key == "added" ? parse_hex_id(added) : std::nullopt;
        }
        if (key != "incarnation" || !peer || !value || !tag || (fields >> extra) ||
            !peers.emplace(*peer, peer_record{*value, *tag}).second) {
            error = "line " + std::to_string(n) + ": bad line '" + line + "'";
            return std::nullopt;
        }
    }
    return peers;
}

std::filesystem::path peers_path(const std::filesystem::path& data_dir)
{
    return data_dir / "peers";
}

peer_incarnations read_peer_incarnations(const std::filesystem::path& data_dir)
{
    const auto path = peers_path(data_dir);
    const auto text = read_small_file(path);
    if (!text)
        return {};
    std::string error;
    auto peers = parse_peer_incarnations(*text, error);
    if (!peers)
        throw std::runtime_error(path.string() + " is not a valid peers file (" + error +
                                 "); put it back from a file-system copy of the data directory, or remove "
                                 "it (its peers are then recorded again as they connect)");
    return std::move(*peers);
}

void write_peer_incarnations(const std::filesystem::path& data_dir, const peer_incarnations& peers)
{
    write_file_atomically(peers_path(data_dir), format_peer_incarnations(peers));
}

} // namespace raftkv::server
