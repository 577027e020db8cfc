// CUDA driver and NVRTC, opened at run time. The few types and entry points used are declared here, so
// building needs no CUDA headers.
#include "fuser/cuda_backend.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <mutex>
#include <semaphore>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "fuser/codegen_common.h"
#include "fuser/disk_cache.h"

namespace thunder::fuser {

namespace {

// ---- driver API (cuda.h) ------------------------------------------------------------------------
using CUresult = int;
using CUdevice = int;
using CUcontext = void*;
using CUmodule = void*;
using CUfunction = void*;
using CUstream = void*;
constexpr CUresult kCudaSuccess = 0;
constexpr int kAttrMultiprocessorCount = 16;
constexpr int kAttrComputeCapabilityMajor = 75;
constexpr int kAttrComputeCapabilityMinor = 76;
constexpr int kAttrMaxSharedPerBlockOptin = 97;
constexpr int kFuncAttrMaxDynamicShared = 8;

struct Driver {
  CUresult (*cuInit)(unsigned) = nullptr;
  CUresult (*cuDriverGetVersion)(int*) = nullptr;
  CUresult (*cuDeviceGetCount)(int*) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice*, int) = nullptr;
  CUresult (*cuDeviceGetAttribute)(int*, int, CUdevice) = nullptr;
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*cuCtxGetCurrent)(CUcontext*) = nullptr;
  CUresult (*cuCtxSetCurrent)(CUcontext) = nullptr;
  CUresult (*cuModuleLoadData)(CUmodule*, const void*) = nullptr;
  CUresult (*cuModuleGetFunction)(CUfunction*, CUmodule, const char*) = nullptr;
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             CUstream, void**, void**) = nullptr;
  CUresult (*cuGetErrorString)(CUresult, const char**) = nullptr;
  CUresult (*cuFuncSetAttribute)(CUfunction, int, int) = nullptr;  // optional (CUDA >= 9)
  CUresult (*cuStreamIsCapturing)(CUstream, int*) = nullptr;       // optional (CUDA >= 10)
  CUresult (*cuOccupancyMaxActiveBlocksPerMultiprocessor)(int*, CUfunction, int,
                                                          size_t) = nullptr;  // optional
  int version = 0;
  int devices = 0;
  std::string why;
};

// ---- NVRTC (nvrtc.h) ------------------------------------------------------------------------------
using nvrtcResult = int;
using nvrtcProgram = void*;

struct Nvrtc {
  nvrtcResult (*nvrtcVersion)(int*, int*) = nullptr;
  const char* (*nvrtcGetErrorString)(nvrtcResult) = nullptr;
  nvrtcResult (*nvrtcCreateProgram)(nvrtcProgram*, const char*, const char*, int, const char* const*,
                                    const char* const*) = nullptr;
  nvrtcResult (*nvrtcCompileProgram)(nvrtcProgram, int, const char* const*) = nullptr;
  nvrtcResult (*nvrtcDestroyProgram)(nvrtcProgram*) = nullptr;
  nvrtcResult (*nvrtcGetProgramLogSize)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*nvrtcGetProgramLog)(nvrtcProgram, char*) = nullptr;
  nvrtcResult (*nvrtcGetPTXSize)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*nvrtcGetPTX)(nvrtcProgram, char*) = nullptr;
  nvrtcResult (*nvrtcGetCUBINSize)(nvrtcProgram, size_t*) = nullptr;  // NVRTC >= 11.1
  nvrtcResult (*nvrtcGetCUBIN)(nvrtcProgram, char*) = nullptr;
  nvrtcResult (*nvrtcGetNumSupportedArchs)(int*) = nullptr;  // NVRTC >= 11.2
  nvrtcResult (*nvrtcGetSupportedArchs)(int*) = nullptr;
  int major = 0, minor = 0;
  std::vector<int> archs;  // supported sm_XX as XX
  std::string path, why;
};

template <typename F>
bool sym(void* h, const char* name, F* f) {
  *f = reinterpret_cast<F>(::dlsym(h, name));
  return *f != nullptr;
}

