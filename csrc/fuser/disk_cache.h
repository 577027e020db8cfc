// The fuser's compiled-kernel cache on disk: `$THUNDER_CACHE_DIR`, else `$XDG_CACHE_HOME/thunder`, else
// `~/.cache/thunder` (created with mode 0700). An entry is the binary (a shared object or a cubin)
// followed by a trailer holding a magic tag, the entry's key, the binary's size and a hash of it; a
// read verifies all four, so a corrupted, truncated or foreign file is reported as a miss (and
// rebuilt), never loaded. Writers never touch a file another process may read: an entry is written to
// a temporary file with a name no other process or thread uses, flushed to disk (fsync) and renamed
// into place, so a reader sees a whole old entry, a whole new one, or none. Concurrent processes that
// miss the same entry serialise its build on a lock file next to it (`cache_lock`), so it is built
// once.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

namespace thunder::fuser {

// A 128-bit content hash as 32 hex digits.
std::string hash_hex(const std::string& data);

// The cache directory (created on first use); empty when it cannot be created.
const std::string& cache_dir();

// The binary stored under `key`, verified; nullopt on a miss or a bad entry (a bad entry is removed,
// unless another writer has replaced it meanwhile).
std::optional<std::string> cache_read(const std::string& path, const std::string& key);
// Appends the trailer to the binary in `tmp_path`, flushes it to disk and renames it to `path`.
bool cache_commit(const std::string& tmp_path, const std::string& path, const std::string& key);
// Writes `data` as the entry `key` at `path` (atomically).
bool cache_write(const std::string& path, const std::string& key, const std::string& data);
// A path next to `path` that no other process or thread uses: `path` + "." + unique tag + `suffix`.
std::string cache_temp_path(const std::string& path, const std::string& suffix);

// An exclusive lock on the file `path` (flock, created if missing), held until destruction; a no-op
// when the lock file cannot be created. Lock files are never removed (removing one races with a
// process about to lock it): callers share a few of them (one per key prefix).
class CacheLock {
 public:
  explicit CacheLock(const std::string& path);
  ~CacheLock();
  CacheLock(const CacheLock&) = delete;
  CacheLock& operator=(const CacheLock&) = delete;

 private:
  int fd_ = -1;
};

// Counters for tests and benchmarks: compiles done and entries loaded from disk in this process.
// Updated under `cache_stats_mutex()` by threads that compile in the background.
struct CacheStats {
  int64_t compiles = 0;
  int64_t disk_hits = 0;
  int64_t memory_hits = 0;
  int64_t rejected = 0;  // bad entries found and rebuilt
  double compile_seconds = 0;
};
CacheStats& cache_stats();
std::mutex& cache_stats_mutex();

}  // namespace thunder::fuser
