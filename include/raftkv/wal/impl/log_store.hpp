#ifndef RAFTKV_WAL_IMPL_LOG_STORE_HPP
#define RAFTKV_WAL_IMPL_LOG_STORE_HPP

#include <raftkv/wal/log_store.hpp>

#if defined(__linux__)
#include <pthread.h>
#endif

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <system_error>

namespace raftkv::wal {

namespace detail {

inline const std::filesystem::path& created_directory(const std::filesystem::path& dir)
{
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
        throw raftkv::storage_error("raftkv wal: cannot create " + dir.string() + ": " + ec.message());
    return dir;
}

inline std::string segment_name(std::uint64_t seq)
{
    char name[32];
    std::snprintf(name, sizeof name, "wal-%016llx.log", static_cast<unsigned long long>(seq));
    return name;
}

/// The sequence number in a segment's file name, or 0 when the name is not a segment's.
inline std::uint64_t segment_seq(const std::string& name)
{
    if (name.size() != 24 || name.compare(0, 4, "wal-") != 0 || name.compare(20, 4, ".log") != 0)
        return 0;
    std::uint64_t seq = 0;
    const auto [end, ec] = std::from_chars(name.data() + 4, name.data() + 20, seq, 16);
    return ec == std::errc{} && end == name.data() + 20 ? seq : 0;
}

[[noreturn]] inline void corrupt(const std::filesystem::path& where, const std::string& what)
{
    throw std::runtime_error("raftkv wal: " + where.string() + " is corrupt: " + what);
}

// The hard state is kept in two 32-byte slots written alternately, each with a counter and
// a checksum: a write torn by a crash damages only the slot being written, and the other
// still holds the previous hard state.
inline constexpr std::uint32_t hard_state_magic = 0x53485752; // "RWHS"
inline constexpr std::size_t hard_state_slot = 32;

inline std::string encode_hard_state_slot(std::uint64_t counter, const hard_state& hs)
{
    std::string s(hard_state_slot, '\0');
    put_u32(s.data(), hard_state_magic);
    put_u64(s.data() + 8, counter);
    put_u64(s.data() + 16, hs.term);
    put_u64(s.data() + 24, hs.vote);
    put_u32(s.data() + 4, crc32c(s.data() + 8, hard_state_slot - 8));
    return s;
}

inline bool decode_hard_state_slot(const char* p, std::uint64_t& counter, hard_state& hs)
{
    if (get_u32(p) != hard_state_magic || get_u32(p + 4) != crc32c(p + 8, hard_state_slot - 8))
        return false;
    counter = get_u64(p + 8);
    hs.term = get_u64(p + 16);
    hs.vote = get_u64(p + 24);
    return true;
}

} // namespace detail

inline log_store::log_store(const std::filesystem::path& dir, log_store_options opts)
    : dir_(opts.read_only ? dir : detail::created_directory(dir)), opts_(opts), lock_(dir_, opts.read_only)
{
    if (opts_.read_only && !std::filesystem::is_directory(dir_))
        return; // an empty log
    load_hard_state();
    recover();
    if (!opts_.read_only)
        thread_ = std::thread([this] { run(); });
}

inline log_store::~log_store()
{
    if (!thread_.joinable())
        return;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_writer_.notify_one();
    thread_.join();
}

inline void log_store::check_writable(const char* what) const
{
    if (opts_.read_only)
        throw std::logic_error("raftkv wal: " + std::string(what) + " on " + dir_.string() +
                               ": the log was opened read-only");
}

inline void log_store::on_durable(std::function<void()> handler)
{
    std::lock_guard lock(handler_mutex_);
    handler_ = std::move(handler);
}

inline void log_store::notify()
{
    std::lock_guard lock(handler_mutex_);
    if (handler_)
        handler_();
}

// ---- the caller's side -------------------------------------------------------------

inline index_t log_store::durable_index() const noexcept
{
    const std::uint64_t synced = synced_seq_.load(std::memory_order_acquire);
    while (!unsynced_.empty() && unsynced_.front().seq <= synced) {
        durable_ = std::max(durable_, unsynced_.front().covers);
        unsynced_.pop_front();
    }
    return durable_;
}

inline term_t log_store::term_at(index_t i) const
{
    assert(i + 1 >= first_index() && i <= last_index());
    return i == base_index_ ? base_term_ : entries_[i - first_index()].term;
}

inline std::vector<log_entry> log_store::entries(index_t lo, index_t hi, std::size_t max_bytes) const
{
    assert(first_index() <= lo && lo < hi && hi <= last_index() + 1);
    std::vector<log_entry> out;
    std::size_t bytes = 0;
    for (index_t i = lo; i < hi; ++i) {
        const log_entry& e = entries_[i - first_index()];
        bytes += e.data.size();
        if (!out.empty() && bytes > max_bytes)
            break;
        out.push_back(e);
    }
    return out;
}

inline void log_store::append(std::span<const log_entry> es)
{
    assert(!es.empty() && es.front().index >= first_index() && es.front().index <= last_index() + 1);
    check_writable("append()");
    check_failed();
    const index_t from = es.front().index;
    if (from <= last_index()) {
        // The conflicting suffix goes; a sync in flight must not cover its replacement.
        entries_.resize(from - first_index());
        durable_ = std::min(durable_, from - 1);
        for (auto& op : unsynced_)
            op.covers = std::min(op.covers, from - 1);
    }
    entries_.insert(entries_.end(), es.begin(), es.end());
    std::uint64_t seq;
    {
        std::unique_lock lock(mutex_);
        if (pending_.empty())
            pending_.resize(detail::group_header_size);
        if (pending_entries_ == 0)
            pending_since_ = std::chrono::steady_clock::now();
        pending_entries_ += es.size();
        for (const auto& e : es)
            detail::put_entry_record(pending_, e);
        pending_max_index_ = std::max(pending_max_index_, last_index());
        seq = queue(lock);
    }
    wake_writer_.notify_one();
    unsynced_.push_back({seq, last_index()});
}

inline void log_store::compact(index_t i, const membership& members)
{
    assert(i <= durable_index());
    check_writable("compact()");
    check_failed();
    if (i < first_index())
        return;
    const term_t term = term_at(i);
    const std::string encoded = encode_membership(members);
    membership new_members = members;
    entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(i - base_index_));
    base_index_ = i;
    base_term_ = term;
    base_members_ = std::move(new_members);
    {
        std::unique_lock lock(mutex_);
        if (pending_.empty())
            pending_.resize(detail::group_header_size);
        detail::put_base_record(pending_, detail::record_kind::compact, i, term, encoded);
        pending_compact_ = std::max(pending_compact_, i);
        queue(lock);
    }
    wake_writer_.notify_one();
}

