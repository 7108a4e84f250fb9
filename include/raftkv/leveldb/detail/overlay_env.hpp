#ifndef RAFTKV_LEVELDB_DETAIL_OVERLAY_ENV_HPP
#define RAFTKV_LEVELDB_DETAIL_OVERLAY_ENV_HPP

// A LevelDB Env that leaves the disk as it is, for reading a database offline: files are
// read from the disk unless LevelDB wrote them since, and everything it writes (the log it
// starts on open, the table it recovers the old log into, a new manifest, CURRENT, the
// tables of a compaction) goes to memory and is gone with the Env; a file it deletes or
// renames away is only hidden, and a directory it creates exists in memory only. So
// DB::Open through it reads a database exactly as a normal open would (a missing one is
// created, empty, in memory), on a full disk or a read-only mount too, and changes nothing
// in the directory: what raftkv-server --inspect needs.
//
// The lock is a read lock (fcntl F_RDLCK, on a descriptor opened read-only): it fails
// while a process holds LevelDB's own (write) lock on the directory, so a running node's
// database is still refused. A LOCK file that does not exist yet is not created: no
// process holds that database.

#include <leveldb/env.h>
#include <leveldb/slice.h>
#include <leveldb/status.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace raftkv::leveldb::detail {

class overlay_env final : public ::leveldb::EnvWrapper {
public:
    overlay_env() : EnvWrapper(::leveldb::Env::Default()) {}

    ::leveldb::Status NewSequentialFile(const std::string& f, ::leveldb::SequentialFile** r) override
    {
        return open_reader(f, r, &::leveldb::Env::NewSequentialFile);
    }

    ::leveldb::Status NewRandomAccessFile(const std::string& f, ::leveldb::RandomAccessFile** r) override
    {
        return open_reader(f, r, &::leveldb::Env::NewRandomAccessFile);
    }

    ::leveldb::Status NewWritableFile(const std::string& f, ::leveldb::WritableFile** r) override
    {
        std::lock_guard lock(mutex_);
        auto& contents = files_[f];
        contents = std::make_shared<std::string>();
        hidden_.erase(f);
        *r = new memory_writer(contents, mutex_);
        return ::leveldb::Status::OK();
    }

    ::leveldb::Status NewAppendableFile(const std::string& f, ::leveldb::WritableFile** r) override
    {
        std::lock_guard lock(mutex_);
        if (!files_.contains(f)) {
            auto contents = std::make_shared<std::string>();
            if (!hidden_.contains(f) && target()->FileExists(f))
                if (::leveldb::Status s = ::leveldb::ReadFileToString(target(), f, contents.get()); !s.ok())
                    return s;
            files_[f] = std::move(contents);
            hidden_.erase(f);
        }
        *r = new memory_writer(files_[f], mutex_);
        return ::leveldb::Status::OK();
    }

    bool FileExists(const std::string& f) override
    {
        std::lock_guard lock(mutex_);
        return files_.contains(f) || (!hidden_.contains(f) && target()->FileExists(f));
    }

    ::leveldb::Status GetChildren(const std::string& dir, std::vector<std::string>* r) override
    {
        // A directory missing on the disk holds what was written into it here, if anything:
        // CreateDir made it in memory only.
        std::vector<std::string> on_disk;
        if (::leveldb::Status s = target()->GetChildren(dir, &on_disk); !s.ok() && target()->FileExists(dir))
            return s;
        std::lock_guard lock(mutex_);
        std::set<std::string> names;
        for (std::string& name : on_disk)
            if (!hidden_.contains(dir + "/" + name))
                names.insert(std::move(name));
        const std::string prefix = dir + "/";
        for (const auto& [path, contents] : files_)
            if (path.starts_with(prefix) && path.find('/', prefix.size()) == std::string::npos)
                names.insert(path.substr(prefix.size()));
        r->assign(names.begin(), names.end());
        return ::leveldb::Status::OK();
    }

    ::leveldb::Status RemoveFile(const std::string& f) override
    {
        std::lock_guard lock(mutex_);
        return remove(f);
    }

    ::leveldb::Status CreateDir(const std::string&) override { return ::leveldb::Status::OK(); }
    ::leveldb::Status RemoveDir(const std::string&) override { return ::leveldb::Status::OK(); }

    ::leveldb::Status GetFileSize(const std::string& f, std::uint64_t* size) override
    {
        std::lock_guard lock(mutex_);
        if (const auto it = files_.find(f); it != files_.end()) {
            *size = it->second->size();
            return ::leveldb::Status::OK();
        }
        if (hidden_.contains(f))
            return not_found(f);
        return target()->GetFileSize(f, size);
    }

    ::leveldb::Status RenameFile(const std::string& from, const std::string& to) override
    {
        std::lock_guard lock(mutex_);
        std::shared_ptr<std::string> contents;
        if (const auto it = files_.find(from); it != files_.end()) {
            contents = it->second;
        } else {
            if (hidden_.contains(from))
                return not_found(from);
            contents = std::make_shared<std::string>();
            if (::leveldb::Status s = ::leveldb::ReadFileToString(target(), from, contents.get()); !s.ok())
                return s;
        }
        if (::leveldb::Status s = remove(from); !s.ok())
            return s;
        files_[to] = std::move(contents);
        hidden_.erase(to);
        return ::leveldb::Status::OK();
    }

