#ifndef RAFTKV_SERVER_SEND_PROGRESS_HPP
#define RAFTKV_SERVER_SEND_PROGRESS_HPP

// What the kernel knows about how far the peer of a TCP socket has taken what was written
// to it: enough to tell a client that reads slowly from one that stopped reading, whatever
// runs over the socket (plain HTTP or TLS).
//
//     if (std::optional<send_progress> p = read_send_progress(socket.native_handle()))
//         stalled = p->outstanding != 0 && p->acked == last_acked;

#include <cstdint>
#include <optional>

namespace raftkv::server {

struct send_progress {
    /// The bytes the peer has acknowledged since the connection opened (TCP_INFO's
    /// tcpi_bytes_acked): they reached its receive buffer. Grows while the peer takes bytes.
    std::uint64_t acked = 0;
    /// The bytes written to the socket that the peer has not acknowledged yet, sent or not
    /// (SIOCOUTQ).
    std::uint64_t outstanding = 0;
};

/// The send progress of the TCP socket `fd`; nullopt when the kernel cannot say (not Linux,
/// a kernel before 4.1, not a TCP socket, a closed descriptor).
std::optional<send_progress> read_send_progress(int fd);

/// Caps the kernel's send buffer of socket `fd` at about `bytes` (Linux doubles it for its
/// bookkeeping and stops tuning it automatically). False if the kernel refused.
bool cap_send_buffer(int fd, int bytes);

} // namespace raftkv::server

#endif
