// Operators and implementations that executors add at run time (thunder.extend).
//
// `make_custom_op` interns a kCustom symbol `module.name` (module: the executor's name) with a given
// signature and meta function. `make_custom_op_like` makes one whose outputs are those `like` would
// produce for the same arguments: `like`'s meta function runs in a scratch builder, whatever
// decomposition it records is dropped, and the custom op gets fresh output proxies of the same
// metadata. A custom op has no decomposition, so only an executor that registered an implementation
// of it can run it; claiming fails with the op's name otherwise.
//
// `make_checked_impl` makes the kExecutor symbol that runs a user-written implementation: it is tagged
// kTagCheckOutputs, so the runtime checks the implementation's first result against the outputs the
// meta function declared (runtime/output_check.h) instead of failing later, far from the cause.
#pragma once

#include <cstdint>
#include <string>

#include "executors/executor.h"
#include "ir/symbol.h"

namespace thunder {

const Symbol* make_custom_op(const std::string& module, const std::string& name, Signature signature,
                             MetaFn meta);
const Symbol* make_custom_op_like(const std::string& module, const std::string& name,
                                  const Symbol& like);

// A kExecutor symbol printed as `module.name`, implementing `implements` on executor `executor`
// with the Python callable `callable` (a bindings handle). Lives for the process.
const Symbol* make_checked_impl(const Symbol& implements, const std::string& executor,
                                const std::string& module, const std::string& name, int64_t callable);

}  // namespace thunder