const Nvrtc& nvrtc() {
  static std::once_flag once;
  static Nvrtc n;
  std::call_once(once, [] {
    std::vector<std::string> names;
    if (const char* e = std::getenv("THUNDER_NVRTC"); e && *e) names.push_back(e);
    std::vector<std::string> dirs = {"/usr/local/cuda/lib64/", "/usr/local/cuda/lib/", ""};
    if (const char* h = std::getenv("CUDA_HOME"); h && *h) dirs.insert(dirs.begin(), std::string(h) + "/lib64/");
    for (const std::string& d : dirs) {
      for (int v = 14; v >= 11; --v) names.push_back(d + "libnvrtc.so." + std::to_string(v));
      names.push_back(d + "libnvrtc.so");
    }
    void* h = nullptr;
    for (const std::string& name : names) {
      h = ::dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h) {
        n.path = name;
        break;
      }
    }
    if (!h) {
      n.why = "libnvrtc not found (looked in /usr/local/cuda/lib64 and the library path; THUNDER_NVRTC names one)";
      return;
    }
    bool ok = sym(h, "nvrtcVersion", &n.nvrtcVersion) && sym(h, "nvrtcGetErrorString", &n.nvrtcGetErrorString) &&
              sym(h, "nvrtcCreateProgram", &n.nvrtcCreateProgram) &&
              sym(h, "nvrtcCompileProgram", &n.nvrtcCompileProgram) &&
              sym(h, "nvrtcDestroyProgram", &n.nvrtcDestroyProgram) &&
              sym(h, "nvrtcGetProgramLogSize", &n.nvrtcGetProgramLogSize) &&
              sym(h, "nvrtcGetProgramLog", &n.nvrtcGetProgramLog) && sym(h, "nvrtcGetPTXSize", &n.nvrtcGetPTXSize) &&
              sym(h, "nvrtcGetPTX", &n.nvrtcGetPTX);
    if (!ok) {
      n.why = n.path + " lacks NVRTC entry points";
      n.nvrtcVersion = nullptr;
      return;
    }
    sym(h, "nvrtcGetCUBINSize", &n.nvrtcGetCUBINSize);
    sym(h, "nvrtcGetCUBIN", &n.nvrtcGetCUBIN);
    if (sym(h, "nvrtcGetNumSupportedArchs", &n.nvrtcGetNumSupportedArchs) &&
        sym(h, "nvrtcGetSupportedArchs", &n.nvrtcGetSupportedArchs)) {
      int count = 0;
      if (n.nvrtcGetNumSupportedArchs(&count) == 0 && count > 0) {
        n.archs.resize(count);
        if (n.nvrtcGetSupportedArchs(n.archs.data()) != 0) n.archs.clear();
      }
    }
    n.nvrtcVersion(&n.major, &n.minor);
  });
  return n;
}

const Driver& driver() {
  static std::once_flag once;
  static Driver d;
  std::call_once(once, [] {
    void* h = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = ::dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      d.why = "the CUDA driver (libcuda.so.1) is not installed";
      return;
    }
    bool ok = sym(h, "cuInit", &d.cuInit) && sym(h, "cuDriverGetVersion", &d.cuDriverGetVersion) &&
              sym(h, "cuDeviceGetCount", &d.cuDeviceGetCount) && sym(h, "cuDeviceGet", &d.cuDeviceGet) &&
              sym(h, "cuDeviceGetAttribute", &d.cuDeviceGetAttribute) &&
              sym(h, "cuDevicePrimaryCtxRetain", &d.cuDevicePrimaryCtxRetain) &&
              sym(h, "cuCtxGetCurrent", &d.cuCtxGetCurrent) && sym(h, "cuCtxSetCurrent", &d.cuCtxSetCurrent) &&
              sym(h, "cuModuleLoadData", &d.cuModuleLoadData) &&
              sym(h, "cuModuleGetFunction", &d.cuModuleGetFunction) && sym(h, "cuLaunchKernel", &d.cuLaunchKernel) &&
              sym(h, "cuGetErrorString", &d.cuGetErrorString);
    sym(h, "cuFuncSetAttribute", &d.cuFuncSetAttribute);    // optional
    sym(h, "cuStreamIsCapturing", &d.cuStreamIsCapturing);  // optional
    sym(h, "cuOccupancyMaxActiveBlocksPerMultiprocessor",
        &d.cuOccupancyMaxActiveBlocksPerMultiprocessor);
    if (!ok) {
      d.why = "libcuda.so.1 lacks driver entry points";
      d.cuInit = nullptr;
      return;
    }
    CUresult r = d.cuInit(0);
    if (r != kCudaSuccess) {
      const char* s = nullptr;
      d.cuGetErrorString(r, &s);
      d.why = std::string("cuInit failed: ") + (s ? s : std::to_string(r));
      d.cuInit = nullptr;
      return;
    }
    d.cuDriverGetVersion(&d.version);
    if (d.cuDeviceGetCount(&d.devices) != kCudaSuccess || d.devices <= 0) {
      d.why = "no CUDA device";
      d.cuInit = nullptr;
      return;
    }
  });
  return d;
}

