// Bindings of the autograd layer's run-time registration: gradients of user and executor operators
// given as Python callables (thunder.core.transforms.register_grad).
#pragma once

#include <nanobind/nanobind.h>

namespace thunder::bindings {

void bind_autograd(nanobind::module_& m);

}  // namespace thunder::bindings
