// The on-disk kernel cache.
#include "fuser/disk_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

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
  static std::string dir;
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

std::optional<std::string> cache_read(const std::string& path, const std::string& key) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  std::string data = ss.str();
  auto bad = [&]() -> std::optional<std::string> {
    ++cache_stats().rejected;
    ::unlink(path.c_str());
    return std::nullopt;
  };
  if (data.size() < sizeof(Trailer)) return bad();
  Trailer t;
  std::memcpy(&t, data.data() + data.size() - sizeof(Trailer), sizeof(Trailer));
  data.resize(data.size() - sizeof(Trailer));
  if (std::memcmp(t.magic, kMagic, 8) != 0 || t.size != data.size() ||
      std::string(t.key, 32) != key || std::string(t.hash, 32) != hash_hex(data)) {
    return bad();
  }
  return data;
}

bool cache_commit(const std::string& tmp_path, const std::string& path, const std::string& key) {
  std::string data;
  {
    std::ifstream f(tmp_path, std::ios::binary);
    if (!f) return false;
    std::stringstream ss;
    ss << f.rdbuf();
    data = ss.str();
  }
  Trailer t;
  std::memcpy(t.magic, kMagic, 8);
  std::memcpy(t.key, key.data(), 32);
  std::string h = hash_hex(data);
  std::memcpy(t.hash, h.data(), 32);
  t.size = data.size();
  {
    std::ofstream f(tmp_path, std::ios::binary | std::ios::app);
    if (!f) return false;
    f.write(reinterpret_cast<const char*>(&t), sizeof(t));
    if (!f) return false;
  }
  return std::rename(tmp_path.c_str(), path.c_str()) == 0;
}

bool cache_write(const std::string& path, const std::string& key, const std::string& data) {
  std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return false;
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!f) return false;
  }
  return cache_commit(tmp, path, key);
}

CacheStats& cache_stats() {
  static CacheStats s;
  return s;
}

}  // namespace thunder::fuser