std::string cu_error(CUresult r) {
  const char* s = nullptr;
  if (driver().cuGetErrorString) driver().cuGetErrorString(r, &s);
  return s ? std::string(s) : "CUDA error " + std::to_string(r);
}

void check(CUresult r, const char* what) {
  if (r != kCudaSuccess) throw Error(std::string("fuser: ") + what + " failed: " + cu_error(r));
}

struct DeviceInfo {
  CUcontext ctx = nullptr;
  int arch = 0;  // e.g. 90
  int sms = 0;
  int smem_optin = 48 * 1024;  // dynamic shared memory a block may opt in to
};

std::mutex g_mu;
std::unordered_map<int, DeviceInfo> g_devices;
std::unordered_map<std::string, std::shared_ptr<CudaFunction>> g_loaded;

const DeviceInfo& device_info(int device) {
  auto it = g_devices.find(device);
  if (it != g_devices.end()) return it->second;
  const Driver& d = driver();
  if (!d.cuInit) throw Error("fuser: CUDA unavailable: " + d.why);
  CUdevice dev = 0;
  check(d.cuDeviceGet(&dev, device), "cuDeviceGet");
  DeviceInfo info;
  int major = 0, minor = 0;
  check(d.cuDeviceGetAttribute(&major, kAttrComputeCapabilityMajor, dev), "cuDeviceGetAttribute");
  check(d.cuDeviceGetAttribute(&minor, kAttrComputeCapabilityMinor, dev), "cuDeviceGetAttribute");
  check(d.cuDeviceGetAttribute(&info.sms, kAttrMultiprocessorCount, dev), "cuDeviceGetAttribute");
  int optin = 0;
  if (d.cuFuncSetAttribute &&
      d.cuDeviceGetAttribute(&optin, kAttrMaxSharedPerBlockOptin, dev) == kCudaSuccess &&
      optin > info.smem_optin) {
    info.smem_optin = optin;
  }
  info.arch = major * 10 + minor;
  check(d.cuDevicePrimaryCtxRetain(&info.ctx, dev), "cuDevicePrimaryCtxRetain");
  return g_devices[device] = info;
}

