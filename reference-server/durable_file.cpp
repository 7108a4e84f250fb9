#include "durable_file.hpp"

#include <raftkv/wal/detail/crc32c.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace raftkv::server {

namespace {

[[noreturn]] void fail_io(const std::string& what, const std::filesystem::path& path)
{
    throw std::runtime_error("cannot " + what + " " + path.string() + ": " + std::strerror(errno));
}

void fsync_path(const std::filesystem::path& path, int flags)
{
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0)
        fail_io("open", path);
    if (::fsync(fd) != 0) {
        ::close(fd);
        fail_io("sync", path);
    }
    ::close(fd);
}

} // namespace

void write_file_atomically(const std::filesystem::path& path, const std::string& text)
{
    const auto dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
    std::filesystem::create_directories(dir);
    auto temp = path;
    temp += ".tmp";
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        fail_io("create", temp);
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    const bool synced = written && ::fsync(fd) == 0;
    ::close(fd);
    // A failure leaves no temporary file behind (a full disk, an immutable target).
    const auto fail = [&temp](const char* what, const std::filesystem::path& p) {
        const int error = errno;
        std::error_code ignored;
        std::filesystem::remove(temp, ignored);
        errno = error;
        fail_io(what, p);
    };
    if (!synced)
        fail("write", temp);
    if (::rename(temp.c_str(), path.c_str()) != 0)
        fail("rename into", path);
    fsync_path(dir, O_RDONLY | O_DIRECTORY);
}

void remove_file_durably(const std::filesystem::path& path)
{
    std::error_code ec;
    if (!std::filesystem::remove(path, ec)) {
        if (ec)
            throw std::runtime_error("cannot remove " + path.string() + ": " + ec.message());
        return;
    }
    fsync_path(path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path(),
               O_RDONLY | O_DIRECTORY);
}

std::optional<std::string> read_small_file(const std::filesystem::path& path)
{
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        return std::nullopt;
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in)
        fail_io("read", path);
    return text.str();
}

namespace {

constexpr std::string_view checksum_key = "checksum ";

std::string checksum_line(std::string_view covered)
{
    char hex[11];
    std::snprintf(hex, sizeof hex, "0x%08x", raftkv::wal::detail::crc32c(covered.data(), covered.size()));
    return std::string(checksum_key) + hex + "\n";
}

} // namespace

std::string with_checksum(std::string body)
{
    return body + checksum_line(body);
}

std::optional<std::string_view> checked_body(std::string_view text, std::string& error)
{
    const std::size_t at = text.rfind(checksum_key);
    if (at == std::string_view::npos || (at != 0 && text[at - 1] != '\n')) {
        error = "no checksum line";
        return std::nullopt;
    }
    if (text.substr(at) != checksum_line(text.substr(0, at))) {
        error = "the checksum does not match the contents: the file was damaged";
        return std::nullopt;
    }
    return text.substr(0, at);
}

std::optional<std::string_view> versioned_text(std::string_view text, std::string_view header,
                                               std::string_view legacy_header, std::string& error)
{
    const auto first_line_is = [text](std::string_view line) {
        return text.starts_with(line) && text.substr(line.size()).starts_with('\n');
    };
    if (first_line_is(legacy_header))
        return text;
    if (!first_line_is(header)) {
        error = "the first line is not '" + std::string(header) + "'";
        return std::nullopt;
    }
    return checked_body(text, error);
}

} // namespace raftkv::server
