// Fuzz target: the TCP transport's frame decoder (raftkv/asio/codec.hpp), what a node does
// with the bytes a peer sends after its greeting.
//
// The input is a frame: a 10-byte header, then the payload. The header goes through
// parse_frame_header(); the bytes after it through decode_payload() whatever the header
// said, so that payloads are explored without a valid header too. Properties:
// - neither function crashes, throws or allocates without bound (libFuzzer's malloc limit);
// - a payload that decodes re-encodes to the same bytes: the encoding is canonical
//   (every bool, enum, count and length has exactly one encoding), so a frame that a
//   node accepts means one thing, and frame_size() is exact for what decode returns.

#include "check.hpp"

#include <raftkv/asio/codec.hpp>

#include <span>
#include <string>
#include <string_view>
#include <system_error>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace raftkv::asio;
    const std::string_view input = raftkv::fuzz::as_chars(data, size);
    if (input.size() < frame_header_size)
        return 0;

    std::error_code ec;
    const std::size_t length =
        parse_frame_header(std::span<const char, frame_header_size>(input.data(), frame_header_size),
                           default_max_frame_bytes, ec);
    FUZZ_CHECK(!ec || length == 0);
    FUZZ_CHECK(ec || length + frame_header_size <= default_max_frame_bytes);

    // A receiver reads exactly `length` bytes after a valid header; without one, the rest.
    std::string_view payload = input.substr(frame_header_size);
    if (!ec && length < payload.size())
        payload = payload.substr(0, length);
    const auto batch = decode_payload(payload);
    if (!batch)
        return 0;

    const std::string frame = encode_frame(*batch);
    FUZZ_CHECK(frame.size() == frame_size(*batch));
    FUZZ_CHECK(frame.size() == frame_header_size + payload.size());
    FUZZ_CHECK(std::string_view(frame).substr(frame_header_size) == payload);
    std::size_t sum = frame_header_size + 8;
    for (const raftkv::message& m : *batch)
        sum += encoded_size(m);
    FUZZ_CHECK(sum == frame.size());

    // What encode_frame() writes is accepted by the header check as the same length.
    const std::size_t again =
        parse_frame_header(std::span<const char, frame_header_size>(frame.data(), frame_header_size),
                           default_max_frame_bytes, ec);
    FUZZ_CHECK(!ec && again == payload.size());
    return 0;
}