// Makes the device's primary context current (torch works in it too) while it lives, when another
// one is, and restores that one after: the runtime's current device (torch.cuda.current_device())
// is the current context's, and a kernel on cuda:1 must not leave cuda:1 current.
class ContextGuard {
 public:
  explicit ContextGuard(CUcontext ctx) {
    check(driver().cuCtxGetCurrent(&prev_), "cuCtxGetCurrent");
    if (prev_ != ctx) {
      check(driver().cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
      switched_ = true;
    }
  }
  ~ContextGuard() {
    if (switched_) driver().cuCtxSetCurrent(prev_);
  }
  ContextGuard(const ContextGuard&) = delete;
  ContextGuard& operator=(const ContextGuard&) = delete;

 private:
  CUcontext prev_ = nullptr;
  bool switched_ = false;
};

// --fmad=false: every operation rounds, as on the CPU (x * 0.1 - max(x * 0.1) is 0 at the maximum,
// not the error of an unrounded product).
const char* kStdFlag = "--std=c++17";
const char* kFmadFlag = "--fmad=false";

struct Compiled {
  bool ok = false;
  bool cubin = false;
  std::string binary, log;
};

// The target for `arch`: a cubin for sm_<arch> when this NVRTC knows it, else PTX for the newest
// compute_XX it knows below it (the driver compiles the PTX when loading).
std::pair<std::string, bool> target_for(int arch) {
  const Nvrtc& n = nvrtc();
  bool known = n.archs.empty() ? false : std::find(n.archs.begin(), n.archs.end(), arch) != n.archs.end();
  if (known && n.nvrtcGetCUBIN) return {"--gpu-architecture=sm_" + std::to_string(arch), true};
  int best = 0;
  for (int a : n.archs) {
    if (a <= arch) best = std::max(best, a);
  }
  if (best == 0) best = arch;
  return {"--gpu-architecture=compute_" + std::to_string(best), false};
}

Compiled compile(const std::string& source, const std::string& target, bool cubin) {
  const Nvrtc& n = nvrtc();
  Compiled c;
  c.cubin = cubin;
  nvrtcProgram prog = nullptr;
  nvrtcResult r = n.nvrtcCreateProgram(&prog, source.c_str(), "thunder_kernel.cu", 0, nullptr, nullptr);
  if (r != 0) {
    c.log = std::string("nvrtcCreateProgram: ") + n.nvrtcGetErrorString(r);
    return c;
  }
  std::vector<const char*> opts = {target.c_str(), kStdFlag, kFmadFlag};
  const char* extra = std::getenv("THUNDER_NVRTC_FLAGS");  // e.g. --ptxas-options=-v
  if (extra && *extra) opts.push_back(extra);
  r = n.nvrtcCompileProgram(prog, static_cast<int>(opts.size()), opts.data());
  size_t log_size = 0;
  n.nvrtcGetProgramLogSize(prog, &log_size);
  if (log_size > 1) {
    c.log.resize(log_size);
    n.nvrtcGetProgramLog(prog, c.log.data());
    c.log.resize(log_size - 1);
  }
  if (r == 0) {
    size_t size = 0;
    if (cubin) {
      n.nvrtcGetCUBINSize(prog, &size);
      c.binary.resize(size);
      n.nvrtcGetCUBIN(prog, c.binary.data());
    } else {
      n.nvrtcGetPTXSize(prog, &size);
      c.binary.resize(size);
      n.nvrtcGetPTX(prog, c.binary.data());
    }
    c.ok = true;
  } else if (c.log.empty()) {
    c.log = n.nvrtcGetErrorString(r);
  }
  n.nvrtcDestroyProgram(&prog);
  return c;
}

}  // namespace

int nvrtc_version() {
  const Nvrtc& n = nvrtc();
  return n.nvrtcVersion ? n.major * 1000 + n.minor * 10 : 0;
}

bool cuda_stream_capturing(const CudaFunction& f, void* stream) {
  const Driver& d = driver();
  if (!d.cuStreamIsCapturing) return false;  // no graphs before CUDA 10
  // The function's context: a backward runs on autograd's thread, which may have none current.
  ContextGuard context(f.context);
  int status = 0;
  check(d.cuStreamIsCapturing(stream, &status), "cuStreamIsCapturing");
  return status != 0;  // active (or invalidated) capture
}

bool cuda_available(std::string* why) {
  const Driver& d = driver();
  if (!d.cuInit) {
    if (why) *why = d.why;
    return false;
  }
  const Nvrtc& n = nvrtc();
  if (!n.nvrtcVersion) {
    if (why) *why = n.why;
    return false;
  }
  if (why) why->clear();
  return true;
}

bool nvrtc_compile_check(const std::string& source, int arch, std::string* log, std::string* why) {
  const Nvrtc& n = nvrtc();
  if (!n.nvrtcVersion) {
    if (why) *why = n.why;
    if (log) log->clear();
    return false;
  }
  auto [target, cubin] = target_for(arch);
  Compiled c = compile(source, target, cubin);
  if (log) *log = c.log;
  return c.ok;
}

