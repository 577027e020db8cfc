// The on-disk kernel cache.
#include "fuser/disk_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

namespace thunder::fuser {

namespace {

constexpr char kMagic[8] = {'T', 'H', 'K', 'E', 'R', 'N', '0', '1'};

uint64_t fnv(const char* p, size_t n, uint64_t seed) {
  uint64_t h = 1469598103934665603ULL ^ seed;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 1099511628211ULL;
  }
  // Final avalanche (splitmix64).
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

struct Trailer {
  char magic[8];
  char key[32];
  char hash[32];
  uint64_t size;
};

bool make_dirs(const std::string& path) {
  std::string cur;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      if (!cur.empty() && ::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST) return false;
    }
    if (i < path.size()) cur += path[i];
  }
  return true;
}

// The whole content of the open file `fd`; false on a read error.
bool read_all(int fd, std::string* out) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return false;
  out->resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out->size()) {
    ssize_t n = ::pread(fd, out->data() + done, out->size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  out->resize(done);
  return true;
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

std::string hash_hex(const std::string& data) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx",
                static_cast<unsigned long long>(fnv(data.data(), data.size(), 0)),
                static_cast<unsigned long long>(fnv(data.data(), data.size(), 0x9e3779b97f4a7c15ULL)));
  return buf;
}

const std::string& cache_dir() {
  static std::once_flag once;
  static std::string& dir = *new std::string();  // never destroyed: background compiles use it
  std::call_once(once, [] {
    std::string d;
    if (const char* e = std::getenv("THUNDER_CACHE_DIR"); e && *e) {
      d = e;
    } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
      d = std::string(x) + "/thunder";
    } else if (const char* h = std::getenv("HOME"); h && *h) {
      d = std::string(h) + "/.cache/thunder";
    } else {
      d = "/tmp/thunder-cache-" + std::to_string(::getuid());
    }
    d += "/kernels";
    if (make_dirs(d)) {
      ::chmod(d.substr(0, d.rfind('/')).c_str(), 0700);
      ::chmod(d.c_str(), 0700);
      dir = d;
    }
  });
  return dir;
}

std::string cache_temp_path(const std::string& path, const std::string& suffix) {
  // pid alone is not unique (threads; processes of other PID namespaces sharing the directory): add a
  // per-process counter and random bits drawn once per process.
  static const uint64_t salt = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
           static_cast<uint64_t>(std::hash<std::thread::id>()(std::this_thread::get_id()));
  }();
  static std::atomic<uint64_t> counter{0};
  char buf[64];
  std::snprintf(buf, sizeof(buf), ".%ld.%llx.%llu", static_cast<long>(::getpid()),
                static_cast<unsigned long long>(salt), static_cast<unsigned long long>(counter++));
  return path + buf + suffix;
}

std::optional<std::string> cache_read(const std::string& path, const std::string& key) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string data;
  bool ok = read_all(fd, &data);
  auto bad = [&]() -> std::optional<std::string> {
    {
      std::lock_guard<std::mutex> l(cache_stats_mutex());
      ++cache_stats().rejected;
    }
    // Remove the entry only if it is still the file we read (a writer may have replaced it).
    struct stat a, b;
    if (::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
        a.st_dev == b.st_dev) {
      ::unlink(path.c_str());
    }
    ::close(fd);
    return std::nullopt;
  };
  if (!ok || data.size() < sizeof(Trailer)) return bad();
  Trailer t;
  std::memcpy(&t, data.data() + data.size() - sizeof(Trailer), sizeof(Trailer));
  data.resize(data.size() - sizeof(Trailer));
  if (std::memcmp(t.magic, kMagic, 8) != 0 || t.size != data.size() ||
      std::string(t.key, 32) != key || std::string(t.hash, 32) != hash_hex(data)) {
    return bad();
  }
  ::close(fd);
  return data;
}

bool cache_commit(const std::string& tmp_path, const std::string& path, const std::string& key) {
  int fd = ::open(tmp_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  std::string data;
  if (!read_all(fd, &data)) {
    ::close(fd);
    return false;
  }
  Trailer t;
  std::memcpy(t.magic, kMagic, 8);
  std::memcpy(t.key, key.data(), 32);
  std::string h = hash_hex(data);
  std::memcpy(t.hash, h.data(), 32);
  t.size = data.size();
  bool ok = ::lseek(fd, 0, SEEK_END) == static_cast<off_t>(data.size()) &&
            write_all(fd, reinterpret_cast<const char*>(&t), sizeof(t)) && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  return ok && std::rename(tmp_path.c_str(), path.c_str()) == 0;
}

bool cache_write(const std::string& path, const std::string& key, const std::string& data) {
  std::string tmp = cache_temp_path(path, ".tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = write_all(fd, data.data(), data.size());
  ok = ::close(fd) == 0 && ok;
  if (ok && cache_commit(tmp, path, key)) return true;
  ::unlink(tmp.c_str());
  return false;
}

CacheLock::CacheLock(const std::string& path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) return;
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno != EINTR) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
  }
}

CacheLock::~CacheLock() {
  if (fd_ >= 0) {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
}

CacheStats& cache_stats() {
  static CacheStats& s = *new CacheStats();
  return s;
}

std::mutex& cache_stats_mutex() {
  static std::mutex& m = *new std::mutex();
  return m;
}

}  // namespace thunder::fuser
