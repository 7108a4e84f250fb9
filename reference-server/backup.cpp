#include "backup.hpp"

#include "durable_file.hpp"
#include "identity.hpp"

#include <raftkv/asio/detail/greeting.hpp>
#include <raftkv/leveldb/detail/snapshot_stream.hpp>
#include <raftkv/leveldb/kv_state_machine.hpp>
#include <raftkv/wal/detail/crc32c.hpp>
#include <raftkv/wal/log_store.hpp>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace raftkv::server {

namespace {

constexpr std::string_view header_magic = "raftkv-backup 1";

/// How much of the file is read at a time.
constexpr std::size_t chunk_bytes = 1 << 20;

template <class T>
bool parse_number(std::string_view text, T& out)
{
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && end == text.data() + text.size();
}

std::ifstream open_backup(const std::filesystem::path& file)
{
    // A directory opens (and then fails every read without a reason): say what it is.
    if (std::error_code ec; std::filesystem::is_directory(file, ec))
        throw std::runtime_error("cannot read the backup " + file.string() + ": it is a directory");
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw std::runtime_error("cannot open the backup " + file.string() + ": " + std::strerror(errno));
    return in;
}

/// Refuses a file that does not start with a whole header: `error` is parse_backup_header()'s,
/// empty when the bytes read (none if `empty`) end before the header does.
[[noreturn]] void not_a_backup(const std::filesystem::path& file, const std::string& error, bool empty)
{
    throw std::runtime_error(file.string() + " is not a raftkv backup: " +
                             (!error.empty() ? error
                              : empty        ? "it is empty"
                                             : "its header is incomplete"));
}

/// Reads `file` in chunks after its header, passing each to `on_chunk`. Returns the header.
template <class OnChunk>
backup_header read_backup(const std::filesystem::path& file, std::uint64_t& bytes, OnChunk&& on_chunk)
{
    std::ifstream in = open_backup(file);
    std::string buffer(chunk_bytes, '\0');
    std::string head;
    std::optional<backup_header> header;
    bytes = 0;
    while (in) {
        in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        const auto got = static_cast<std::size_t>(in.gcount());
        if (got == 0)
            break;
        bytes += got;
        std::string_view data(buffer.data(), got);
        if (!header) {
            head.append(data);
            std::size_t size = 0;
            std::string error;
            header = parse_backup_header(head, size, error);
            if (!header) {
                if (!error.empty())
                    not_a_backup(file, error, false);
                continue;
            }
            on_chunk(*header, std::string_view(head).substr(size));
            continue;
        }
        on_chunk(*header, data);
    }
    if (in.bad())
        throw std::runtime_error("cannot read the backup " + file.string());
    if (!header)
        not_a_backup(file, {}, bytes == 0);
    return *header;
}

/// The "check" line's value: the CRC-32C of the header's lines before it, newlines
/// included, as eight hex digits.
std::string header_check(std::string_view lines)
{
    char text[9];
    std::snprintf(text, sizeof text, "%08x", raftkv::wal::detail::crc32c(lines.data(), lines.size()));
    return text;
}

} // namespace

std::string format_backup_header(const backup_header& h)
{
    std::string out(header_magic);
    out += "\nindex " + std::to_string(h.index);
    out += "\ncluster " + raftkv::asio::detail::cluster_id_name(h.cluster_id);
    out += "\nnode " + std::to_string(h.node);
    out += "\n";
    out += "check " + header_check(out) + "\n\n";
    return out;
}

std::optional<backup_header> parse_backup_header(std::string_view data, std::size_t& size, std::string& error)
{
    error.clear();
    const std::size_t end = data.find("\n\n");
    if (end == std::string_view::npos) {
        const std::string_view start = data.substr(0, header_magic.size());
        if (start != header_magic.substr(0, start.size()))
            error = "it does not start with '" + std::string(header_magic) + "'";
        else if (data.size() > max_backup_header_bytes)
            error = "its header does not end within " + std::to_string(max_backup_header_bytes) + " bytes";
        return std::nullopt;
    }
    const std::string_view whole = data.substr(0, end + 1);
    std::string_view text = whole;
    backup_header h;
    bool have_index = false, have_cluster = false, have_node = false;
    for (bool first = true; !text.empty(); first = false) {
        const std::size_t nl = text.find('\n');
        const std::string_view line = text.substr(0, nl);
        const std::string_view before = whole.substr(0, whole.size() - text.size());
        text.remove_prefix(nl + 1);
        if (first) {
            if (line != header_magic) {
                error = "its first line is not '" + std::string(header_magic) + "'";
                return std::nullopt;
            }
            continue;
        }
        const std::size_t space = line.find(' ');
        const std::string_view name = line.substr(0, space);
        const std::string_view value =
            space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
        bool ok = true;
        if (name == "index") {
            ok = parse_number(value, h.index);
            have_index = true;
        } else if (name == "cluster") {
            const std::optional<std::uint64_t> id = parse_hex_id(value);
            ok = id.has_value();
            h.cluster_id = id.value_or(0);
            have_cluster = true;
        } else if (name == "node") {
            ok = parse_number(value, h.node) && h.node != no_node;
            have_node = true;
        } else if (name == "check") {
            // The lines before it, as written (backups of earlier releases have none).
            if (value != header_check(before)) {
                error = "its header is damaged: its lines do not match their check (" +
                        std::string(value.substr(0, 16)) + ", where they give " + header_check(before) + ")";
                return std::nullopt;
            }
        } // other lines: written by a later release, ignored
        if (!ok) {
            error = "its header line '" + std::string(line) + "' does not parse";
            return std::nullopt;
        }
    }
    if (!have_index || !have_cluster || !have_node) {
        error = "its header lacks the index, cluster or node line";
        return std::nullopt;
    }
    size = end + 2;
    return h;
}

