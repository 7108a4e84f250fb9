#ifndef RAFTKV_ASIO_CODEC_HPP
#define RAFTKV_ASIO_CODEC_HPP

// The wire format of the TCP transport: how a batch of raftkv::message becomes one
// frame of bytes and back. docs/transport.md describes the layout byte by byte.
//
// A frame is a 10-byte header followed by a payload:
//
//     [magic u32 = 0x52464B56 "RFKV"][version u16 = 3][payload length u32][payload]
//
// The header is big-endian. The payload is the batch, written with a Boost.Serialization
// binary archive; this header keeps Boost.Serialization out of the code that includes
// it (the archive code is compiled once, into the raftkv::asio library).
//
// Example: a round trip
//
//     using namespace raftkv::asio;
//     std::string frame = encode_frame(batch);
//     std::error_code ec;
//     std::size_t n = parse_frame_header(std::span<const char, frame_header_size>(frame.data(), 10),
//                                        default_max_frame_bytes, ec);
//     auto decoded = decode_payload(std::string_view(frame).substr(frame_header_size, n));
//
// Thread safety: every function here is a pure function of its arguments.

#include <raftkv/messages.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

namespace raftkv::asio {

/// "RFKV" in ASCII: the first four bytes of every frame.
inline constexpr std::uint32_t frame_magic = 0x52464B56;

/// The payload format this codec writes, and the only one it reads. Version 2 added the
/// install_snapshot messages and append_response::snapshot_needed; version 3 the
/// read_index messages of reads at followers and the forward messages of proposals made at
/// followers; version 4 whole configurations (learners, joint changes, member info) in
/// snapshot_meta. A frame of another version is refused with
/// frame_errc::unsupported_version.
inline constexpr std::uint16_t frame_version = 4;

/// magic (4 bytes) + version (2) + payload length (4).
inline constexpr std::size_t frame_header_size = 10;

/// The default limit on one frame, header included: 64 MiB. Far above a frame carrying
/// one default install_snapshot chunk (options::snapshot_chunk_bytes, 1 MiB, plus 92
/// bytes and 8 per member).
inline constexpr std::size_t default_max_frame_bytes = std::size_t{64} << 20;

/// Why a frame header was refused.
enum class frame_errc {
    /// The first four bytes are not "RFKV": the peer does not speak this protocol.
    bad_magic = 1,
    /// The peer speaks a version of the payload format this build cannot read.
    unsupported_version,
    /// The frame would exceed the receiver's max_frame_bytes.
    frame_too_large,
};

/// The category of every frame_errc.
const std::error_category& frame_category() noexcept;

inline std::error_code make_error_code(frame_errc e) noexcept
{
    return {static_cast<int>(e), frame_category()};
}

/// Appends to `out` one frame carrying every message of `batch`, in order. The frame is
/// exactly `frame_size(batch)` bytes, and `out` grows once.
/// Throws std::length_error when the payload would not fit the 32-bit length field.
void encode_frame(std::span<const message> batch, std::string& out);

/// Returns one frame carrying every message of `batch`, in order.
std::string encode_frame(std::span<const message> batch);

/// The exact number of bytes `m` adds to a frame's payload. Lets a sender cut batches to
/// a byte budget before encoding them.
std::size_t encoded_size(const message& m) noexcept;

/// The exact size of the frame `encode_frame(batch)` produces, header included.
std::size_t frame_size(std::span<const message> batch) noexcept;

/// Checks a frame header and returns the length of the payload that follows it.
/// On a bad magic, an unsupported version, or a frame (header included) larger than
/// `max_frame_bytes`, sets `ec` and returns 0; otherwise clears `ec`.
std::size_t parse_frame_header(std::span<const char, frame_header_size> header, std::size_t max_frame_bytes,
                               std::error_code& ec) noexcept;

/// Decodes a payload (the bytes after a frame header) into the batch it carries.
/// Returns std::nullopt when the payload is malformed in any way: truncated, trailing
/// bytes, an unknown message type, a bool or enum out of range, a count or length larger
/// than the bytes left. Never throws, and never allocates more than a small multiple of
/// `payload.size()`, whatever the bytes say.
std::optional<std::vector<message>> decode_payload(std::string_view payload) noexcept;

} // namespace raftkv::asio

template <>
struct std::is_error_code_enum<raftkv::asio::frame_errc> : std::true_type {
};

#endif
