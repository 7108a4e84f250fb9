#ifndef RAFTKV_SERVER_BACKUP_HPP
#define RAFTKV_SERVER_BACKUP_HPP

// Backups: a node's key-value state at one applied index, in one file (GET /backup, the
// CLI's `raftkv backup FILE`), and a new cluster started from one (raftkv-server
// --restore-backup FILE). The file is a short text header, an empty line, then the state
// machine's snapshot stream (docs/leveldb.md, "Snapshot stream"), whose trailer counts
// and checksums its records. The check line is the CRC-32C of the lines before it:
//
//     raftkv-backup 1
//     index 1042
//     cluster 0x23cbf0697f22948b
//     node 1
//     check 142c2cc7
//
//     RKVSNAP...

#include <raftkv/types.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace raftkv::server {

/// What a backup file says about itself.
struct backup_header {
    /// The applied index of the state it holds; a cluster restored from it starts its
    /// log after this index, so versions keep growing.
    index_t index = 0;
    /// The cluster and the node it was taken from.
    std::uint64_t cluster_id = 0;
    node_id node = no_node;
};

/// The longest header a backup may have.
inline constexpr std::size_t max_backup_header_bytes = 4096;

/// The header's text, the empty line that ends it included.
std::string format_backup_header(const backup_header& h);

/// Parses the header at the start of `data`. On success sets `size` to its length (the
/// empty line included). Without a whole header in `data`: std::nullopt, and `error` empty
/// while more bytes may complete it (within max_backup_header_bytes), else saying why.
std::optional<backup_header> parse_backup_header(std::string_view data, std::size_t& size,
                                                 std::string& error);

/// Reads the header of the backup `file`, and nothing more. Throws std::runtime_error when
/// the file cannot be read or does not start with a backup header.
backup_header read_backup_header(const std::filesystem::path& file);

/// Reads `file` whole and checks it is a complete backup: its header, and a snapshot
/// stream of the header's index that decodes to its trailer. Returns the header and sets
/// `bytes` to the file's size. Throws std::runtime_error saying what is wrong.
backup_header verify_backup(const std::filesystem::path& file, std::uint64_t& bytes);

/// Makes `data_dir`, which must hold no Raft data, the storage of a node whose state is the
/// backup's: the state machine restored from `file`, the log empty after its index in term
/// 1 under `members`. Checks the file first; on any failure removes what it wrote and
/// throws std::runtime_error (or raftkv::storage_error) saying why.
///
/// The directory is marked as being restored (restore_marker()) from before the first byte
/// is written until finish_restore(), which the caller calls once the node's identity is
/// recorded: a restore cut short by a crash leaves the mark, and the Raft data it wrote
/// counts for nothing. Restoring again removes that data and starts over.
backup_header restore_backup(const std::filesystem::path& file, const std::filesystem::path& data_dir,
                             const membership& members);

/// The file that marks `data_dir` as being restored from a backup.
std::filesystem::path restore_marker(const std::filesystem::path& data_dir);

/// Whether `data_dir` holds a restore that did not finish.
bool restore_unfinished(const std::filesystem::path& data_dir);

/// Removes the mark of a restore (if any) for good: the restored node is complete.
void finish_restore(const std::filesystem::path& data_dir);

} // namespace raftkv::server

#endif
