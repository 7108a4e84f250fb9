// A disk that stops answering, for fault injection on real processes: preloaded into a
// raftkv-server (LD_PRELOAD), this library makes every write and sync of a regular file
// block while a control file exists, and carry on once it is removed. No clock is involved:
// the test decides when the disk hangs and when it returns by creating and removing the file.
//
//   RAFTKV_IO_PAUSE_FILE=/tmp/x/node1.pause LD_PRELOAD=libraftkv_io_pause.so raftkv-server ...
//   touch /tmp/x/node1.pause   # the node's disk hangs: write/fsync on files block
//   rm /tmp/x/node1.pause      # and returns
//
// Wrapped: write, pwrite, pwrite64, writev, pwritev, pwritev2, fsync, fdatasync,
// sync_file_range, on descriptors of regular files other than stdin, stdout and stderr (the
// node's log stays readable while its disk hangs). Sockets, pipes and devices are never held.
// Without RAFTKV_IO_PAUSE_FILE the wrappers only forward the call. With RAFTKV_IO_PAUSE_PREFIX
// too, only files whose path starts with it are held (a node's write-ahead log directory, as if
// the log had a disk of its own): the path comes from /proc/self/fd, read only while paused.
//
// What blocks is the calling thread, in a loop of stat() and nanosleep(), both async-signal-
// safe: signals are delivered meanwhile, so SIGTERM starts the server's shutdown (which then
// waits for its disk like any other write) and kill -9 ends it at once. Nothing here
// allocates, locks or touches errno on the forwarded path. Calls that glibc makes internally
// (stdio's buffered writes, for instance) do not go through these symbols and are not held.
//
// Built without sanitizers: under an ASan server, set ASAN_OPTIONS=verify_asan_link_order=0
// (the preloaded library comes before the ASan runtime in the load order, which ASan refuses
// to start with otherwise). ASan's own interceptors then sit behind these wrappers.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace {

// The control file's path, copied once at load time (getenv is not async-signal-safe).
char control_path[4096];
bool enabled = false;
char prefix[4096]; // RAFTKV_IO_PAUSE_PREFIX, or empty: every file
std::size_t prefix_length = 0;

using write_fn = ssize_t (*)(int, const void*, size_t);
using pwrite_fn = ssize_t (*)(int, const void*, size_t, off_t);
using pwrite64_fn = ssize_t (*)(int, const void*, size_t, off64_t);
using writev_fn = ssize_t (*)(int, const struct iovec*, int);
using pwritev_fn = ssize_t (*)(int, const struct iovec*, int, off_t);
using pwritev2_fn = ssize_t (*)(int, const struct iovec*, int, off_t, int);
using sync_fn = int (*)(int);
using sync_file_range_fn = int (*)(int, off64_t, off64_t, unsigned int);

// Resolved at load time by the constructor below; a call that comes earlier (another
// library's constructor) resolves its own. dlsym may allocate, so it is never called again.
write_fn real_write;
pwrite_fn real_pwrite;
pwrite64_fn real_pwrite64;
writev_fn real_writev;
pwritev_fn real_pwritev;
pwritev2_fn real_pwritev2;
sync_fn real_fsync;
sync_fn real_fdatasync;
sync_file_range_fn real_sync_file_range;

template <class F>
F resolve(F& slot, const char* name)
{
    if (slot == nullptr)
        slot = reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
    return slot;
}

__attribute__((constructor)) void init()
{
    const int saved = errno;
    resolve(real_write, "write");
    resolve(real_pwrite, "pwrite");
    resolve(real_pwrite64, "pwrite64");
    resolve(real_writev, "writev");
    resolve(real_pwritev, "pwritev");
    resolve(real_pwritev2, "pwritev2");
    resolve(real_fsync, "fsync");
    resolve(real_fdatasync, "fdatasync");
    resolve(real_sync_file_range, "sync_file_range");
    const char* path = std::getenv("RAFTKV_IO_PAUSE_FILE");
    if (path != nullptr && *path != '\0' && std::strlen(path) < sizeof control_path) {
        std::memcpy(control_path, path, std::strlen(path) + 1);
        enabled = true;
    }
    const char* only = std::getenv("RAFTKV_IO_PAUSE_PREFIX");
    if (only != nullptr && std::strlen(only) < sizeof prefix) {
        prefix_length = std::strlen(only);
        std::memcpy(prefix, only, prefix_length + 1);
    }
    errno = saved;
}

bool paused()
{
    struct stat st;
    return ::stat(control_path, &st) == 0;
}

// True if `fd` is a file under the prefix (always, without one). readlink is async-signal-safe;
// the path is built by hand, since snprintf is not.
bool under_prefix(int fd)
{
    if (prefix_length == 0)
        return true;
    char link[32] = "/proc/self/fd/";
    char digits[12];
    int n = 0;
    for (unsigned v = static_cast<unsigned>(fd); n == 0 || v != 0; v /= 10)
        digits[n++] = static_cast<char>('0' + v % 10);
    std::size_t at = std::strlen(link);
    while (n > 0)
        link[at++] = digits[--n];
    link[at] = '\0';
    char target[4096];
    const ssize_t len = ::readlink(link, target, sizeof target);
    return len >= static_cast<ssize_t>(prefix_length) && std::memcmp(target, prefix, prefix_length) == 0;
}

// Blocks while the control file exists, if `fd` is a regular file other than 0-2. errno is
// left as it was.
void wait_if_paused(int fd)
{
    if (!enabled || fd <= 2)
        return;
    const int saved = errno;
    if (paused()) {
        struct stat st;
        if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && under_prefix(fd)) {
            const timespec step{0, 5'000'000}; // 5 ms
            do {
                ::nanosleep(&step, nullptr);
            } while (paused());
        }
    }
    errno = saved;
}

} // namespace

extern "C" {

ssize_t write(int fd, const void* buf, size_t n)
{
    wait_if_paused(fd);
    return resolve(real_write, "write")(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off)
{
    wait_if_paused(fd);
    return resolve(real_pwrite, "pwrite")(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off)
{
    wait_if_paused(fd);
    return resolve(real_pwrite64, "pwrite64")(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec* iov, int count)
{
    wait_if_paused(fd);
    return resolve(real_writev, "writev")(fd, iov, count);
}

ssize_t pwritev(int fd, const struct iovec* iov, int count, off_t off)
{
    wait_if_paused(fd);
    return resolve(real_pwritev, "pwritev")(fd, iov, count, off);
}

ssize_t pwritev2(int fd, const struct iovec* iov, int count, off_t off, int flags)
{
    wait_if_paused(fd);
    return resolve(real_pwritev2, "pwritev2")(fd, iov, count, off, flags);
}

int fsync(int fd)
{
    wait_if_paused(fd);
    return resolve(real_fsync, "fsync")(fd);
}

int fdatasync(int fd)
{
    wait_if_paused(fd);
    return resolve(real_fdatasync, "fdatasync")(fd);
}

int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags)
{
    wait_if_paused(fd);
    return resolve(real_sync_file_range, "sync_file_range")(fd, off, n, flags);
}

} // extern "C"