namespace {

// Where a source's binary lives: its cache key (source, NVRTC version, flags, architecture), the
// key of the loaded module (per device) and the disk cache file. Requires g_mu.
struct CacheEntry {
  std::string key, mem_key, base, path, target;
  bool cubin = true;
};

CacheEntry cache_entry(const std::string& source, int device) {
  const Nvrtc& n = nvrtc();
  const DeviceInfo& info = device_info(device);
  CacheEntry e;
  std::tie(e.target, e.cubin) = target_for(info.arch);
  e.key = hash_hex(source + "\n--\nnvrtc " + std::to_string(n.major) + "." + std::to_string(n.minor) +
                   "\n" + e.target + " " + kStdFlag + " " + kFmadFlag + "\narch " +
                   std::to_string(info.arch));
  e.mem_key = e.key + "@" + std::to_string(device);
  const std::string& dir = cache_dir();
  e.base = dir.empty() ? "/tmp/thunder-cuda-" + e.key : dir + "/cuda-" + e.key;
  e.path = e.base + (e.cubin ? ".cubin" : ".ptx");
  return e;
}

// NVRTC compiles started by cuda_prefetch, by cache key: the binary, or empty when the compile
// failed (cuda_load then compiles again to report the error). Under g_mu; never destroyed, so a
// compile still running at exit does not block it.
auto& g_compiling = *new std::unordered_map<std::string, std::shared_future<std::string>>();

// At most one NVRTC compile per core at a time.
std::counting_semaphore<256>& compile_slots() {
  static std::counting_semaphore<256> slots(
      std::clamp<int>(static_cast<int>(std::thread::hardware_concurrency()), 1, 256));
  return slots;
}

// Compiles `source` and records it in the statistics; the binary, or empty with the log in `log`.
std::string compile_counted(const std::string& source, const CacheEntry& e, std::string* log) {
  auto t0 = std::chrono::steady_clock::now();
  Compiled c = compile(source, e.target, e.cubin);
  if (!c.ok) {
    if (log) *log = std::move(c.log);
    return {};
  }
  std::lock_guard<std::mutex> stats_lock(cache_stats_mutex());
  auto& st = cache_stats();
  ++st.compiles;
  st.compile_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return std::move(c.binary);
}

}  // namespace

void cuda_prefetch(const std::string& source, int device) {
  if (!cuda_available()) return;
  std::lock_guard<std::mutex> lock(g_mu);
  CacheEntry e = cache_entry(source, device);
  if (g_loaded.count(e.mem_key) || g_compiling.count(e.key) || ::access(e.path.c_str(), R_OK) == 0) {
    return;
  }
  g_compiling[e.key] = std::async(std::launch::async, [source, e] {
                         compile_slots().acquire();
                         std::string binary = compile_counted(source, e, nullptr);
                         compile_slots().release();
                         if (!binary.empty()) cache_write(e.path, e.key, binary);
                         return binary;
                       }).share();
}

std::shared_ptr<CudaFunction> cuda_load(const std::string& source, int device, const CudaLaunch& launch) {
  std::string why;
  if (!cuda_available(&why)) throw Error("fuser: CUDA unavailable: " + why);
  const Driver& d = driver();
  std::lock_guard<std::mutex> lock(g_mu);
  const DeviceInfo& info = device_info(device);
  const CacheEntry e = cache_entry(source, device);
  const std::string& key = e.key;
  const std::string& mem_key = e.mem_key;
  const std::string& path = e.path;
  auto it = g_loaded.find(mem_key);
  if (it != g_loaded.end()) {
    std::lock_guard<std::mutex> stats_lock(cache_stats_mutex());
    ++cache_stats().memory_hits;
    return it->second;
  }
  ContextGuard context(info.ctx);
  std::string binary;
  bool from_disk = false;
  if (auto pending = g_compiling.find(key); pending != g_compiling.end()) {
    binary = pending->second.get();  // compiled in the background (empty: it failed)
    g_compiling.erase(pending);
  }
  if (binary.empty()) {
    if (auto data = cache_read(path, key)) {
      binary = std::move(*data);
      from_disk = true;
    }
  }
  if (binary.empty()) {
    std::string log;
    binary = compile_counted(source, e, &log);
    if (binary.empty()) {
      std::string src = e.base + ".cu";
      std::ofstream f(src);
      f << source;
      throw Error("fuser: the CUDA kernel failed to compile (source: " + src + ", " + e.target +
                  ")\n" + log.substr(0, 8000));
    }
    cache_write(path, key, binary);
  }
  auto f = std::make_shared<CudaFunction>();
  CUresult r = d.cuModuleLoadData(&f->module, binary.data());
  if (r != kCudaSuccess) {
    if (from_disk) {
      std::lock_guard<std::mutex> stats_lock(cache_stats_mutex());
      ++cache_stats().rejected;
    }
    throw Error("fuser: cuModuleLoadData failed for " + path + ": " + cu_error(r));
  }
  check(d.cuModuleGetFunction(&f->function, f->module, launch.name.c_str()), "cuModuleGetFunction");
  // Raised for any dynamic shared memory: the default 48 KB counts the kernel's static arrays too
  // (48 KB of rows beside 10 KB of static arrays fail to launch).
  if (launch.shared_bytes > 0 && d.cuFuncSetAttribute) {
    check(d.cuFuncSetAttribute(f->function, kFuncAttrMaxDynamicShared, launch.shared_bytes),
          "cuFuncSetAttribute");
  } else if (launch.shared_bytes > 48 * 1024) {
    throw Error("fuser: the driver cannot raise a kernel's shared memory limit");
  }
  if (from_disk) {
    std::lock_guard<std::mutex> stats_lock(cache_stats_mutex());
    ++cache_stats().disk_hits;
  }
  if (!launch.finish_name.empty()) {
    check(d.cuModuleGetFunction(&f->finish, f->module, launch.finish_name.c_str()),
          "cuModuleGetFunction");
  }
  f->context = info.ctx;
  f->device = device;
  f->launch = launch;
  // The kernels loop over their work: a grid of many waves gains nothing, a capped one saves the
  // launch of idle blocks for huge tensors.
  f->max_grid = std::max(1, info.sms) * std::max(1, 2048 / std::max(1, launch.block)) * 16;
  if (launch.resident_grid) {
    // As many blocks as the device runs at once (the occupancy its registers and shared memory
    // allow): each block's partial results are combined afterwards, so fewer blocks, fewer
    // partials.
    int per_sm = std::max(1, 2048 / std::max(1, launch.block));
    if (d.cuOccupancyMaxActiveBlocksPerMultiprocessor) {
      int n = 0;
      if (d.cuOccupancyMaxActiveBlocksPerMultiprocessor(&n, f->function, launch.block,
                                                        static_cast<size_t>(launch.shared_bytes)) ==
              kCudaSuccess &&
          n > 0) {
        per_sm = n;
      }
    }
    // THUNDER_CUDA_COLUMN_BLOCKS_PER_SM caps it lower (fewer partials, fewer threads running).
    per_sm = static_cast<int>(std::min<int64_t>(
        per_sm, env_count("THUNDER_CUDA_COLUMN_BLOCKS_PER_SM", per_sm, 1, "blocks")));
    f->max_grid = std::max(1, info.sms) * per_sm;
  }
  return g_loaded[mem_key] = f;
}

