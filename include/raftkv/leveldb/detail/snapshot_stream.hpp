#ifndef RAFTKV_LEVELDB_DETAIL_SNAPSHOT_STREAM_HPP
#define RAFTKV_LEVELDB_DETAIL_SNAPSHOT_STREAM_HPP

// The byte stream of a LevelDB kv_state_machine snapshot (layout in docs/leveldb.md):
//
//   header   "RKVSNAP", version 0x04, the applied index (8 bytes big-endian)
//   records  kind ('k' a user key, 'm' a meta record, 's' a client session), varint key
//            size, varint value size, key, value; a user key's value is its version (a
//            varint) then its value; a session's key and value are those of
//            raftkv::kv_session_table::encode_id() and encode()
//   trailer  'e', the record count (8 bytes), FNV-1a-64 of every byte before the trailer
//            (8 bytes)
//
// Older streams are still decoded: version 0x03's sessions recorded no request
// fingerprints (their results match any request: raftkv/kv_sessions.hpp), version 0x02 has
// no session records (a restore leaves no sessions), version 0x01 neither, and its user
// values have no versions (its keys are restored at version 0). Version 0x04 exists so
// that a build which reads 0x03 at most refuses a stream whose sessions it cannot decode,
// with a message that says so.
//
// Every part is self-delimiting, so a receiver decodes the stream however it was cut into
// chunks; the trailer makes a stream that lost, repeated or damaged a piece fail to decode.

#include <raftkv/leveldb/detail/coding.hpp>
#include <raftkv/types.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>

namespace raftkv::leveldb::detail {

enum class snapshot_record : char { user = 'k', meta = 'm', session = 's' };

inline constexpr std::string_view snapshot_magic = "RKVSNAP";
inline constexpr char snapshot_version = 4;
/// The first stream version with session records.
inline constexpr char snapshot_version_sessions = 3;
/// The oldest stream version snapshot_decoder reads.
inline constexpr char snapshot_version_min = 1;
inline constexpr char snapshot_end = 'e';
inline constexpr std::size_t snapshot_header_size = 8 + u64_size;
inline constexpr std::size_t snapshot_trailer_size = 1 + 2 * u64_size;

/// A snapshot stream that does not decode: the message says why.
class snapshot_stream_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Writes a snapshot stream in pieces: header(), record()s, trailer(), each appended to a
/// chunk the caller owns.
class snapshot_encoder {
public:
    /// Appends the header of a snapshot of the state at applied index `index`.
    void header(std::string& out, index_t index)
    {
        const std::size_t start = out.size();
        out.append(snapshot_magic);
        out.push_back(snapshot_version);
        put_u64_be(out, index);
        hash_.update(std::string_view(out).substr(start));
    }

    /// How many bytes record(out, kind, key, value) appends.
    static std::size_t record_size(std::string_view key, std::string_view value) noexcept
    {
        return 1 + varint64_size(key.size()) + varint64_size(value.size()) + key.size() + value.size();
    }

    void record(std::string& out, snapshot_record kind, std::string_view key, std::string_view value)
    {
        const std::size_t start = out.size();
        out.push_back(static_cast<char>(kind));
        put_varint64(out, key.size());
        put_varint64(out, value.size());
        out.append(key);
        out.append(value);
        hash_.update(std::string_view(out).substr(start));
        ++records_;
    }

    void trailer(std::string& out) const
    {
        out.push_back(snapshot_end);
        put_u64_be(out, records_);
        put_u64_be(out, hash_.value());
    }

private:
    fnv1a64 hash_;
    std::uint64_t records_ = 0;
};

/// Reads a snapshot stream fed in chunks cut anywhere, holding back an incomplete record
/// until the rest arrives.
class snapshot_decoder {
public:
    /// Expects the snapshot of the state at applied index `index`.
    explicit snapshot_decoder(index_t index) : index_(index) {}

    /// Decodes `data`, the next bytes of the stream, and calls
    /// `on_record(snapshot_record, std::string_view key, std::string_view value)` for each
    /// record it completes; the views last until that call returns. Throws
    /// snapshot_stream_error when the bytes are not a snapshot of the expected index.
    template <class OnRecord>
    void feed(std::string_view data, OnRecord&& on_record)
    {
        if (pending_.empty()) {
            const std::size_t pos = decode(data, on_record);
            pending_.assign(data.substr(pos));
        } else {
            // Appending keeps a record that spans many chunks linear in its size.
            pending_.append(data);
            pending_.erase(0, decode(pending_, on_record));
        }
    }

    /// The stream's version, once its header was decoded (0 before).
    int version() const noexcept { return version_; }

    /// Whether the whole stream, trailer included, was decoded.
    bool done() const noexcept { return state_ == state::done; }

    /// Why the stream is not done yet, for an error message.
    std::string missing() const
    {
        const std::string held = std::to_string(pending_.size()) + " bytes of an incomplete ";
        switch (state_) {
        case state::header: return held + "stream header";
        case state::records:
            return held + "record, or the trailer, after " + std::to_string(records_) + " records";
        case state::done: break;
        }
        return "nothing";
    }

private:
    enum class state { header, records, done };

