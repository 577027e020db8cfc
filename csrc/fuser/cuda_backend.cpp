// CUDA driver and NVRTC, opened at run time.
#include "fuser/cuda_backend.h"

#include "core/error.h"

namespace thunder::fuser {

bool cuda_available(std::string* why) {
  if (why) *why = "the CUDA backend is not built yet";
  return false;
}

std::shared_ptr<CudaFunction> cuda_load(const std::string&, int, const CudaLaunch&) {
  throw NotImplementedError("fuser: CUDA backend unavailable");
}

void cuda_launch(const CudaFunction&, const Layout&, const KernelDef&, char**, void*) {
  throw NotImplementedError("fuser: CUDA backend unavailable");
}

}  // namespace thunder::fuser