inline void log_store::install_snapshot(const snapshot_meta& meta)
{
    check_writable("install_snapshot()");
    check_failed();
    const std::string encoded = encode_membership(meta.members);
    membership new_members = meta.members;
    entries_.clear();
    base_index_ = meta.index;
    base_term_ = meta.term;
    base_members_ = std::move(new_members);
    durable_ = meta.index;
    unsynced_.clear();
    std::uint64_t seq;
    {
        std::unique_lock lock(mutex_);
        if (pending_.empty())
            pending_.resize(detail::group_header_size);
        detail::put_base_record(pending_, detail::record_kind::snapshot, meta.index, meta.term, encoded);
        pending_new_segment_ = true; // older segments are deleted once this is durable
        seq = queue(lock);
    }
    wake_writer_.notify_one();
    wait_synced(seq);
}

inline std::uint64_t log_store::queue(std::unique_lock<std::mutex>&)
{
    pending_seq_ = ++next_seq_;
    return pending_seq_;
}

// On every append: a flag read without the mutex, which only a failure makes it take.
inline void log_store::check_failed() const
{
    if (!failed_.load(std::memory_order_acquire))
        return;
    std::lock_guard lock(mutex_);
    if (!failure_.empty())
        throw raftkv::storage_error(failure_);
}

