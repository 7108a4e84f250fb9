#ifndef RAFTKV_LEVELDB_DETAIL_DATABASE_HPP
#define RAFTKV_LEVELDB_DETAIL_DATABASE_HPP

// Opening a LevelDB database for one raftkv store, and turning LevelDB failures into
// exceptions whose message names the store and its directory.

#include <raftkv/error.hpp>
#include <raftkv/leveldb/detail/overlay_env.hpp>
#include <raftkv/log.hpp>

#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/iterator.h>
#include <leveldb/options.h>
#include <leveldb/slice.h>
#include <leveldb/status.h>
#include <leveldb/table.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace raftkv::leveldb::detail {

inline std::string_view to_view(const ::leveldb::Slice& s) noexcept
{
    return {s.data(), s.size()};
}

inline ::leveldb::Slice to_slice(std::string_view s) noexcept
{
    return {s.data(), s.size()};
}

/// Names a store in error messages: "<kind> at '<dir>'".
inline std::string store_name(std::string_view kind, const std::filesystem::path& dir)
{
    return std::string(kind) + " at '" + dir.string() + "'";
}

/// Throws std::runtime_error("<name>: <what>"): for input that is wrong, not the storage.
[[noreturn]] inline void fail(const std::string& name, std::string_view what)
{
    throw std::runtime_error(name + ": " + std::string(what));
}

/// Throws raftkv::storage_error("<name>: <what>"): the database failed, or holds what it
/// never wrote.
[[noreturn]] inline void fail_storage(const std::string& name, std::string_view what)
{
    throw raftkv::storage_error(name + ": " + std::string(what));
}

/// Throws raftkv::storage_error("<name>: <what>: <status>") unless `s` is ok.
inline void check(const ::leveldb::Status& s, const std::string& name, std::string_view what)
{
    if (!s.ok())
        fail_storage(name, std::string(what) + ": " + s.ToString());
}

/// Opens (creating if missing, parents included) the LevelDB database in `dir`, with
/// LevelDB's paranoid checks on: besides refusing damaged records in its own write-ahead
/// log, they make compactions verify the checksums of the tables they read. (Without them
/// a compaction reads its input unchecked, and a block damaged on disk is rewritten into a
/// new table with a valid checksum, then served as good data, backed up and sent in
/// snapshots.) With `skip_damaged_log_records` (a store that writes without syncing, whose
/// log a machine crash may leave with damaged records at its end, which raftkv's own log
/// replaces), a database whose log recovery fails the checks is recovered once without
/// them, skipping those records (a warning says so), and then opened again with them.
/// Throws std::runtime_error on any failure, including a database locked by another
/// process or object, and a directory that holds LevelDB's tables or logs but no CURRENT
/// file: LevelDB would take it for a new database and delete them.
///
/// With `overlay` (an overlay_env, which must outlive the database), the database is
/// opened through it: nothing is created or changed on the disk, and a missing database
/// is an empty one in memory. `skipped`, if given, is set to whether damaged log records
/// were skipped.
inline std::unique_ptr<::leveldb::DB> open_database(const std::filesystem::path& dir, const std::string& name,
                                                    bool skip_damaged_log_records = false,
                                                    overlay_env* overlay = nullptr, bool* skipped = nullptr)
{
    std::error_code ec;
    if (!overlay)
        std::filesystem::create_directories(dir, ec);
    if (ec)
        fail_storage(name, "cannot create the directory: " + ec.message());
    if (!std::filesystem::exists(dir / "CURRENT", ec)) {
        std::vector<std::string> data, manifests;
        for (const auto& item : std::filesystem::directory_iterator(dir, ec)) {
            const std::string file = item.path().filename().string();
            const std::string ext = item.path().extension().string();
            if (ext == ".ldb" || ext == ".sst" || ext == ".log")
                data.push_back(file);
            else if (file.starts_with("MANIFEST-"))
                manifests.push_back(file);
        }
        if (!data.empty()) {
            std::sort(manifests.begin(), manifests.end());
            fail_storage(name, "the database's CURRENT file is missing, but the directory holds its data (" +
                                   data.front() + (data.size() > 1 ? " and more" : "") +
                                   "): refusing to open it as a new database, which would delete them. "
                                   "CURRENT names the database's manifest" +
                                   (manifests.empty() ? std::string(", of which none is left either")
                                                      : ": write it back (echo " + manifests.back() + " > " +
                                                            (dir / "CURRENT").string() + ") or restore it") +
                                   ", or move the directory away");
        }
    }
    ::leveldb::Options options;
    options.create_if_missing = true;
    options.paranoid_checks = true;
    if (overlay) {
        options.env = overlay;
        options.info_log = overlay->logger();
    }
    ::leveldb::DB* db = nullptr;
    ::leveldb::Status s = ::leveldb::DB::Open(options, dir.string(), &db);
    if (s.IsCorruption() && skip_damaged_log_records) {
        // Opening recovers the log into a table and starts a new, empty one, so the
        // second open has nothing to skip. (A compaction the lenient open starts still reads
        // its input unchecked: this path is taken only after a damaged log was found.)
        options.paranoid_checks = false;
        check(::leveldb::DB::Open(options, dir.string(), &db), name, "cannot open");
        delete db;
        db = nullptr;
        raftkv::log_message(raftkv::log_severity::warning,
                            name + ": LevelDB's log held damaged records (" + s.ToString() +
                                "), as a crash before its writes were synced leaves it: recovered "
                                "without them (the entries they held are applied again from the Raft log)");
        options.paranoid_checks = true;
        s = ::leveldb::DB::Open(options, dir.string(), &db);
        if (skipped)
            *skipped = true;
    }
    // LevelDB's own words for a lock another process holds ("lock .../LOCK: Resource
    // temporarily unavailable") do not say who might hold it.
    if (s.IsIOError() && s.ToString().find("lock " + (dir / "LOCK").string()) != std::string::npos)
        fail_storage(name, "cannot open: " + s.ToString() + " (is another process using it?)");
    check(s, name, "cannot open");
    return std::unique_ptr<::leveldb::DB>(db);
}

