#ifndef RAFTKV_ASIO_IMPL_CODEC_IPP
#define RAFTKV_ASIO_IMPL_CODEC_IPP

// The payload codec: non-intrusive Boost.Serialization functions for every message
// type, run through binary archives. Compiled once, into raftkv::asio (see src.ipp).
//
// The archives only move fixed-width integers and raw bytes; everything an attacker
// controls is checked here before it is used:
// - bool and entry_type travel as one byte and are range-checked on load (Boost's own
//   bool load asserts and then reads an invalid bool, which is UB);
// - the variant travels as a one-byte index, then the alternative (Boost 1.81's
//   variant.hpp handles boost::variant only), and the index is range-checked;
// - strings and vectors (entries, commands) travel as a u64 count, then the elements,
//   and a count is refused before anything is allocated when the bytes left cannot hold
//   that many elements (Boost's own string and vector loads resize first).
// Every class is `object_serializable` and `track_never`, so the archive writes no class
// ids or versions: the frame header's version is the only one.

#include <raftkv/asio/codec.hpp>
#include <raftkv/membership.hpp>

#include <boost/archive/basic_archive.hpp>
#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/level.hpp>
#include <boost/serialization/tracking.hpp>

#include <bit>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <streambuf>
#include <utility>
#include <variant>

static_assert(std::endian::native == std::endian::little,
              "the raftkv wire payload is the host's binary archive, specified as little-endian");

namespace raftkv::asio::detail {

/// Thrown by the load functions below; decode_payload turns it into std::nullopt.
struct malformed_payload {};

/// Appends everything written through it to the std::string it is pointed at.
class string_sink final : public std::streambuf {
public:
    void point_at(std::string& out) noexcept { out_ = &out; }

protected:
    std::streamsize xsputn(const char* s, std::streamsize n) override
    {
        out_->append(s, static_cast<std::size_t>(n));
        return n;
    }
    int_type overflow(int_type c) override
    {
        if (!traits_type::eq_int_type(c, traits_type::eof()))
            out_->push_back(traits_type::to_char_type(c));
        return traits_type::not_eof(c);
    }

private:
    std::string* out_ = nullptr;
};

/// Reads from a byte range it does not own, and says how many bytes are left.
class payload_source final : public std::streambuf {
public:
    void point_at(std::string_view bytes) noexcept
    {
        // The get area is only read from; std::streambuf just spells it `char*`.
        char* begin = const_cast<char*>(bytes.data());
        setg(begin, begin, begin + bytes.size());
    }
    std::size_t remaining() const noexcept { return static_cast<std::size_t>(egptr() - gptr()); }
};

/// Lets the load functions reach the payload_source of the archive they read from,
/// through Boost.Serialization's helper support.
struct source_helper {
    const payload_source* source = nullptr;
};
inline char source_helper_key;

template <class Archive>
std::size_t bytes_left(Archive& ar)
{
    return ar.template get_helper<source_helper>(&source_helper_key).source->remaining();
}

// The smallest encodings, used to bound counts read from the wire.
inline constexpr std::size_t min_entry_bytes = 8 + 8 + 1 + 8;   // term, index, type, size
inline constexpr std::size_t min_message_bytes = 8 + 8 + 8 + 1; // from, to, term, body index

/// Saves or loads each of `fs`, in order.
template <class Archive, class... Fields>
void fields(Archive& ar, Fields&... fs)
{
    ((ar & fs), ...);
}

/// Reads a u64 count of elements that each take at least `min_bytes`.
template <class Archive>
std::size_t load_count(Archive& ar, std::size_t min_bytes)
{
    std::uint64_t n = 0;
    ar >> n;
    if (n > bytes_left(ar) / min_bytes)
        throw malformed_payload{};
    return static_cast<std::size_t>(n);
}

template <class Archive>
void serialize_bool(Archive& ar, bool& b)
{
    if constexpr (Archive::is_saving::value) {
        const std::uint8_t byte = b ? 1 : 0;
        ar << byte;
    } else {
        std::uint8_t byte = 0;
        ar >> byte;
        if (byte > 1)
            throw malformed_payload{};
        b = byte == 1;
    }
}

template <class Archive>
void serialize_entry_type(Archive& ar, entry_type& t)
{
    if constexpr (Archive::is_saving::value) {
        const auto byte = static_cast<std::uint8_t>(t);
        ar << byte;
    } else {
        std::uint8_t byte = 0;
        ar >> byte;
        if (byte > static_cast<std::uint8_t>(entry_type::config))
            throw malformed_payload{};
        t = static_cast<entry_type>(byte);
    }
}

template <class Archive>
void serialize_bytes(Archive& ar, std::string& s)
{
    if constexpr (Archive::is_saving::value) {
        const std::uint64_t n = s.size();
        ar << n;
        ar.save_binary(s.data(), s.size());
    } else {
        s.resize(load_count(ar, 1));
        ar.load_binary(s.data(), s.size());
    }
}

template <class Archive>
void serialize_entries(Archive& ar, std::vector<log_entry>& es)
{
    if constexpr (Archive::is_saving::value) {
        const std::uint64_t n = es.size();
        ar << n;
        for (const log_entry& e : es)
            ar << e;
    } else {
        es.resize(load_count(ar, min_entry_bytes));
        for (log_entry& e : es)
            ar >> e;
    }
}

template <class Archive>
void serialize_commands(Archive& ar, std::vector<std::string>& cs)
{
    if constexpr (Archive::is_saving::value) {
        const std::uint64_t n = cs.size();
        ar << n;
        for (std::string& c : cs)
            serialize_bytes(ar, c);
    } else {
        cs.resize(load_count(ar, 8));
        for (std::string& c : cs)
            serialize_bytes(ar, c);
    }
}

/// Loads alternative `index` of a message_body in place.
template <class Archive, std::size_t... I>
void load_body(Archive& ar, message_body& body, std::size_t index, std::index_sequence<I...>)
{
    const bool known = ((index == I ? (ar >> body.emplace<I>(), true) : false) || ...);
    if (!known)
        throw malformed_payload{};
}

template <class Archive>
void serialize_body(Archive& ar, message_body& body)
{
    static_assert(std::variant_size_v<message_body> <= std::numeric_limits<std::uint8_t>::max());
    if constexpr (Archive::is_saving::value) {
        const auto index = static_cast<std::uint8_t>(body.index());
        ar << index;
        std::visit([&ar](const auto& alternative) { ar << alternative; }, body);
    } else {
        std::uint8_t index = 0;
        ar >> index;
        load_body(ar, body, index, std::make_index_sequence<std::variant_size_v<message_body>>{});
    }
}

} // namespace raftkv::asio::detail