inline void log_store::wait_synced(std::uint64_t seq)
{
    std::unique_lock lock(mutex_);
    synced_cv_.wait(lock, [&] { return synced_seq_.load() >= seq || !failure_.empty(); });
    if (!failure_.empty())
        throw raftkv::storage_error(failure_);
}

inline void log_store::save_hard_state(const hard_state& hs)
{
    check_writable("save_hard_state()");
    check_failed();
    detail::file f(dir_ / "hardstate", O_RDWR);
    const std::uint64_t counter = hard_state_counter_ + 1;
    f.write_at(detail::encode_hard_state_slot(counter, hs), (counter % 2) * detail::hard_state_slot);
    f.sync_data();
    hard_state_counter_ = counter;
    hard_state_ = hs;
}

inline std::size_t log_store::segment_count() const
{
    std::lock_guard lock(mutex_);
    return segments_.size();
}

inline log_store_stats log_store::stats() const
{
    std::lock_guard lock(mutex_);
    return stats_;
}

inline std::string log_store::failure() const
{
    if (!failed_.load(std::memory_order_acquire))
        return {};
    std::lock_guard lock(mutex_);
    return failure_;
}

// ---- opening -----------------------------------------------------------------------

inline void log_store::load_hard_state()
{
    const auto path = dir_ / "hardstate";
    const bool existed = std::filesystem::exists(path);
    if (!existed)
        // It is made before the first segment: a log without it lost the term and the vote
        // it recorded, and a node that forgot its vote could vote twice in one term.
        for (const auto& item : std::filesystem::directory_iterator(dir_))
            if (detail::segment_seq(item.path().filename().string()) != 0)
                detail::corrupt(path, "it is missing, while the log holds segments (" +
                                          item.path().filename().string() +
                                          "): the term and vote it recorded are lost");
    if (!existed && opts_.read_only)
        return; // no term and no vote yet
    detail::file f(path, opts_.read_only ? O_RDONLY : O_RDWR | O_CREAT);
    if (!existed) {
        f.write_at(std::string(2 * detail::hard_state_slot, '\0'), 0);
        f.sync_data();
        detail::sync_directory(dir_);
        return;
    }
    const std::string data = f.read_all();
    if (data.size() != 2 * detail::hard_state_slot)
        detail::corrupt(path, "size " + std::to_string(data.size()) + ", expected 64 bytes");
    bool found = false;
    bool all_zero = std::all_of(data.begin(), data.end(), [](char c) { return c == '\0'; });
    for (std::size_t slot = 0; slot < 2; ++slot) {
        std::uint64_t counter = 0;
        hard_state hs;
        if (detail::decode_hard_state_slot(data.data() + slot * detail::hard_state_slot, counter, hs) &&
            (!found || counter > hard_state_counter_)) {
            found = true;
            hard_state_counter_ = counter;
            hard_state_ = hs;
        }
    }
    if (!found && !all_zero)
        detail::corrupt(path, "neither copy of the hard state checks");
}