int cuda_smem_limit(int device) {
  std::lock_guard<std::mutex> lock(g_mu);
  int limit = device_info(device).smem_optin;
  // THUNDER_CUDA_SMEM_LIMIT (bytes) lowers what one block may use: rows that no longer fit are read
  // through L2 once per pass instead of kept in shared memory (a schedule to compare by benchmark).
  return static_cast<int>(
      std::min<int64_t>(limit, env_count("THUNDER_CUDA_SMEM_LIMIT", limit, 1024, "bytes")));
}

void cuda_launch(const CudaFunction& f, const Layout& layout, const KernelDef& k, char** ptrs, void* stream) {
  if (f.launch.grid <= 0) return;
  const Driver& d = driver();
  ContextGuard context(f.context);
  size_t n = k.inputs.size() + k.tensor_outputs() + (f.launch.workspace_bytes > 0 ? 1 : 0);
  std::vector<void*> params(n + (f.finish ? 1 : 0));  // (and the second kernel's block count)
  // Host inputs (random states) are passed by value: the driver copies the argument from their
  // data.
  const std::vector<bool>& by_value = f.launch.by_value;
  for (size_t i = 0; i < n; ++i) {
    params[i] = i < by_value.size() && by_value[i] ? static_cast<void*>(ptrs[i]) : &ptrs[i];
  }
  int64_t grid = f.launch.exact_grid ? f.launch.grid : std::min<int64_t>(f.launch.grid, f.max_grid);
  auto launch = [&](void* fn, int64_t blocks, int threads, int smem) {
    CUresult r =
        d.cuLaunchKernel(fn, static_cast<unsigned>(blocks), 1, 1, static_cast<unsigned>(threads), 1,
                         1, static_cast<unsigned>(smem), stream, params.data(), nullptr);
    if (r != kCudaSuccess) throw Error("fuser: cuLaunchKernel failed: " + cu_error(r));
  };
  launch(f.function, grid, f.launch.block, f.launch.shared_bytes);
  // The kernel combining the partials per column (reductions over rows per column), after it, told
  // the row kernel's block count.
  if (f.finish && f.launch.finish_grid > 0) {
    unsigned blocks = static_cast<unsigned>(grid);
    params[n] = &blocks;
    launch(f.finish, f.launch.finish_grid, f.launch.finish_block, 0);
  }
}

}  // namespace thunder::fuser