    /// Decodes the complete parts at the start of `data`; returns the bytes they took.
    template <class OnRecord>
    std::size_t decode(std::string_view data, OnRecord& on_record)
    {
        std::size_t pos = 0;
        while (pos < data.size() && step(data, pos, on_record)) {
        }
        return pos;
    }

    /// Decodes one part at data[pos] and moves pos past it; returns false when the part
    /// is incomplete (pos unchanged).
    template <class OnRecord>
    bool step(std::string_view data, std::size_t& pos, OnRecord& on_record)
    {
        switch (state_) {
        case state::header: return decode_header(data, pos);
        case state::records:
            if (data[pos] == snapshot_end)
                return decode_trailer(data, pos);
            return decode_record(data, pos, on_record);
        case state::done: break;
        }
        throw snapshot_stream_error(std::to_string(data.size() - pos) +
                                    " bytes follow the end of the snapshot");
    }

    bool decode_header(std::string_view data, std::size_t& pos)
    {
        const std::string_view h = data.substr(pos);
        if (h.size() < snapshot_magic.size() ? h != snapshot_magic.substr(0, h.size())
                                             : !h.starts_with(snapshot_magic))
            throw snapshot_stream_error("not a raftkv kv_state_machine snapshot (no 'RKVSNAP' header)");
        if (h.size() < snapshot_header_size)
            return false;
        const char version = h[snapshot_magic.size()];
        if (version < snapshot_version_min || version > snapshot_version)
            throw snapshot_stream_error(
                "snapshot version " + std::to_string(static_cast<unsigned char>(version)) +
                "; this build reads versions " + std::to_string(snapshot_version_min) + " to " +
                std::to_string(snapshot_version));
        const index_t index = get_u64_be(h.substr(8));
        if (index != index_)
            throw snapshot_stream_error("the snapshot is of applied index " + std::to_string(index) +
                                        ", not the " + std::to_string(index_) + " announced");
        hash_.update(h.substr(0, snapshot_header_size));
        pos += snapshot_header_size;
        version_ = version;
        state_ = state::records;
        return true;
    }

    template <class OnRecord>
    bool decode_record(std::string_view data, std::size_t& pos, OnRecord& on_record)
    {
        const char kind = data[pos];
        if (kind != static_cast<char>(snapshot_record::user) &&
            kind != static_cast<char>(snapshot_record::meta) &&
            (kind != static_cast<char>(snapshot_record::session) || version_ < snapshot_version_sessions))
            throw snapshot_stream_error("record " + std::to_string(records_ + 1) + " has unknown kind " +
                                        std::to_string(static_cast<unsigned char>(kind)));
        std::size_t p = pos + 1;
        std::uint64_t key_size = 0;
        std::uint64_t value_size = 0;
        if (!read_size(data, p, key_size) || !read_size(data, p, value_size))
            return false;
        const std::size_t left = data.size() - p;
        if (key_size > left || value_size > left - key_size)
            return false;
        const std::string_view key = data.substr(p, key_size);
        const std::string_view value = data.substr(p + key_size, value_size);
        on_record(static_cast<snapshot_record>(kind), key, value);
        hash_.update(data.substr(pos, p + key_size + value_size - pos));
        pos = p + key_size + value_size;
        ++records_;
        return true;
    }

    bool read_size(std::string_view data, std::size_t& p, std::uint64_t& size) const
    {
        switch (get_varint64(data, p, size)) {
        case varint_status::ok:
            if (size > std::numeric_limits<std::size_t>::max() / 2)
                throw snapshot_stream_error("record " + std::to_string(records_ + 1) + " claims " +
                                            std::to_string(size) + " bytes");
            return true;
        case varint_status::incomplete: return false;
        case varint_status::malformed: break;
        }
        throw snapshot_stream_error("record " + std::to_string(records_ + 1) + " has a malformed size");
    }

    bool decode_trailer(std::string_view data, std::size_t& pos)
    {
        if (data.size() - pos < snapshot_trailer_size)
            return false;
        const std::uint64_t records = get_u64_be(data.substr(pos + 1));
        const std::uint64_t hash = get_u64_be(data.substr(pos + 1 + u64_size));
        if (records != records_)
            throw snapshot_stream_error("the snapshot ends after " + std::to_string(records_) +
                                        " records but its trailer counts " + std::to_string(records));
        if (hash != hash_.value())
            throw snapshot_stream_error("the snapshot's checksum does not match its bytes");
        pos += snapshot_trailer_size;
        state_ = state::done;
        return true;
    }

    index_t index_;
    int version_ = 0;
    state state_ = state::header;
    std::uint64_t records_ = 0;
    fnv1a64 hash_;
    /// The start of a part whose end has not arrived yet.
    std::string pending_;
};

} // namespace raftkv::leveldb::detail

#endif
