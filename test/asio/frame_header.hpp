#ifndef RAFTKV_TEST_ASIO_FRAME_HEADER_HPP
#define RAFTKV_TEST_ASIO_FRAME_HEADER_HPP

#include <cstdint>
#include <string>

namespace raftkv::test {

/// A frame header written by hand, so tests can send headers the codec would never make:
/// magic (4 bytes), version (2) and payload length (4), all big-endian.
inline std::string frame_header(std::uint32_t magic, std::uint16_t version, std::uint32_t length)
{
    std::string h;
    for (int i = 3; i >= 0; --i)
        h.push_back(static_cast<char>((magic >> (8 * i)) & 0xFF));
    h.push_back(static_cast<char>(version >> 8));
    h.push_back(static_cast<char>(version & 0xFF));
    for (int i = 3; i >= 0; --i)
        h.push_back(static_cast<char>((length >> (8 * i)) & 0xFF));
    return h;
}

} // namespace raftkv::test

#endif