inline void log_store::recover()
{
    std::vector<std::uint64_t> seqs;
    for (const auto& item : std::filesystem::directory_iterator(dir_))
        if (const auto seq = detail::segment_seq(item.path().filename().string()); seq != 0)
            seqs.push_back(seq);
    std::sort(seqs.begin(), seqs.end());

    std::uint64_t end_offset = 0; // where the valid groups of segments_.back() end
    for (std::size_t k = 0; k < seqs.size(); ++k) {
        segment s{seqs[k], dir_ / detail::segment_name(seqs[k]), 0};
        const bool last = k + 1 == seqs.size();
        std::uint64_t end = 0;
        recover_segment(s, last, end);
        if (last && end == 0) {
            // Created but never written (a crash while starting it): it holds nothing.
            if (!opts_.read_only) {
                std::filesystem::remove(s.path);
                detail::sync_directory(dir_);
            }
            continue;
        }
        end_offset = end;
        segments_.push_back(std::move(s));
    }
    if (!entries_.empty() && entries_.front().index != base_index_ + 1) {
        if (gap_ && gap_->resumes_at == entries_.front().index && gap_->missing_from > base_index_)
            detail::corrupt(gap_->segment,
                            "entries " + std::to_string(gap_->missing_from) + " to " +
                                std::to_string(gap_->resumes_at - 1) +
                                " are missing: the segments before this one end at entry " +
                                std::to_string(gap_->missing_from - 1) +
                                " (one was deleted, or lost its end), and this one goes on at entry " +
                                std::to_string(gap_->resumes_at));
        detail::corrupt(dir_, "the log starts at index " + std::to_string(entries_.front().index) +
                                  " but its base is " + std::to_string(base_index_) +
                                  " (a segment is missing)");
    }
    gap_.reset();
    // Replaying checked that no entry's term is below the one before it; the first entry's
    // term must not be below the base's either (a compaction or snapshot record with a
    // higher term than the entries after it was never written by a store).
    if (!entries_.empty() && entries_.front().term < base_term_)
        detail::corrupt(dir_, "entry " + std::to_string(entries_.front().index) +
                                  " has a lower term than the base " + std::to_string(base_index_) +
                                  " before it");
    // Recovery kept entries_ starting anywhere; from now on entry i sits at i - first_index().
    durable_ = last_index();
    if (opts_.read_only)
        return;

    if (segments_.empty()) {
        open_new_segment();
        return;
    }
    next_segment_seq_ = segments_.back().seq + 1;
    current_ = detail::file(segments_.back().path, O_RDWR);
    // Cut a torn tail, and reserve the segment again unless it is of an older version, which
    // gets no more records; then make sure what a crashed process left in the page cache is
    // on disk before it is reported durable.
    const bool older = segments_.back().version != detail::format_version;
    current_.truncate_and_reserve(end_offset, older ? 0 : opts_.segment_bytes);
    current_.sync_data();
    offset_ = end_offset;
    zeroed_ = end_offset;
    // A segment's records are all laid out as its header's version says: new records go
    // into a segment of this version.
    if (older)
        open_new_segment();
}

// Replays one segment into the in-memory log. Sets end_offset to where the valid groups end
// (0 for a segment without a valid header, which only the last may be).
inline void log_store::recover_segment(segment& s, bool last, std::uint64_t& end_offset)
{
    const std::string data = detail::file(s.path, O_RDONLY).read_all();
    const std::string_view file = data;
    end_offset = 0;
    s.version = file.size() < detail::segment_header_size ? 0 : detail::segment_version(file.data());
    if (s.version == 0) {
        const bool blank = std::all_of(file.begin(), file.end(), [](char c) { return c == '\0'; });
        if (last && blank)
            return;
        detail::corrupt(s.path, "bad segment header (not a segment, or of a version this build does not "
                                "read: it reads versions " +
                                    std::to_string(detail::oldest_format_version) + " to " +
                                    std::to_string(detail::format_version) + ")");
    }
    std::size_t offset = detail::segment_header_size;
    const std::size_t written = file.find_last_not_of('\0'); // the last byte ever written
    for (;;) {
        std::string_view payload;
        std::size_t next = 0;
        const auto state = detail::read_group(file, s.seq, offset, payload, next);
        // Groups are synced in order, so a valid group after a damaged one, or after a
        // header of zeros, proves that one was synced once: corruption, not a torn write
        // (nor the end of what was written, which only zeros follow).
        const auto refuse_if_valid_data_follows = [&](std::string_view what) {
            for (std::size_t at = offset + detail::group_alignment;
                 at <= written && at + detail::group_header_size <= file.size();
                 at += detail::group_alignment) {
                std::string_view p;
                std::size_t n = 0;
                if (detail::read_group(file, s.seq, at, p, n) == detail::group_state::valid)
                    detail::corrupt(s.path, std::string(what) + " at offset " + std::to_string(offset) +
                                                " is followed by valid data at offset " + std::to_string(at));
            }
        };
        const bool more_written = written != std::string_view::npos && written >= offset;
        if (state == detail::group_state::end) {
            if (!more_written)
                break;
            refuse_if_valid_data_follows("a group header of zeros");
            if (!last)
                break; // as before: what follows is no group, and is never read
            // The rest of a group written out of order by a crash (its first bytes never
            // reached the disk): never synced, so never acknowledged.
            torn_tail_ = torn_tail{s.path, offset, written + 1 - offset};
            break;
        }
        if (state == detail::group_state::damaged) {
            refuse_if_valid_data_follows("damaged data");
            if (!last)
                detail::corrupt(s.path, "damaged data at offset " + std::to_string(offset) +
                                            " in a segment that is not the last");
            // A torn tail: it was never synced, so never acknowledged. Reported, since
            // damage to the last group written looks the same.
            torn_tail_ = torn_tail{s.path, offset, more_written ? written + 1 - offset : 0};
            break;
        }
        while (!payload.empty()) {
            const auto r = detail::take_record(payload, s.version);
            if (!r)
                detail::corrupt(s.path, "malformed record in the group at offset " + std::to_string(offset));
            // The index after the last must exist (first_index() is the base's plus one).
            if (r->entry.index == std::numeric_limits<index_t>::max())
                detail::corrupt(s.path, "a record in the group at offset " + std::to_string(offset) +
                                            " names index " + std::to_string(r->entry.index) +
                                            ", past the last a log can hold");
            if (r->kind == detail::record_kind::entry && !entries_.empty() &&
                r->entry.index > entries_.back().index + 1)
                gap_ = log_gap{entries_.back().index + 1, r->entry.index, s.path};
            apply_record(*r);
            if (r->kind == detail::record_kind::entry)
                s.max_index = std::max(s.max_index, r->entry.index);
        }
        offset = next;
    }
    end_offset = offset;
}

