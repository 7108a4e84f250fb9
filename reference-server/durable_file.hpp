#ifndef RAFTKV_SERVER_DURABLE_FILE_HPP
#define RAFTKV_SERVER_DURABLE_FILE_HPP

// Small files in the data directory that must survive a crash whole or not at all: the
// identity file, the peers file, and the mark of a restore under way.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace raftkv::server {

/// Replaces `path` with `text` atomically: `path`.tmp, fsync, rename, fsync of the
/// directory (created if missing). Throws std::runtime_error on failure.
void write_file_atomically(const std::filesystem::path& path, const std::string& text);

/// Removes `path`, if it exists, for good: the removal is synced (fsync of the directory).
/// Throws std::runtime_error on failure.
void remove_file_durably(const std::filesystem::path& path);

/// The contents of `path`; std::nullopt if it does not exist. Throws std::runtime_error if
/// it exists but cannot be read.
std::optional<std::string> read_small_file(const std::filesystem::path& path);

/// `body`, a small text file's lines, followed by one more: "checksum 0x" and the 8 hex
/// digits of the CRC-32C of every byte of `body`. So damage that still parses (a changed
/// digit of an id) is caught when the file is read back with checked_body().
std::string with_checksum(std::string body);

/// The lines of `text` before its checksum line (with_checksum()), if that line is the last
/// and matches them; std::nullopt otherwise, with the reason in `error`.
std::optional<std::string_view> checked_body(std::string_view text, std::string& error);

/// The text to parse of a small file whose first line is `header` and whose last is its
/// checksum (checked_body(), the checksum line left out), or whose first line is
/// `legacy_header`, a version written before checksums (the whole text). std::nullopt with
/// the reason in `error` if the first line is neither or the checksum does not match.
std::optional<std::string_view> versioned_text(std::string_view text, std::string_view header,
                                               std::string_view legacy_header, std::string& error);

} // namespace raftkv::server

#endif
