#include "send_progress.hpp"

// <linux/tcp.h> has the kernel's whole struct tcp_info; it cannot share a translation unit
// with <netinet/tcp.h> (which Asio includes), hence this file of its own.
#if defined(__linux__)
#include <linux/in.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstddef>
#endif

namespace raftkv::server {

#if defined(__linux__)

std::optional<send_progress> read_send_progress(int fd)
{
    tcp_info info{};
    socklen_t length = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0)
        return std::nullopt;
    // An older kernel fills less of the structure.
    if (length < offsetof(tcp_info, tcpi_bytes_acked) + sizeof info.tcpi_bytes_acked)
        return std::nullopt;
    int outstanding = 0;
    if (::ioctl(fd, SIOCOUTQ, &outstanding) != 0 || outstanding < 0)
        return std::nullopt;
    return send_progress{info.tcpi_bytes_acked, static_cast<std::uint64_t>(outstanding)};
}

bool cap_send_buffer(int fd, int bytes)
{
    return ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) == 0;
}

#else

std::optional<send_progress> read_send_progress(int)
{
    return std::nullopt;
}

bool cap_send_buffer(int, int)
{
    return false;
}

#endif

} // namespace raftkv::server