namespace boost::serialization {

template <class Archive>
void serialize(Archive& ar, raftkv::log_entry& e, unsigned)
{
    raftkv::asio::detail::fields(ar, e.term, e.index);
    raftkv::asio::detail::serialize_entry_type(ar, e.type);
    raftkv::asio::detail::serialize_bytes(ar, e.data);
}

template <class Archive>
void serialize(Archive& ar, raftkv::vote_request& m, unsigned)
{
    raftkv::asio::detail::fields(ar, m.last_log_index, m.last_log_term);
    raftkv::asio::detail::serialize_bool(ar, m.pre_vote);
    raftkv::asio::detail::serialize_bool(ar, m.transfer);
}

template <class Archive>
void serialize(Archive& ar, raftkv::vote_response& m, unsigned)
{
    raftkv::asio::detail::serialize_bool(ar, m.granted);
    raftkv::asio::detail::serialize_bool(ar, m.pre_vote);
}

template <class Archive>
void serialize(Archive& ar, raftkv::append_request& m, unsigned)
{
    raftkv::asio::detail::fields(ar, m.prev_index, m.prev_term, m.commit);
    raftkv::asio::detail::serialize_entries(ar, m.entries);
}

template <class Archive>
void serialize(Archive& ar, raftkv::append_response& m, unsigned)
{
    raftkv::asio::detail::serialize_bool(ar, m.success);
    raftkv::asio::detail::fields(ar, m.match_index, m.reject_index, m.conflict_index, m.conflict_term);
    raftkv::asio::detail::serialize_bool(ar, m.snapshot_needed);
}

template <class Archive>
void serialize(Archive& ar, raftkv::heartbeat& m, unsigned)
{
    raftkv::asio::detail::fields(ar, m.commit, m.read_seq);
}

template <class Archive>
void serialize(Archive& ar, raftkv::heartbeat_response& m, unsigned)
{
    raftkv::asio::detail::fields(ar, m.read_seq);
}

template <class Archive>
void serialize(Archive&, raftkv::timeout_now&, unsigned)
{
}

template <class Archive>
void serialize(Archive& ar, raftkv::snapshot_meta& meta, unsigned)
{
    raftkv::asio::detail::fields(ar, meta.index, meta.term);
    // The configuration travels in its own encoding (raftkv/membership.hpp), which checks
    // every count and length against the bytes it was given.
    std::string members;
    if constexpr (!Archive::is_loading::value)
        members = raftkv::encode_membership(meta.members);
    raftkv::asio::detail::serialize_bytes(ar, members);
    if constexpr (Archive::is_loading::value) {
        auto decoded = raftkv::decode_membership(members);
        if (!decoded)
            throw raftkv::asio::detail::malformed_payload{};
        meta.members = std::move(*decoded);
    }
}

template <class Archive>
void serialize(Archive& ar, raftkv::install_snapshot_request& m, unsigned)
{
    raftkv::asio::detail::fields(ar, m.meta, m.transfer, m.offset);
    raftkv::asio::detail::serialize_bytes(ar, m.data);
    raftkv::asio::detail::serialize_bool(ar, m.done);
}

template <class Archive>
void serialize(Archive& ar, raftkv::install_snapshot_response& m, unsigned)
{
    raftkv::asio::detail::fields(ar, m.transfer, m.index, m.offset);
    raftkv::asio::detail::serialize_bool(ar, m.done);
}

template <class Archive>
void serialize(Archive& ar, raftkv::read_index_request& m, unsigned)
{
    raftkv::asio::detail::fields(ar, m.request);
}

template <class Archive>
void serialize(Archive& ar, raftkv::read_index_response& m, unsigned)
{
    raftkv::asio::detail::fields(ar, m.request, m.index);
    raftkv::asio::detail::serialize_bool(ar, m.success);
}

template <class Archive>
void serialize(Archive& ar, raftkv::forward_request& m, unsigned)
{
    raftkv::asio::detail::fields(ar, m.id, m.nonce, m.seq);
    raftkv::asio::detail::serialize_commands(ar, m.commands);
}

template <class Archive>
void serialize(Archive& ar, raftkv::forward_response& m, unsigned)
{
    raftkv::asio::detail::fields(ar, m.id, m.index, m.error);
}

template <class Archive>
void serialize(Archive& ar, raftkv::message& m, unsigned)
{
    raftkv::asio::detail::fields(ar, m.from, m.to, m.term);
    raftkv::asio::detail::serialize_body(ar, m.body);
}

} // namespace boost::serialization

