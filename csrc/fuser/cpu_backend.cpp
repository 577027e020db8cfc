// Compiling, loading and running CPU kernels.
#include "fuser/cpu_backend.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "fuser/disk_cache.h"

namespace thunder::fuser {

namespace {

std::string run_capture(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  *status = ::pclose(p);
  return out;
}

std::string cpu_identity() {
  std::ifstream f("/proc/cpuinfo");
  std::string line, model, flags;
  while (std::getline(f, line)) {
    if (model.empty() && line.rfind("model name", 0) == 0) model = line;
    if (flags.empty() && line.rfind("flags", 0) == 0) flags = line;
    if (!model.empty() && !flags.empty()) break;
  }
  return model + "\n" + flags;
}

// -march=native: the key holds the host CPU (model and flags), so a binary built for another CPU is
// never loaded. No -ffast-math: NaN and inf behave as in eager. -ffp-contract=off: every operation
// rounds as eager's kernels do; a multiply fused into a later add or subtract would not (x * 0.1 -
// max(x * 0.1) came out positive at the maximum). 512-bit vectors where AVX-512 runs at full clock
// (IFMA: Ice Lake, Sapphire Rapids, Zen 4 and later; -march=native keeps 256-bit lanes for every
// AVX-512 part because the first ones slowed down): softmax 1024x4096 on two cores ran in
// 0.70-0.75x eager's time against 0.75-0.99x with 256-bit lanes (BENCHMARKS.md, "512-bit vectors").
const std::string& compile_flags() {
  static const std::string& flags = *new std::string([] {
    std::string f =
        "-O2 -march=native -fopenmp-simd -fno-math-errno -fno-trapping-math -ffp-contract=off "
        "-fPIC -shared -std=c++17";
    if (cpu_identity().find(" avx512ifma") != std::string::npos) f += " -mprefer-vector-width=512";
    return f;
  }());
  return flags;
}

struct CompilerInfo {
  std::string cmd, version, why;
};

const CompilerInfo& compiler_info() {
  // Never destroyed (nor are the other globals below): background compiles may still use them while
  // the process exits.
  static std::once_flag once;
  static CompilerInfo& info = *new CompilerInfo();
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* e = std::getenv("THUNDER_CXX"); e && *e) {
      candidates.push_back(e);
    } else {
      if (const char* c = std::getenv("CXX"); c && *c) candidates.push_back(c);
      candidates.insert(candidates.end(), {"c++", "g++", "clang++"});
    }
    for (const std::string& c : candidates) {
      int status = 0;
      std::string v = run_capture(c + " --version", &status);
      if (status == 0 && !v.empty()) {
        info.cmd = c;
        info.version = v.substr(0, v.find('\n'));
        return;
      }
    }
    info.why = "no C++ compiler found (tried";
    for (const std::string& c : candidates) info.why += " " + c;
    info.why += ")";
  });
  return info;
}

// The thread pool: workers wait for a job, claim chunks of items through an atomic counter.
class Pool {
 public:
  static Pool& instance() {
    static Pool* p = new Pool();  // never destroyed: workers may outlive static destruction order
    return *p;
  }
  int threads() const { return threads_; }
  void set_threads(int n) {
    std::lock_guard<std::mutex> run_lock(run_mu_);
    stop_workers();
    threads_ = std::max(1, n);
    start_workers();
  }

  void run(int64_t items, const std::function<void(int64_t, int64_t)>& fn, int64_t chunk) {
    if (threads_ <= 1 || items <= chunk) {
      fn(0, items);
      return;
    }
    std::lock_guard<std::mutex> run_lock(run_mu_);
    {
      std::lock_guard<std::mutex> l(mu_);
      job_ = &fn;
      items_ = items;
      chunk_ = chunk;
      next_.store(0);
      pending_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  Pool() {
    int n = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* e = std::getenv("THUNDER_NUM_THREADS"); e && *e) n = std::atoi(e);
    threads_ = std::max(1, n);
    start_workers();
  }
  void start_workers() {
    stop_ = false;
    for (int i = 1; i < threads_; ++i) {
      workers_.emplace_back([this] { loop(); });
    }
  }
  void stop_workers() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }
  void work() {
    for (;;) {
      int64_t b = next_.fetch_add(chunk_);
      if (b >= items_) return;
      (*job_)(b, std::min(items_, b + chunk_));
    }
  }
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      work();
      {
        std::lock_guard<std::mutex> l(mu_);
        if (--pending_ == 0) done_cv_.notify_all();
      }
    }
  }

  int threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex run_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  std::atomic<int64_t> next_{0};
  int64_t items_ = 0, chunk_ = 1;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

