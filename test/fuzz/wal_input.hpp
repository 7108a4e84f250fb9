#ifndef RAFTKV_TEST_FUZZ_WAL_INPUT_HPP
#define RAFTKV_TEST_FUZZ_WAL_INPUT_HPP

// How the wal_recovery fuzz target turns its input into a write-ahead log directory, and
// how the corpus generator writes such inputs.
//
// The first byte selects the form of the rest:
// - even: raw. The rest is the whole of segment 1 (wal-0000000000000001.log): a segment
//   the store wrote, damaged or cut by the fuzzer. Checksums make it hard for the fuzzer to
//   get past a group header this way, so this form explores torn and damaged data.
// - odd: structured. The rest is a list of commands, and the groups they add get valid
//   checksums, so the fuzzer reaches the records behind them:
//     'S' v        start the next segment file with a header of version v % 4 (0: a zeroed
//                  header, 3: a version this build does not read); bit 0x80 of v skips
//                  a sequence number (a missing segment)
//     'G' n1 n0 p  a group sealed around the n (big-endian u16) payload bytes p
//     'R' n1 n0 b  n raw bytes b, written as they are (torn or damaged data)
//     'H' b[64]    the hard state file
//   Anything else ends the list. Groups and raw bytes before the first 'S' go to segment 1.

#include <raftkv/wal/detail/crc32c.hpp>
#include <raftkv/wal/detail/format.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>

namespace raftkv::fuzz::wal_input {

/// The segment file name of sequence number `seq` (as raftkv::wal names them).
inline std::string segment_name(std::uint64_t seq)
{
    char name[32];
    std::snprintf(name, sizeof name, "wal-%016llx.log", static_cast<unsigned long long>(seq));
    return name;
}

inline void write_file(const std::filesystem::path& path, std::string_view bytes)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// A segment header of `version` (0: all zeros).
inline std::string segment_header(std::uint32_t version)
{
    std::string h(raftkv::wal::detail::segment_header_size, '\0');
    if (version == 0)
        return h;
    raftkv::wal::detail::put_u64(h.data(), raftkv::wal::detail::segment_magic);
    raftkv::wal::detail::put_u32(h.data() + 8, version);
    raftkv::wal::detail::put_u32(h.data() + 12, raftkv::wal::detail::crc32c(h.data(), 12));
    return h;
}

/// Writes the log directory `input` describes into `dir` (which exists and is empty).
inline void materialize(std::string_view input, const std::filesystem::path& dir)
{
    namespace d = raftkv::wal::detail;
    if (input.empty())
        return;
    // A store makes its hard state before any segment (an 'H' replaces it); without one, the
    // segments would be refused before they are read.
    write_file(dir / "hardstate", std::string(64, '\0'));
    const bool structured = (static_cast<unsigned char>(input[0]) & 1) != 0;
    input.remove_prefix(1);
    if (!structured) {
        write_file(dir / segment_name(1), input);
        return;
    }
    std::map<std::uint64_t, std::string> segments;
    std::uint64_t seq = 1;
    std::string* current = nullptr;
    const auto start = [&](std::uint64_t s, std::uint32_t version) {
        seq = s;
        current = &segments[seq];
        *current = segment_header(version);
    };
    const auto take_length = [&](std::size_t& n) {
        if (input.size() < 2)
            return false;
        n = static_cast<std::size_t>(static_cast<unsigned char>(input[0])) << 8 |
            static_cast<unsigned char>(input[1]);
        input.remove_prefix(2);
        n = std::min(n, input.size());
        return true;
    };
    while (!input.empty()) {
        const char op = input[0];
        input.remove_prefix(1);
        if (op == 'S') {
            if (input.empty())
                break;
            const auto v = static_cast<unsigned char>(input[0]);
            input.remove_prefix(1);
            start(current == nullptr ? 1 + ((v & 0x80) ? 1 : 0) : seq + 1 + ((v & 0x80) ? 1 : 0), v % 4);
        } else if (op == 'G' || op == 'R') {
            std::size_t n = 0;
            if (!take_length(n))
                break;
            if (current == nullptr)
                start(1, d::format_version);
            if (op == 'R') {
                current->append(input.substr(0, n));
            } else {
                std::string group(d::group_header_size, '\0');
                group.append(input.substr(0, n));
                const std::size_t offset = d::align_up(current->size());
                current->resize(offset, '\0');
                d::seal_group(group, seq, offset);
                current->append(group);
            }
            input.remove_prefix(n);
        } else if (op == 'H') {
            if (input.size() < 64)
                break;
            write_file(dir / "hardstate", input.substr(0, 64));
            input.remove_prefix(64);
        } else {
            break;
        }
    }
    for (const auto& [s, bytes] : segments)
        write_file(dir / segment_name(s), bytes);
}

} // namespace raftkv::fuzz::wal_input

#endif