backup_header read_backup_header(const std::filesystem::path& file)
{
    std::ifstream in = open_backup(file);
    std::string head(max_backup_header_bytes, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    if (in.bad())
        throw std::runtime_error("cannot read the backup " + file.string());
    head.resize(static_cast<std::size_t>(in.gcount()));
    std::size_t size = 0;
    std::string error;
    const std::optional<backup_header> h = parse_backup_header(head, size, error);
    if (!h)
        not_a_backup(file, error, head.empty());
    return *h;
}

backup_header verify_backup(const std::filesystem::path& file, std::uint64_t& bytes)
{
    std::optional<raftkv::leveldb::detail::snapshot_decoder> decoder;
    std::uint64_t state_bytes = 0; // after the header
    try {
        const backup_header h =
            read_backup(file, bytes, [&](const backup_header& header, std::string_view data) {
                if (!decoder)
                    decoder.emplace(header.index);
                state_bytes += data.size();
                decoder->feed(data, [](auto, std::string_view, std::string_view) {});
            });
        // Once read_backup() has a header it calls back at least once (with no bytes when none
        // follow), so the decoder exists here.
        if (state_bytes == 0)
            throw std::runtime_error(
                file.string() + " is incomplete: nothing follows its header (the state it holds is missing)");
        if (!decoder->done())
            throw std::runtime_error(file.string() + " is incomplete: it ends with " + decoder->missing());
        return h;
    } catch (const raftkv::leveldb::detail::snapshot_stream_error& e) {
        throw std::runtime_error(file.string() + " is damaged: " + e.what());
    }
}

backup_header restore_backup(const std::filesystem::path& file, const std::filesystem::path& data_dir,
                             const membership& members)
{
    std::uint64_t bytes = 0;
    const backup_header h = verify_backup(file, bytes);
    const std::filesystem::path state = data_dir / "state", wal = data_dir / "wal";
    if (restore_unfinished(data_dir)) {
        // What a restore cut short wrote: this one starts over.
        std::filesystem::remove_all(state);
        std::filesystem::remove_all(wal);
    }
    for (const auto& dir : {state, wal, data_dir / "log"})
        if (std::filesystem::exists(dir))
            throw std::runtime_error("cannot restore into " + data_dir.string() + ": it holds Raft data (" +
                                     dir.string() + ")");
    write_file_atomically(restore_marker(data_dir), "restoring " + file.string() + "\n");
    // The new cluster's log starts after the backup's index, in term 1, under `members`.
    const snapshot_meta meta{.index = h.index, .term = 1, .members = members};
    try {
        {
            raftkv::leveldb::kv_state_machine_options options;
            options.sync = false; // as the server opens it; a restore is synced regardless
            raftkv::leveldb::kv_state_machine machine(state, options);
            machine.begin_restore(meta);
            read_backup(file, bytes, [&machine](const backup_header&, std::string_view data) {
                if (!data.empty())
                    machine.restore_chunk(data);
            });
            machine.finish_restore();
            // Where the backed-up cluster's nodes serve HTTP ("node.<id>.http..." records) says
            // nothing of this cluster's, which has members of its own under the same ids: taken
            // for theirs, it would have requests forwarded to the other cluster until each
            // member published its own. Every member restores the same file, and drops them
            // alike.
            machine.erase_meta("node.");
        }
        raftkv::wal::log_store log(wal);
        // The term first, as a node records a term before any entry of it (a log of a term
        // the hard state has not reached is refused as damaged).
        log.save_hard_state(hard_state{.term = 1, .vote = no_node});
        log.install_snapshot(meta);
        log.sync();
    } catch (...) {
        std::error_code ignored;
        std::filesystem::remove_all(state, ignored);
        std::filesystem::remove_all(wal, ignored);
        std::filesystem::remove(restore_marker(data_dir), ignored);
        throw;
    }
    return h;
}

std::filesystem::path restore_marker(const std::filesystem::path& data_dir)
{
    return data_dir / "restoring";
}

bool restore_unfinished(const std::filesystem::path& data_dir)
{
    return std::filesystem::exists(restore_marker(data_dir));
}

void finish_restore(const std::filesystem::path& data_dir)
{
    remove_file_durably(restore_marker(data_dir));
}

} // namespace raftkv::server