// During recovery entries_ may start after base_index_ + 1: segments before a compaction
// record may have been deleted, leaving a gap that the record then covers.
inline void log_store::apply_record(const detail::record& r)
{
    const index_t i = r.entry.index;
    switch (r.kind) {
    case detail::record_kind::entry: {
        if (i <= base_index_)
            detail::corrupt(dir_, "entry " + std::to_string(i) + " after the log was compacted to " +
                                      std::to_string(base_index_));
        const index_t start = entries_.empty() ? i : entries_.front().index;
        if (i < start || i > start + entries_.size())
            entries_.clear(); // every held entry is replaced, or a gap a compaction will cover
        else
            entries_.resize(i - start);
        if (!entries_.empty() && entries_.back().term > r.entry.term)
            detail::corrupt(dir_, "entry " + std::to_string(i) + " has a lower term than the one before it");
        entries_.push_back(r.entry);
        break;
    }
    case detail::record_kind::compact:
        if (i <= base_index_)
            break;
        while (!entries_.empty() && entries_.front().index <= i) {
            if (entries_.front().index == i && entries_.front().term != r.entry.term)
                detail::corrupt(dir_, "compaction to " + std::to_string(i) + " names another term");
            entries_.pop_front();
        }
        base_index_ = i;
        base_term_ = r.entry.term;
        base_members_ = r.members;
        break;
    case detail::record_kind::snapshot:
        entries_.clear();
        base_index_ = i;
        base_term_ = r.entry.term;
        base_members_ = r.members;
        break;
    }
}

// ---- the background thread ---------------------------------------------------------