/// What is wrong with the table file `file` when read whole (the footer, the index and every
/// block, each block's checksum verified), or nothing.
inline std::optional<std::string> table_damage(::leveldb::Env* env, const std::filesystem::path& file)
{
    std::uint64_t size = 0;
    ::leveldb::Status s = env->GetFileSize(file.string(), &size);
    ::leveldb::RandomAccessFile* raw = nullptr;
    if (s.ok())
        s = env->NewRandomAccessFile(file.string(), &raw);
    const std::unique_ptr<::leveldb::RandomAccessFile> handle(raw);
    ::leveldb::Options options;
    options.paranoid_checks = true;
    ::leveldb::Table* opened = nullptr;
    if (s.ok())
        s = ::leveldb::Table::Open(options, handle.get(), size, &opened);
    const std::unique_ptr<::leveldb::Table> table(opened); // goes before the file it reads
    if (s.ok()) {
        ::leveldb::ReadOptions read;
        read.verify_checksums = true;
        read.fill_cache = false;
        const std::unique_ptr<::leveldb::Iterator> it(table->NewIterator(read));
        for (it->SeekToFirst(); it->Valid(); it->Next()) {
        }
        s = it->status();
    }
    if (s.ok())
        return std::nullopt;
    return s.ToString();
}

/// The live table files of `db` (in directory `dir`) that fail their checks when read whole,
/// one line each: "000018.ldb: Corruption: block checksum mismatch" (LevelDB's own messages
/// for a damaged block name no file). Reads every table: an offline check, not for a
/// running node's path. A table a compaction deletes meanwhile is skipped (a compaction
/// verifies what it reads, so it had no damage).
inline std::vector<std::string> damaged_tables(::leveldb::DB& db, const std::filesystem::path& dir,
                                               ::leveldb::Env* env = ::leveldb::Env::Default())
{
    // One line per live file, under a line per level: " 18:2108734['a' @ 5 : 1 .. 'z' @ 9 : 1]".
    std::string listing;
    std::vector<std::uint64_t> numbers;
    if (db.GetProperty("leveldb.sstables", &listing)) {
        std::istringstream in(listing);
        for (std::string line; std::getline(in, line);) {
            std::uint64_t number = 0;
            const char* end = line.data() + line.size();
            if (line.size() < 2 || line[0] != ' ')
                continue;
            const auto [after, ec] = std::from_chars(line.data() + 1, end, number);
            if (ec == std::errc() && after != end && *after == ':')
                numbers.push_back(number);
        }
    }
    std::vector<std::string> out;
    for (const std::uint64_t number : numbers) {
        std::string name = std::to_string(number);
        if (name.size() < 6)
            name.insert(0, 6 - name.size(), '0');
        std::filesystem::path file = dir / (name + ".ldb");
        if (!env->FileExists(file.string()))
            file = dir / (name + ".sst"); // the name of earlier LevelDB versions
        if (!env->FileExists(file.string()))
            continue;
        if (std::optional<std::string> damage = table_damage(env, file);
            damage && env->FileExists(file.string()))
            out.push_back(file.filename().string() + ": " + *damage);
    }
    return out;
}

/// Read options for every read: the log is the durable record, so verify checksums.
inline ::leveldb::ReadOptions checked_reads()
{
    ::leveldb::ReadOptions options;
    options.verify_checksums = true;
    return options;
}

/// Makes sure `db` belongs to the kind of store that expects `format` under `key`:
/// a database with no keys at all is new and gets the record (synced); one that
/// holds other keys but not this record, or another value, is refused. A database whose
/// record is one of `upgradable` (earlier formats whose data the current one reads as is)
/// gets the record rewritten to `format` (synced), after which earlier builds refuse it.
inline void check_format(::leveldb::DB& db, std::string_view key, std::string_view format,
                         const std::string& name, std::initializer_list<std::string_view> upgradable = {})
{
    ::leveldb::WriteOptions sync;
    sync.sync = true;
    std::string value;
    const ::leveldb::Status s = db.Get(checked_reads(), to_slice(key), &value);
    if (s.ok()) {
        if (std::find(upgradable.begin(), upgradable.end(), value) != upgradable.end())
            check(db.Put(sync, to_slice(key), to_slice(format)), name,
                  "cannot upgrade the format record to '" + std::string(format) + "'");
        else if (value != format)
            fail(name, "unsupported format '" + value + "' (expected '" + std::string(format) +
                           "'); is this directory another kind of store?");
        return;
    }
    if (!s.IsNotFound())
        check(s, name, "cannot read the format record");

    std::unique_ptr<::leveldb::Iterator> it(db.NewIterator(checked_reads()));
    it->SeekToFirst();
    const bool empty = !it->Valid();
    check(it->status(), name, "cannot read");
    if (!empty)
        fail(name, "the database has no '" + std::string(format) +
                       "' format record; is this directory another kind of store?");
    check(db.Put(sync, to_slice(key), to_slice(format)), name, "cannot write the format record");
}

} // namespace raftkv::leveldb::detail

#endif
