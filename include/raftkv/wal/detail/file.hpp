#ifndef RAFTKV_WAL_DETAIL_FILE_HPP
#define RAFTKV_WAL_DETAIL_FILE_HPP

// Thin POSIX file helpers for the write-ahead log: an owning descriptor, whole-file reads,
// positioned writes that finish, and the syncs that make a file and its name durable.
// Every failure throws raftkv::storage_error (a std::runtime_error) naming the file and
// errno's text: the disk failed, whatever the data on it.

#include <raftkv/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace raftkv::wal::detail {

[[noreturn]] inline void throw_errno(const std::string& what, const std::filesystem::path& path, int error)
{
    throw raftkv::storage_error("raftkv wal: " + what + " " + path.string() + ": " + std::strerror(error));
}

/// A free-space figure: "12 MiB", or "300 KiB" under one MiB, rounded down.
inline std::string size_text_rounded(std::uint64_t bytes)
{
    constexpr std::uint64_t kib = std::uint64_t{1} << 10;
    return bytes >= (kib << 10) ? std::to_string(bytes / (kib << 10)) + " MiB"
                                : std::to_string(bytes / kib) + " KiB";
}

/// "64 MiB", or "1000 bytes" for a size that is not a whole number of MiB.
inline std::string size_text(std::uint64_t bytes)
{
    constexpr std::uint64_t mib = std::uint64_t{1} << 20;
    return bytes % mib == 0 && bytes != 0 ? std::to_string(bytes / mib) + " MiB"
                                          : std::to_string(bytes) + " bytes";
}

/// An open file descriptor, closed on destruction.
class file {
public:
    file() = default;
    file(const std::filesystem::path& path, int flags, mode_t mode = 0644) : path_(path)
    {
        do
            fd_ = ::open(path.c_str(), flags | O_CLOEXEC, mode);
        while (fd_ < 0 && errno == EINTR);
        if (fd_ < 0)
            throw_errno("cannot open", path, errno);
    }
    file(file&& o) noexcept : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)) {}
    file& operator=(file&& o) noexcept
    {
        if (this != &o) {
            close();
            fd_ = std::exchange(o.fd_, -1);
            path_ = std::move(o.path_);
        }
        return *this;
    }
    ~file() { close(); }

    bool is_open() const noexcept { return fd_ >= 0; }
    int fd() const noexcept { return fd_; }
    const std::filesystem::path& path() const noexcept { return path_; }

    void close() noexcept
    {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }

    /// Writes all of `data` at `offset`.
    void write_at(std::string_view data, std::uint64_t offset) const
    {
        while (!data.empty()) {
            const ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                throw_errno("cannot write", path_, errno);
            }
            data.remove_prefix(static_cast<std::size_t>(n));
            offset += static_cast<std::uint64_t>(n);
        }
    }

    /// Writes `length` zero bytes at `offset`.
    void write_zeros(std::uint64_t offset, std::uint64_t length) const
    {
        static const std::string zeros(std::size_t{64} << 10, '\0');
        while (length > 0) {
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(length, zeros.size()));
            write_at(std::string_view(zeros.data(), n), offset);
            offset += n;
            length -= n;
        }
    }

    /// The whole file's contents.
    std::string read_all() const
    {
        struct stat st {};
        if (::fstat(fd_, &st) != 0)
            throw_errno("cannot stat", path_, errno);
        std::string out(static_cast<std::size_t>(st.st_size), '\0');
        std::size_t done = 0;
        while (done < out.size()) {
            const ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                throw_errno("cannot read", path_, errno);
            if (n == 0)
                break;
            done += static_cast<std::size_t>(n);
        }
        out.resize(done);
        return out;
    }

    /// Makes the written data durable (fdatasync).
    void sync_data() const
    {
        int r;
        do
            r = ::fdatasync(fd_);
        while (r != 0 && errno == EINTR);
        if (r != 0)
            throw_errno("cannot sync", path_, errno);
    }

    /// Sets the size to `size`, then reserves `reserve` bytes of disk from the start
    /// (fallocate), so appends up to it change no metadata but the extents' state.
    void truncate_and_reserve(std::uint64_t size, std::uint64_t reserve) const
    {
        if (::ftruncate(fd_, static_cast<off_t>(size)) != 0)
            throw_errno("cannot truncate", path_, errno);
        if (reserve > size) {
            const int r = ::posix_fallocate(fd_, 0, static_cast<off_t>(reserve));
            // Some file systems cannot reserve: the segment then grows as it is written.
            if (r == ENOSPC) {
                // Say how short the disk is: a segment is reserved whole, so a disk with
                // room for the entries of the moment can still refuse it.
                struct statvfs fs {};
                const std::string free_text =
                    ::fstatvfs(fd_, &fs) == 0
                        ? size_text_rounded(std::uint64_t{fs.f_bavail} * fs.f_frsize) + " free there"
                        : "free space unknown";
                throw raftkv::storage_error("raftkv wal: cannot reserve space (" + size_text(reserve) +
                                            ") for " + path_.string() + ": " + std::strerror(r) + " (" +
                                            free_text + "; the log reserves each segment whole)");
            }
            if (r != 0 && r != EOPNOTSUPP && r != EINVAL)
                throw_errno("cannot reserve space (" + size_text(reserve) + ") for", path_, r);
        }
    }

private:
    int fd_ = -1;
    std::filesystem::path path_;
};

/// Makes the directory's entries (created, renamed, removed files) durable.
inline void sync_directory(const std::filesystem::path& dir)
{
    file d(dir, O_RDONLY | O_DIRECTORY);
    if (::fsync(d.fd()) != 0)
        throw_errno("cannot sync directory", dir, errno);
}

/// Holds an exclusive advisory lock on `dir`/LOCK for as long as it lives, so two
/// processes never open the same log.
class directory_lock {
public:
    /// Takes the lock of `dir` (creating its LOCK file), exclusively; `shared` takes a
    /// shared one on the LOCK file if there is one (a reader's: none is created, and none
    /// is needed when no process ever locked the directory).
    explicit directory_lock(const std::filesystem::path& dir, bool shared = false)
    {
        if (shared && !std::filesystem::exists(dir / "LOCK"))
            return;
        file_ = file(dir / "LOCK", shared ? O_RDONLY : O_RDWR | O_CREAT);
        if (::flock(file_.fd(), (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0)
            throw_errno("cannot lock (is another process using it?)", file_.path(), errno);
    }

private:
    file file_;
};

} // namespace raftkv::wal::detail

#endif