#define RAFTKV_ASIO_WIRE_TYPE(T)                                                                             \
    BOOST_CLASS_IMPLEMENTATION(T, boost::serialization::object_serializable)                                 \
    BOOST_CLASS_TRACKING(T, boost::serialization::track_never)

RAFTKV_ASIO_WIRE_TYPE(raftkv::log_entry)
RAFTKV_ASIO_WIRE_TYPE(raftkv::vote_request)
RAFTKV_ASIO_WIRE_TYPE(raftkv::vote_response)
RAFTKV_ASIO_WIRE_TYPE(raftkv::append_request)
RAFTKV_ASIO_WIRE_TYPE(raftkv::append_response)
RAFTKV_ASIO_WIRE_TYPE(raftkv::heartbeat)
RAFTKV_ASIO_WIRE_TYPE(raftkv::heartbeat_response)
RAFTKV_ASIO_WIRE_TYPE(raftkv::timeout_now)
RAFTKV_ASIO_WIRE_TYPE(raftkv::snapshot_meta)
RAFTKV_ASIO_WIRE_TYPE(raftkv::install_snapshot_request)
RAFTKV_ASIO_WIRE_TYPE(raftkv::install_snapshot_response)
RAFTKV_ASIO_WIRE_TYPE(raftkv::read_index_request)
RAFTKV_ASIO_WIRE_TYPE(raftkv::read_index_response)
RAFTKV_ASIO_WIRE_TYPE(raftkv::forward_request)
RAFTKV_ASIO_WIRE_TYPE(raftkv::forward_response)
RAFTKV_ASIO_WIRE_TYPE(raftkv::message)

#undef RAFTKV_ASIO_WIRE_TYPE

namespace raftkv::asio {

namespace detail {

inline constexpr unsigned archive_flags =
    boost::archive::no_header | boost::archive::no_codecvt | boost::archive::no_tracking;

// One output and one input archive per thread, kept from frame to frame, each over a stream
// buffer that is pointed at the next frame's bytes. Constructing a Boost binary archive builds
// a std::locale with a codecvt facet even under no_codecvt (and destroying it frees it again),
// which cost 2-3% of the servers' CPU under writes, more than the encoding of a small frame.
// Keeping the archives is sound because they carry nothing from one object to the next:
// every type here is object_serializable and track_never, so they neither write nor read class
// information and track no objects; a load that throws midway leaves nothing behind either.
struct frame_writer {
    string_sink sink;
    boost::archive::binary_oarchive ar{sink, archive_flags};
};
struct frame_reader {
    payload_source source;
    boost::archive::binary_iarchive ar{source, archive_flags};
    frame_reader() { ar.get_helper<source_helper>(&source_helper_key).source = &source; }
};
inline frame_writer& thread_frame_writer()
{
    thread_local frame_writer writer;
    return writer;
}
inline frame_reader& thread_frame_reader()
{
    thread_local frame_reader reader;
    return reader;
}

class frame_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "raftkv.frame"; }
    std::string message(int ev) const override
    {
        switch (static_cast<frame_errc>(ev)) {
        case frame_errc::bad_magic: return "bad frame magic";
        case frame_errc::unsupported_version: return "unsupported frame version";
        case frame_errc::frame_too_large: return "frame too large";
        }
        return "unknown frame error";
    }
};

