// CUDA code generation (see cuda_codegen.h).
#include "fuser/cuda_codegen.h"

#include "core/error.h"
#include "fuser/codegen_common.h"

namespace thunder::fuser {

std::string cuda_source(const KernelDef& k, const Layout& layout, CudaLaunch* launch) {
  throw NotImplementedError("fuser: CUDA code generation is not available yet");
}

}  // namespace thunder::fuser