    ::leveldb::Status LockFile(const std::string& f, ::leveldb::FileLock** lock) override
    {
        const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno != ENOENT)
                return ::leveldb::Status::IOError("lock " + f, std::strerror(errno));
            *lock = new read_lock(-1);
            return ::leveldb::Status::OK();
        }
        struct ::flock l {};
        l.l_type = F_RDLCK;
        l.l_whence = SEEK_SET;
        if (::fcntl(fd, F_SETLK, &l) != 0) {
            const int e = errno;
            ::close(fd);
            return ::leveldb::Status::IOError("lock " + f, std::strerror(e));
        }
        *lock = new read_lock(fd);
        return ::leveldb::Status::OK();
    }

    ::leveldb::Status UnlockFile(::leveldb::FileLock* lock) override
    {
        delete lock;
        return ::leveldb::Status::OK();
    }

    ::leveldb::Status NewLogger(const std::string&, ::leveldb::Logger** r) override
    {
        *r = new discarding_logger;
        return ::leveldb::Status::OK();
    }

    /// A logger that drops what LevelDB logs: as Options::info_log, it keeps DB::Open
    /// from renaming the directory's LOG file (which would copy it into memory).
    ::leveldb::Logger* logger() noexcept { return &logger_; }

private:
    using contents_ptr = std::shared_ptr<std::string>;

    // A file in memory, read through a handle that keeps it alive. Reads copy under the
    // Env's mutex: a file is never written and read at once by LevelDB, but a writer may
    // still append to a string another handle shares.
    class memory_reader final : public ::leveldb::SequentialFile, public ::leveldb::RandomAccessFile {
    public:
        memory_reader(contents_ptr contents, std::mutex& mutex)
            : contents_(std::move(contents)), mutex_(&mutex)
        {
        }

        ::leveldb::Status Read(std::size_t n, ::leveldb::Slice* result, char* scratch) override
        {
            std::lock_guard lock(*mutex_);
            const std::size_t k = copy(pos_, n, scratch);
            pos_ += k;
            *result = ::leveldb::Slice(scratch, k);
            return ::leveldb::Status::OK();
        }

        ::leveldb::Status Skip(std::uint64_t n) override
        {
            std::lock_guard lock(*mutex_);
            pos_ = std::min<std::uint64_t>(pos_ + n, contents_->size());
            return ::leveldb::Status::OK();
        }

        ::leveldb::Status Read(std::uint64_t offset, std::size_t n, ::leveldb::Slice* result,
                               char* scratch) const override
        {
            std::lock_guard lock(*mutex_);
            if (offset > contents_->size())
                return ::leveldb::Status::IOError("read past the end of a file in memory");
            *result = ::leveldb::Slice(scratch, copy(offset, n, scratch));
            return ::leveldb::Status::OK();
        }

    private:
        std::size_t copy(std::uint64_t offset, std::size_t n, char* to) const
        {
            const std::size_t k =
                offset >= contents_->size() ? 0 : std::min<std::size_t>(n, contents_->size() - offset);
            std::memcpy(to, contents_->data() + offset, k);
            return k;
        }

        contents_ptr contents_;
        std::mutex* mutex_;
        std::uint64_t pos_ = 0;
    };

    class memory_writer final : public ::leveldb::WritableFile {
    public:
        memory_writer(contents_ptr contents, std::mutex& mutex)
            : contents_(std::move(contents)), mutex_(&mutex)
        {
        }

        ::leveldb::Status Append(const ::leveldb::Slice& data) override
        {
            std::lock_guard lock(*mutex_);
            contents_->append(data.data(), data.size());
            return ::leveldb::Status::OK();
        }
        ::leveldb::Status Close() override { return ::leveldb::Status::OK(); }
        ::leveldb::Status Flush() override { return ::leveldb::Status::OK(); }
        ::leveldb::Status Sync() override { return ::leveldb::Status::OK(); }

    private:
        contents_ptr contents_;
        std::mutex* mutex_;
    };

    class read_lock final : public ::leveldb::FileLock {
    public:
        explicit read_lock(int fd) : fd_(fd) {}
        ~read_lock() override
        {
            if (fd_ >= 0)
                ::close(fd_);
        }

    private:
        int fd_;
    };

    class discarding_logger final : public ::leveldb::Logger {
    public:
        void Logv(const char*, std::va_list) override {}
    };

    // A reader of `f`: the file in memory if it was written here, else the disk's (opened by
    // `on_disk`, a member of the Env below) unless it was removed here.
    template <class File>
    ::leveldb::Status open_reader(const std::string& f, File** r,
                                  ::leveldb::Status (::leveldb::Env::*on_disk)(const std::string&, File**))
    {
        std::lock_guard lock(mutex_);
        if (const auto it = files_.find(f); it != files_.end()) {
            *r = new memory_reader(it->second, mutex_);
            return ::leveldb::Status::OK();
        }
        if (hidden_.contains(f))
            return not_found(f);
        return (target()->*on_disk)(f, r);
    }

    static ::leveldb::Status not_found(const std::string& f)
    {
        return ::leveldb::Status::NotFound(f, "removed (in memory only)");
    }

    // REQUIRES: mutex_ held.
    ::leveldb::Status remove(const std::string& f)
    {
        if (files_.erase(f) != 0)
            return ::leveldb::Status::OK();
        if (hidden_.contains(f) || !target()->FileExists(f))
            return not_found(f);
        hidden_.insert(f);
        return ::leveldb::Status::OK();
    }

    discarding_logger logger_;
    std::mutex mutex_;
    /// Files written since the Env was made, by path.
    std::map<std::string, contents_ptr> files_;
    /// Files on the disk that were removed or renamed away, by path.
    std::set<std::string> hidden_;
};

} // namespace raftkv::leveldb::detail

#endif
