#ifndef RAFTKV_WAL_DETAIL_FORMAT_HPP
#define RAFTKV_WAL_DETAIL_FORMAT_HPP

// The on-disk format of the write-ahead log (docs/wal.md has the picture).
//
// A segment file starts with a 16-byte header (magic, version, checksum), then holds
// groups at 8-byte aligned offsets. A group is what one background write made durable
// with one fdatasync: a 32-byte header (magic, payload length, the segment's sequence
// number, the group's own offset, the payload's CRC-32C, the header's CRC-32C) and a
// payload of records, padded with zeros to 8 bytes. Records are an entry (index, term,
// type, data), a compaction (the log now starts after index, term, under a configuration)
// or a snapshot install (every entry dropped; the log restarts after index, term, under a
// configuration). An entry whose index is at or before the last one replaces the suffix
// from there (a conflicting suffix truncated). All integers are little-endian.
//
// The segment header's version says how its records are laid out: in version 2 the
// compaction and snapshot records end with the configuration (a u32 length and
// encode_membership()); version 1 has no configuration, which reads as the empty one.
// Segments of both versions are read; only version 2 is written.

#include <raftkv/membership.hpp>
#include <raftkv/types.hpp>
#include <raftkv/wal/detail/crc32c.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace raftkv::wal::detail {

inline constexpr std::uint64_t segment_magic = 0x6c77766b74666172; // "raftkvwl"
inline constexpr std::uint32_t format_version = 2;
/// The oldest segment version this code reads.
inline constexpr std::uint32_t oldest_format_version = 1;
inline constexpr std::size_t segment_header_size = 16;
inline constexpr std::uint32_t group_magic = 0x31475752; // "RWG1"
inline constexpr std::size_t group_header_size = 32;
inline constexpr std::size_t group_alignment = 8;

enum class record_kind : std::uint8_t { entry = 1, compact = 2, snapshot = 3 };

inline constexpr std::size_t entry_record_overhead = 1 + 8 + 8 + 1 + 4;
/// A version-1 compaction or snapshot record: kind, index, term.
inline constexpr std::size_t v1_base_record_size = 1 + 8 + 8;
/// A version-2 compaction or snapshot record without its configuration's bytes: kind,
/// index, term, configuration length.
inline constexpr std::size_t base_record_overhead = 1 + 8 + 8 + 4;

inline void put_u32(char* p, std::uint32_t v) noexcept
{
    for (int k = 0; k < 4; ++k)
        p[k] = static_cast<char>((v >> (8 * k)) & 0xff);
}
inline void put_u64(char* p, std::uint64_t v) noexcept
{
    for (int k = 0; k < 8; ++k)
        p[k] = static_cast<char>((v >> (8 * k)) & 0xff);
}
inline std::uint32_t get_u32(const char* p) noexcept
{
    std::uint32_t v = 0;
    for (int k = 3; k >= 0; --k)
        v = (v << 8) | static_cast<unsigned char>(p[k]);
    return v;
}
inline std::uint64_t get_u64(const char* p) noexcept
{
    std::uint64_t v = 0;
    for (int k = 7; k >= 0; --k)
        v = (v << 8) | static_cast<unsigned char>(p[k]);
    return v;
}

inline std::size_t align_up(std::size_t n) noexcept
{
    return (n + group_alignment - 1) & ~(group_alignment - 1);
}

/// Appends an entry record to `out`.
inline void put_entry_record(std::string& out, const log_entry& e)
{
    const std::size_t at = out.size();
    out.resize(at + entry_record_overhead);
    char* p = out.data() + at;
    p[0] = static_cast<char>(record_kind::entry);
    put_u64(p + 1, e.index);
    put_u64(p + 9, e.term);
    p[17] = static_cast<char>(e.type);
    put_u32(p + 18, static_cast<std::uint32_t>(e.data.size()));
    out.append(e.data);
}

/// Appends a compaction or snapshot record (version 2) to `out`; `members` is
/// encode_membership() of the configuration at `index`.
inline void put_base_record(std::string& out, record_kind kind, index_t index, term_t term,
                            std::string_view members)
{
    const std::size_t at = out.size();
    out.resize(at + base_record_overhead);
    char* p = out.data() + at;
    p[0] = static_cast<char>(kind);
    put_u64(p + 1, index);
    put_u64(p + 9, term);
    put_u32(p + 17, static_cast<std::uint32_t>(members.size()));
    out.append(members);
}

/// The 16-byte header that starts every segment file.
inline std::string segment_header()
{
    std::string h(segment_header_size, '\0');
    put_u64(h.data(), segment_magic);
    put_u32(h.data() + 8, format_version);
    put_u32(h.data() + 12, crc32c(h.data(), 12));
    return h;
}