// Background compiles: a few threads (hardware concurrency) taking jobs in order. Never destroyed:
// jobs may still run when the process exits (their temporary files are then left behind).
class CompileQueue {
 public:
  static CompileQueue& instance() {
    static CompileQueue* q = new CompileQueue();
    return *q;
  }
  void submit(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> l(mu_);
      jobs_.push_back(std::move(job));
      if (idle_ == 0 && static_cast<int>(threads_.size()) < max_threads_) {
        threads_.emplace_back([this] { loop(); });
        threads_.back().detach();
      }
    }
    cv_.notify_one();
  }

 private:
  CompileQueue() {
    max_threads_ = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    if (const char* e = std::getenv("THUNDER_COMPILE_THREADS"); e && *e) max_threads_ = std::max(1, std::atoi(e));
  }
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> l(mu_);
        ++idle_;
        cv_.wait(l, [&] { return !jobs_.empty(); });
        --idle_;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  int idle_ = 0;
  int max_threads_ = 1;
};

using BinaryFuture = std::shared_future<std::shared_ptr<CpuBinary>>;

std::mutex& g_load_mu = *new std::mutex();
// By key: loaded, or being built.
std::unordered_map<std::string, BinaryFuture>& g_loaded = *new std::unordered_map<std::string, BinaryFuture>();

std::shared_ptr<CpuBinary> open_binary(const std::string& path) {
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) return nullptr;
  auto b = std::make_shared<CpuBinary>();
  b->handle = h;
  b->path = path;
  b->items = reinterpret_cast<int64_t (*)()>(::dlsym(h, "thunder_items"));
  b->item_cost = reinterpret_cast<int64_t (*)()>(::dlsym(h, "thunder_item_cost"));
  b->kernel = reinterpret_cast<void (*)(int64_t, int64_t, char**)>(::dlsym(h, "thunder_kernel"));
  if (!b->items || !b->item_cost || !b->kernel) {
    ::dlclose(h);
    return nullptr;
  }
  b->finish = reinterpret_cast<void (*)(char**)>(::dlsym(h, "thunder_finish"));
  auto scratch = reinterpret_cast<int64_t (*)()>(::dlsym(h, "thunder_scratch_bytes"));
  if (!b->finish != !scratch) {
    ::dlclose(h);
    return nullptr;
  }
  if (scratch) b->scratch_bytes = scratch();
  return b;
}

// The verified entry at `so`, loaded; nullptr on a miss or a bad entry (removed).
std::shared_ptr<CpuBinary> load_entry(const std::string& so, const std::string& key) {
  if (!cache_read(so, key)) return nullptr;
  if (auto b = open_binary(so)) return b;
  {
    std::lock_guard<std::mutex> l(cache_stats_mutex());
    ++cache_stats().rejected;
  }
  ::unlink(so.c_str());
  return nullptr;
}

// Loads the entry of `key` from disk or compiles `source` into it.
std::shared_ptr<CpuBinary> build(const std::string& key, const std::string& source) {
  const CompilerInfo& cc = compiler_info();
  const std::string& dir = cache_dir();
  std::string base = dir.empty() ? "/tmp/thunder-" + key : dir + "/cpu-" + key;
  std::string so = base + ".so";
  auto count_hit = [] {
    std::lock_guard<std::mutex> l(cache_stats_mutex());
    ++cache_stats().disk_hits;
  };
  if (auto b = load_entry(so, key)) {
    count_hit();
    return b;
  }
  // Processes missing the same entry build it once: the others wait here, then find it on disk.
  CacheLock lock((dir.empty() ? std::string("/tmp/thunder") : dir + "/") + ".lock-" + key.substr(0, 2));
  if (auto b = load_entry(so, key)) {
    count_hit();
    return b;
  }
  auto t0 = std::chrono::steady_clock::now();
  std::string src = cache_temp_path(base, ".cpp");
  std::string tmp = cache_temp_path(base, ".so");
  {
    std::ofstream f(src);
    f << source;
    if (!f) throw Error("fuser: cannot write the kernel source to " + src);
  }
  int status = 0;
  std::string log = run_capture(cc.cmd + " " + compile_flags() + " -o '" + tmp + "' '" + src + "' -lmvec -lm", &status);
  if (status != 0) {
    ::unlink(tmp.c_str());
    throw Error("fuser: the CPU kernel failed to compile (source: " + src + ")\n" + log.substr(0, 4000));
  }
  ::unlink(src.c_str());
  if (!cache_commit(tmp, so, key)) {
    ::unlink(tmp.c_str());
    throw Error("fuser: cannot store the compiled kernel at " + so);
  }
  {
    std::lock_guard<std::mutex> l(cache_stats_mutex());
    auto& st = cache_stats();
    ++st.compiles;
    st.compile_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  auto b = open_binary(so);
  if (!b) throw Error(std::string("fuser: cannot load the compiled kernel ") + so + ": " + ::dlerror());
  return b;
}

std::string key_of(const std::string& source) {
  const CompilerInfo& cc = compiler_info();
  if (cc.cmd.empty()) throw Error("fuser: " + cc.why);
  static const std::string& identity = *new std::string(cpu_identity());
  return hash_hex(source + "\n--\n" + cc.cmd + "\n" + cc.version + "\n" + compile_flags() + "\n" + identity);
}

// The binary of `source`: found in memory, or built (here, or on the compile queue when `background`).
BinaryFuture request(const std::string& source, bool background) {
  const std::string key = key_of(source);
  auto promise = std::make_shared<std::promise<std::shared_ptr<CpuBinary>>>();
  BinaryFuture f;
  {
    std::lock_guard<std::mutex> lock(g_load_mu);
    auto it = g_loaded.find(key);
    if (it != g_loaded.end()) {
      if (!background) {
        std::lock_guard<std::mutex> l(cache_stats_mutex());
        ++cache_stats().memory_hits;
      }
      return it->second;
    }
    f = promise->get_future().share();
    g_loaded[key] = f;
  }
  auto job = [key, source, promise] {
    try {
      promise->set_value(build(key, source));
    } catch (...) {
      // Forget the failure (a later request retries) and report it to those waiting.
      {
        std::lock_guard<std::mutex> lock(g_load_mu);
        g_loaded.erase(key);
      }
      promise->set_exception(std::current_exception());
    }
  };
  if (background) {
    CompileQueue::instance().submit(std::move(job));
  } else {
    job();
  }
  return f;
}

}  // namespace