inline std::size_t body_size(const vote_request&) noexcept
{
    return 8 + 8 + 1 + 1;
}
inline std::size_t body_size(const vote_response&) noexcept
{
    return 1 + 1;
}
inline std::size_t body_size(const append_request& m) noexcept
{
    std::size_t n = 8 + 8 + 8 + 8;
    for (const log_entry& e : m.entries)
        n += min_entry_bytes + e.data.size();
    return n;
}
inline std::size_t body_size(const append_response&) noexcept
{
    return 1 + 8 * 4 + 1;
}
inline std::size_t body_size(const heartbeat&) noexcept
{
    return 8 + 8;
}
inline std::size_t body_size(const heartbeat_response&) noexcept
{
    return 8;
}
inline std::size_t body_size(const timeout_now&) noexcept
{
    return 0;
}
inline std::size_t meta_size(const snapshot_meta& meta) noexcept
{
    return 8 + 8 + 8 + encode_membership(meta.members).size();
}
inline std::size_t body_size(const install_snapshot_request& m) noexcept
{
    return meta_size(m.meta) + 8 + 8 + 8 + m.data.size() + 1;
}
inline std::size_t body_size(const install_snapshot_response&) noexcept
{
    return 8 + 8 + 8 + 1;
}
inline std::size_t body_size(const read_index_request&) noexcept
{
    return 8;
}
inline std::size_t body_size(const read_index_response&) noexcept
{
    return 8 + 8 + 1;
}
inline std::size_t body_size(const forward_request& m) noexcept
{
    std::size_t n = 8 * 3 + 8;
    for (const std::string& c : m.commands)
        n += 8 + c.size();
    return n;
}
inline std::size_t body_size(const forward_response&) noexcept
{
    return 8 + 8 + 1;
}

inline void put_be(std::string& out, std::uint64_t v, std::size_t bytes)
{
    for (std::size_t i = bytes; i-- > 0;)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

inline std::uint64_t get_be(const char* p, std::size_t bytes) noexcept
{
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < bytes; ++i)
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

} // namespace detail

const std::error_category& frame_category() noexcept
{
    static const detail::frame_category_impl instance;
    return instance;
}

std::size_t encoded_size(const message& m) noexcept
{
    return detail::min_message_bytes +
           std::visit([](const auto& body) { return detail::body_size(body); }, m.body);
}

std::size_t frame_size(std::span<const message> batch) noexcept
{
    std::size_t n = frame_header_size + 8; // header, message count
    for (const message& m : batch)
        n += encoded_size(m);
    return n;
}

void encode_frame(std::span<const message> batch, std::string& out)
{
    const std::size_t payload = frame_size(batch) - frame_header_size;
    if (payload > std::numeric_limits<std::uint32_t>::max())
        throw std::length_error("raftkv: message batch too large for one frame");
    out.reserve(out.size() + frame_header_size + payload);
    detail::put_be(out, frame_magic, 4);
    detail::put_be(out, frame_version, 2);
    detail::put_be(out, payload, 4);

    detail::frame_writer& writer = detail::thread_frame_writer();
    writer.sink.point_at(out);
    boost::archive::binary_oarchive& ar = writer.ar;
    const std::uint64_t count = batch.size();
    ar << count;
    for (const message& m : batch)
        ar << m;
}

std::string encode_frame(std::span<const message> batch)
{
    std::string out;
    encode_frame(batch, out);
    return out;
}

std::size_t parse_frame_header(std::span<const char, frame_header_size> header, std::size_t max_frame_bytes,
                               std::error_code& ec) noexcept
{
    ec.clear();
    if (detail::get_be(header.data(), 4) != frame_magic)
        ec = frame_errc::bad_magic;
    else if (detail::get_be(header.data() + 4, 2) != frame_version)
        ec = frame_errc::unsupported_version;
    else if (const std::size_t payload = detail::get_be(header.data() + 6, 4);
             payload > max_frame_bytes || max_frame_bytes - payload < frame_header_size)
        ec = frame_errc::frame_too_large;
    else
        return payload;
    return 0;
}

std::optional<std::vector<message>> decode_payload(std::string_view payload) noexcept
{
    try {
        detail::frame_reader& reader = detail::thread_frame_reader();
        detail::payload_source& source = reader.source;
        source.point_at(payload);
        boost::archive::binary_iarchive& ar = reader.ar;

        std::vector<message> batch(detail::load_count(ar, detail::min_message_bytes));
        for (message& m : batch)
            ar >> m;
        if (source.remaining() != 0)
            return std::nullopt;
        return batch;
    } catch (...) {
        // Archive errors (truncation), malformed_payload, and bad_alloc all mean the
        // same to the caller: this payload cannot be used.
        return std::nullopt;
    }
}

} // namespace raftkv::asio

#endif
