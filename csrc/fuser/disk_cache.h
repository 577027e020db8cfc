// The fuser's compiled-kernel cache on disk: `$THUNDER_CACHE_DIR`, else `$XDG_CACHE_HOME/thunder`, else
// `~/.cache/thunder` (created with mode 0700). An entry is the binary (a shared object or a cubin)
// followed by a trailer holding a magic tag, the entry's key and a hash of the binary; a read verifies
// all three, so a corrupted, truncated or foreign file is reported as a miss (and rebuilt), never
// loaded. Writes go to a temporary file renamed into place, so readers never see half an entry.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace thunder::fuser {

// A 128-bit content hash as 32 hex digits.
std::string hash_hex(const std::string& data);

// The cache directory (created on first use); empty when it cannot be created.
const std::string& cache_dir();

// The binary stored under `key`, verified; nullopt on a miss or a bad entry.
std::optional<std::string> cache_read(const std::string& path, const std::string& key);
// Appends the trailer to the binary in `tmp_path` and renames it to `path`.
bool cache_commit(const std::string& tmp_path, const std::string& path, const std::string& key);
// Writes `data` as the entry `key` at `path` (atomically).
bool cache_write(const std::string& path, const std::string& key, const std::string& data);

// Counters for tests and benchmarks: compiles done and entries loaded from disk in this process.
struct CacheStats {
  int64_t compiles = 0;
  int64_t disk_hits = 0;
  int64_t memory_hits = 0;
  int64_t rejected = 0;  // bad entries found and rebuilt
  double compile_seconds = 0;
};
CacheStats& cache_stats();

}  // namespace thunder::fuser