const std::string& cpu_compile_flags() { return compile_flags(); }

const std::string& cpu_compiler(std::string* why) {
  const CompilerInfo& c = compiler_info();
  if (why) *why = c.why;
  return c.cmd;
}

std::shared_ptr<CpuBinary> cpu_load(const std::string& source) {
  return request(source, false).get();
}

void cpu_prefetch(const std::string& source) {
  if (compiler_info().cmd.empty()) return;
  request(source, true);
}

namespace {

// torch's OpenMP runtime, when the process has loaded one (torch's CPU builds link libgomp): kernels
// run their items on torch's own thread team. A second pool next to it would compete for the same
// cores with torch's threads, which spin for a while after each parallel region: on a 2-core machine a
// kernel launched right after a torch operation then ran on one core.
struct Gomp {
  void (*parallel)(void (*)(void*), void*, unsigned, unsigned) = nullptr;
  int (*max_threads)() = nullptr;
};

const Gomp& gomp() {
  static const Gomp g = [] {
    Gomp r;
    if (const char* e = std::getenv("THUNDER_FUSION_OWN_POOL"); e && *e && *e != '0') return r;
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
      size_t slash = line.find('/');
      if (slash == std::string::npos || line.find("libgomp", slash) == std::string::npos) continue;
      void* h = ::dlopen(line.substr(slash).c_str(), RTLD_LAZY | RTLD_NOLOAD);
      if (!h) continue;
      r.parallel = reinterpret_cast<void (*)(void (*)(void*), void*, unsigned, unsigned)>(
          ::dlsym(h, "GOMP_parallel"));
      r.max_threads = reinterpret_cast<int (*)()>(::dlsym(h, "omp_get_max_threads"));
      if (r.parallel && r.max_threads) break;
      r = Gomp();
    }
    return r;
  }();
  return g;
}

struct GompJob {
  const CpuBinary* binary;
  char** ptrs;
  int64_t items, chunk;
  std::atomic<int64_t> next{0};
};

void gomp_worker(void* p) {
  auto* j = static_cast<GompJob*>(p);
  for (;;) {
    int64_t b = j->next.fetch_add(j->chunk);
    if (b >= j->items) return;
    j->binary->kernel(b, std::min(j->items, b + j->chunk), j->ptrs);
  }
}

// The kernel's items, in parallel.
void run_items(const CpuBinary& binary, char** ptrs) {
  int64_t items = binary.items();
  if (items <= 0) return;
  int64_t cost = std::max<int64_t>(binary.item_cost(), 1);
  const Gomp& g = gomp();
  Pool& pool = Pool::instance();
  // Threads: torch's (torch.set_num_threads) when kernels run on its team, capped by ours.
  int threads = g.parallel ? std::min(pool.threads(), std::max(1, g.max_threads())) : pool.threads();
  // At least ~32K elements per task; about 4 tasks per thread for balance.
  int64_t min_chunk = std::max<int64_t>(1, 32768 / cost);
  int64_t chunk = std::max<int64_t>(min_chunk, items / (4 * threads));
  if (threads <= 1 || items <= chunk) {
    binary.kernel(0, items, ptrs);
    return;
  }
  if (g.parallel) {
    GompJob job;
    job.binary = &binary;
    job.ptrs = ptrs;
    job.items = items;
    job.chunk = chunk;
    g.parallel(&gomp_worker, &job, static_cast<unsigned>(threads), 0);
    return;
  }
  std::function<void(int64_t, int64_t)> fn = [&](int64_t b, int64_t e) { binary.kernel(b, e, ptrs); };
  pool.run(items, fn, chunk);
}

}  // namespace

void cpu_launch(const CpuBinary& binary, char** ptrs) {
  run_items(binary, ptrs);
  if (binary.finish) binary.finish(ptrs);
}

void set_cpu_threads(int n) { Pool::instance().set_threads(n); }
int cpu_threads() { return Pool::instance().threads(); }

}  // namespace thunder::fuser