inline void log_store::run()
{
#if defined(__linux__)
    ::pthread_setname_np(::pthread_self(), "raftkv-wal"); // as top -H, perf and gdb show it
#endif
    std::string group;
    for (;;) {
        std::uint64_t seq;
        index_t max_index;
        index_t compacted;
        bool new_segment;
        std::uint64_t entries;
        std::chrono::steady_clock::time_point since;
        {
            std::unique_lock lock(mutex_);
            wake_writer_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
            if (pending_.empty())
                return;
            group.clear();
            std::swap(group, pending_);
            seq = pending_seq_;
            max_index = std::exchange(pending_max_index_, 0);
            compacted = std::exchange(pending_compact_, 0);
            new_segment = std::exchange(pending_new_segment_, false);
            entries = std::exchange(pending_entries_, 0);
            since = pending_since_;
        }
        group_timing timing;
        try {
            timing = write_group(group, new_segment, max_index);
        } catch (const std::exception& e) {
            {
                std::lock_guard lock(mutex_);
                failure_ = e.what();
                failed_.store(true, std::memory_order_release);
            }
            synced_cv_.notify_all();
            notify();
            return;
        }
        // Deleting obsolete segments may fail (permissions); they stay, harmless, and go
        // with the next compaction. Done before the sync is reported, so sync() covers it.
        try {
            if (new_segment)
                drop_segments_while([](const segment&) { return true; });
            else if (compacted != 0)
                drop_segments_while([compacted](const segment& s) { return s.max_index <= compacted; });
        } catch (const std::exception&) {
        }
        const auto durable_at = std::chrono::steady_clock::now();
        {
            std::lock_guard lock(mutex_);
            synced_seq_.store(seq, std::memory_order_release);
            ++stats_.groups;
            stats_.entries += entries;
            stats_.bytes += group.size();
            stats_.group_bytes.record(group.size());
            stats_.write_ns.record(timing.write_ns);
            stats_.sync_ns.record(timing.sync_ns);
            if (entries != 0) {
                stats_.group_entries.record(entries);
                stats_.append_to_durable_ns.record(static_cast<std::uint64_t>(
                    std::chrono::duration_cast<std::chrono::nanoseconds>(durable_at - since).count()));
            }
        }
        synced_cv_.notify_all();
        notify();
    }
}

inline log_store::group_timing log_store::write_group(std::string& group, bool new_segment, index_t max_index)
{
    const bool full = offset_ > detail::segment_header_size &&
                      offset_ + detail::align_up(group.size()) > opts_.segment_bytes;
    if (new_segment || full)
        open_new_segment();
    detail::seal_group(group, segments_.back().seq, offset_);
    using clock = std::chrono::steady_clock;
    const auto nanoseconds = [](clock::duration d) {
        return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
    };
    const auto start = clock::now();
    current_.write_at(group, offset_);
    const std::uint64_t end = offset_ + group.size();
    if (opts_.zero_ahead_bytes != 0 && end > zeroed_) {
        // This group wrote blocks never written before, so its sync converts them anyway:
        // zero the blocks the next groups will need, so that their syncs do not.
        const std::uint64_t to = std::min(opts_.segment_bytes, end + opts_.zero_ahead_bytes);
        if (to > end)
            current_.write_zeros(end, to - end);
        zeroed_ = std::max(to, end);
    }
    const auto written = clock::now();
    current_.sync_data();
    const auto synced = clock::now();
    offset_ += group.size();
    std::lock_guard lock(mutex_);
    segments_.back().max_index = std::max(segments_.back().max_index, max_index);
    return {nanoseconds(written - start), nanoseconds(synced - written)};
}

// Every segment before the current one was synced whole before it was left behind.
inline void log_store::open_new_segment()
{
    const std::uint64_t seq = next_segment_seq_++;
    const auto path = dir_ / detail::segment_name(seq);
    detail::file f(path, O_RDWR | O_CREAT | O_TRUNC);
    f.truncate_and_reserve(0, opts_.segment_bytes);
    f.write_at(detail::segment_header(), 0);
    f.sync_data();
    detail::sync_directory(dir_);
    current_ = std::move(f);
    offset_ = detail::segment_header_size;
    zeroed_ = offset_;
    std::lock_guard lock(mutex_);
    segments_.push_back(segment{seq, path, 0});
}

// Deletes segments from the oldest while `obsolete` says so, never the current one (which
// holds the record that made them obsolete).
template <class Predicate>
void log_store::drop_segments_while(Predicate obsolete)
{
    for (;;) {
        std::filesystem::path path;
        {
            std::lock_guard lock(mutex_);
            if (segments_.size() < 2 || !obsolete(segments_.front()))
                return;
            path = segments_.front().path;
            segments_.pop_front();
        }
        std::filesystem::remove(path);
    }
}

} // namespace raftkv::wal

#endif