/// The version of the segment header `h` (at least segment_header_size bytes), or 0 when
/// it is not a segment header of a version this code reads.
inline std::uint32_t segment_version(const char* h) noexcept
{
    const std::uint32_t version = get_u32(h + 8);
    if (get_u64(h) != segment_magic || get_u32(h + 12) != crc32c(h, 12) || version < oldest_format_version ||
        version > format_version)
        return 0;
    return version;
}

/// Fills the group header at the start of `group` (group_header_size bytes reserved, the
/// payload after them, padded) for a group written at `offset` of segment `segment`.
inline void seal_group(std::string& group, std::uint64_t segment, std::uint64_t offset)
{
    const std::size_t payload = group.size() - group_header_size;
    group.resize(align_up(group.size()), '\0');
    char* h = group.data();
    put_u32(h, group_magic);
    put_u32(h + 4, static_cast<std::uint32_t>(payload));
    put_u64(h + 8, segment);
    put_u64(h + 16, offset);
    put_u32(h + 24, crc32c(h + group_header_size, payload));
    put_u32(h + 28, crc32c(h, 28));
}

/// What lies at an offset of a segment.
enum class group_state {
    valid,   ///< a whole group whose checksums match
    end,     ///< zeros: nothing was ever written here
    damaged, ///< anything else: torn by a crash mid-write, or corrupted
};

/// Looks at the group at `offset` of `file` (the whole segment, segment number `segment`).
/// For a valid group, sets `payload` to its records and `next` to the offset after it.
inline group_state read_group(std::string_view file, std::uint64_t segment, std::size_t offset,
                              std::string_view& payload, std::size_t& next) noexcept
{
    if (offset + group_header_size > file.size()) {
        for (std::size_t i = offset; i < file.size(); ++i)
            if (file[i] != '\0')
                return group_state::damaged;
        return group_state::end;
    }
    const char* h = file.data() + offset;
    bool zero = true;
    for (std::size_t i = 0; i < group_header_size && zero; ++i)
        zero = h[i] == '\0';
    if (zero)
        return group_state::end;
    if (get_u32(h) != group_magic || get_u32(h + 28) != crc32c(h, 28) || get_u64(h + 8) != segment ||
        get_u64(h + 16) != offset)
        return group_state::damaged;
    const std::size_t length = get_u32(h + 4);
    if (length > file.size() - offset - group_header_size)
        return group_state::damaged;
    if (get_u32(h + 24) != crc32c(h + group_header_size, length))
        return group_state::damaged;
    payload = file.substr(offset + group_header_size, length);
    next = offset + align_up(group_header_size + length);
    return group_state::valid;
}

/// One decoded record. For a base record (compact, snapshot), only the entry's index and
/// term are set, and `members` is the configuration at that index.
struct record {
    record_kind kind{};
    log_entry entry;
    membership members;
};

/// Decodes the record at the start of `in`, laid out as in a segment of version `version`,
/// and removes it from `in`. Returns nullopt when the bytes are not a well-formed record
/// (the group's checksum matched, so only a bug or a forged file gets here).
inline std::optional<record> take_record(std::string_view& in, std::uint32_t version)
{
    if (in.empty())
        return std::nullopt;
    record r;
    r.kind = static_cast<record_kind>(in[0]);
    switch (r.kind) {
    case record_kind::entry: {
        if (in.size() < entry_record_overhead)
            return std::nullopt;
        const std::size_t length = get_u32(in.data() + 18);
        if (in.size() - entry_record_overhead < length || static_cast<std::uint8_t>(in[17]) > 2)
            return std::nullopt;
        r.entry.index = get_u64(in.data() + 1);
        r.entry.term = get_u64(in.data() + 9);
        r.entry.type = static_cast<entry_type>(in[17]);
        r.entry.data.assign(in.data() + entry_record_overhead, length);
        in.remove_prefix(entry_record_overhead + length);
        return r;
    }
    case record_kind::compact:
    case record_kind::snapshot: {
        if (version == 1) {
            if (in.size() < v1_base_record_size)
                return std::nullopt;
            r.entry.index = get_u64(in.data() + 1);
            r.entry.term = get_u64(in.data() + 9);
            in.remove_prefix(v1_base_record_size);
            return r;
        }
        if (in.size() < base_record_overhead)
            return std::nullopt;
        const std::size_t length = get_u32(in.data() + 17);
        if (in.size() - base_record_overhead < length)
            return std::nullopt;
        std::optional<membership> members = decode_membership(in.substr(base_record_overhead, length));
        if (!members)
            return std::nullopt;
        r.entry.index = get_u64(in.data() + 1);
        r.entry.term = get_u64(in.data() + 9);
        r.members = std::move(*members);
        in.remove_prefix(base_record_overhead + length);
        return r;
    }
    }
    return std::nullopt;
}

} // namespace raftkv::wal::detail

#endif
