// Core IR: type promotion, signatures, the printer, and the DCE/CSE/functionalization passes, each
// checked as before/expected on small traces built here.
#include <gtest/gtest.h>

#include <limits>

#include "core/error.h"
#include "executors/cuda_graphs.h"
#include "executors/executor.h"
#include "executors/group_casts.h"
#include "ir/builder.h"
#include "ir/printer.h"
#include "ops/lang.h"
#include "ops/registry.h"
#include "transforms/cse.h"
#include "transforms/dce.h"
#include "transforms/decompose.h"
#include "transforms/draw_dropout.h"
#include "transforms/functionalize.h"

namespace thunder {
namespace {

class CoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ensure_builtin_ops(); }
  TensorRef input(Builder& b, const std::string& name, Shape shape, DType dt = DType::kFloat32) {
    return b.new_tensor(std::move(shape), dt, Device::cpu(), false, name);
  }
  Trace finish(Builder& b, std::vector<TensorRef> inputs, Value out) {
    Trace t;
    t.inputs = std::move(inputs);
    t.bsyms = b.take();
    t.output = std::move(out);
    return t;
  }
  std::vector<std::string> names(const Trace& t) {
    std::vector<std::string> out;
    for (const BSymRef& b : t.bsyms) out.push_back(b->sym->qualname());
    return out;
  }
};

TEST_F(CoreTest, PromoteTypesFollowsTorch) {
  EXPECT_EQ(promote_types(DType::kUInt8, DType::kInt8), DType::kInt16);
  EXPECT_EQ(promote_types(DType::kBool, DType::kInt32), DType::kInt32);
  EXPECT_EQ(promote_types(DType::kFloat16, DType::kBFloat16), DType::kFloat32);
  EXPECT_EQ(promote_types(DType::kInt64, DType::kFloat16), DType::kFloat16);
  EXPECT_EQ(promote_types(DType::kComplex64, DType::kFloat64), DType::kComplex128);
}

TEST_F(CoreTest, ResultTypeUsesPriorityTiers) {
  Builder b;
  auto i64 = input(b, "a", {2}, DType::kInt64);
  auto f16 = input(b, "h", {2}, DType::kFloat16);
  auto f64_0d = input(b, "s", {}, DType::kFloat64);
  // int tensor + python float -> default float
  EXPECT_EQ(lang::result_type({Value(i64), Value(2.5)}), DType::kFloat32);
  // float16 tensor + zero-dim float64 tensor -> float16 (same category, dimensioned wins)
  EXPECT_EQ(lang::result_type({Value(f16), Value(f64_0d)}), DType::kFloat16);
  // int tensor + zero-dim float64 tensor -> float64 (higher category from the zero-dim tier)
  EXPECT_EQ(lang::result_type({Value(i64), Value(f64_0d)}), DType::kFloat64);
  // bool python scalar does not promote an int tensor
  EXPECT_EQ(lang::result_type({Value(i64), Value(true)}), DType::kInt64);
}

TEST_F(CoreTest, BroadcastShapes) {
  EXPECT_EQ(lang::broadcast_shapes({2, 1, 3}, {4, 1}), (Shape{2, 4, 3}));
  EXPECT_THROW(lang::broadcast_shapes({2, 3}, {4}), ValueError);
}

TEST_F(CoreTest, SignatureBindsPositionalKeywordAndDefaults) {
  Signature s = Signature::parse("input, other, *, alpha=1");
  auto bound = s.bind("add", {Value(int64_t{1}), Value(int64_t{2})}, {{"alpha", Value(3.0)}});
  ASSERT_EQ(bound.size(), 3u);
  EXPECT_EQ(bound[2].as_double(), 3.0);
  auto defaults = s.bind("add", {Value(int64_t{1}), Value(int64_t{2})}, {});
  EXPECT_EQ(defaults[2].as_int(), 1);
  EXPECT_THROW(s.bind("add", {Value(int64_t{1})}, {}), TypeError);
  EXPECT_THROW(s.bind("add", {Value(1), Value(2), Value(3)}, {}), TypeError);
  EXPECT_THROW(s.bind("add", {Value(1), Value(2)}, {{"beta", Value(1)}}), TypeError);
  Signature v = Signature::parse("input, *shape");
  auto packed = v.bind("view", {Value(1), Value(2), Value(3)}, {});
  EXPECT_EQ(packed[1].as_int_list(), (std::vector<int64_t>{2, 3}));
  auto seq = v.bind("view", {Value(1), Value::ints({4, 5})}, {});
  EXPECT_EQ(seq[1].as_int_list(), (std::vector<int64_t>{4, 5}));
}

TEST_F(CoreTest, CompositeRecordsDecompositionWithPromotion) {
  Builder b;
  auto x = input(b, "x", {2, 3}, DType::kInt64);
  auto y = input(b, "y", {3}, DType::kFloat32);
  Value out = b.call(ltorch_symbol("add"), {Value(x), Value(y)});
  EXPECT_EQ(out.as_tensor()->dtype(), DType::kFloat32);
  EXPECT_EQ(out.as_tensor()->shape(), (Shape{2, 3}));
  auto bsyms = b.take();
  ASSERT_EQ(bsyms.size(), 1u);
  std::vector<std::string> subs;
  for (const BSymRef& s : bsyms[0]->subsymbols) subs.push_back(s->sym->qualname());
  EXPECT_EQ(subs, (std::vector<std::string>{"prims.convert_element_type", "prims.broadcast_in_dim",
                                            "prims.add"}));
}

TEST_F(CoreTest, PrinterEmitsAnnotatedPython) {
  Builder b;
  auto x = input(b, "x", {4, 2});
  Value out = b.call(ltorch_symbol("mul"), {Value(x), Value(2.0)});
  Trace t = finish(b, {x}, out);
  t.stage = "captured";
  std::string py = t.python();
  EXPECT_NE(py.find("def computation(x):"), std::string::npos) << py;
  EXPECT_NE(py.find("t0 = ltorch.mul(x, 2.0)  # t0: \"cpu f32[4, 2]\""), std::string::npos) << py;
  EXPECT_NE(py.find("    # t0 = prims.mul(x, 2.0)"), std::string::npos) << py;
  EXPECT_NE(py.find("  return t0"), std::string::npos) << py;
}

TEST_F(CoreTest, PrinterReprsConstants) {
  EXPECT_EQ(python_repr(Value(0.1)), "0.1");
  EXPECT_EQ(python_repr(Value(2.0)), "2.0");
  EXPECT_EQ(python_repr(Value(std::numeric_limits<double>::infinity())), "float('inf')");
  EXPECT_EQ(python_repr(Value::tuple({Value(1)})), "(1,)");
  EXPECT_EQ(python_repr(Value(Slice{1, std::nullopt, 2})), "slice(1, None, 2)");
  EXPECT_EQ(python_repr(Value(DType::kBFloat16)), "torch.bfloat16");
  EXPECT_EQ(python_repr(Value(std::string("it's"))), "'it\\'s'");
}

TEST_F(CoreTest, DceRemovesUnusedAndKeepsWriteBacks) {
  Builder b;
  auto x = input(b, "x", {3});
  auto y = input(b, "y", {3});
  Value used = b.call(ltorch_symbol("add"), {Value(x), Value(y)});
  b.call(ltorch_symbol("mul"), {Value(x), Value(y)});  // dead
  b.call(prims::copy_(), {used, Value(y)});             // a write-back: kept
  Trace t = dce(finish(b, {x, y}, used));
  EXPECT_EQ(names(t), (std::vector<std::string>{"ltorch.add", "prims.copy_"}));
}

TEST_F(CoreTest, CseMergesEqualComputationsButNotRandomOnes) {
  Builder b;
  auto x = input(b, "x", {3});
  Value e1 = b.call(ltorch_symbol("exp"), {Value(x)});
  Value e2 = b.call(ltorch_symbol("exp"), {Value(x)});
  Value s = b.call(ltorch_symbol("add"), {e1, e2});
  Value r1 = b.call(prims::uniform(), {Value::ints({3}), Value(0.0), Value(1.0)},
                    {{"device", Value(Device::cpu())}, {"dtype", Value(DType::kFloat32)}});
  Value r2 = b.call(prims::uniform(), {Value::ints({3}), Value(0.0), Value(1.0)},
                    {{"device", Value(Device::cpu())}, {"dtype", Value(DType::kFloat32)}});
  Trace t = cse(finish(b, {x}, Value::tuple({s, r1, r2})));
  EXPECT_EQ(names(t), (std::vector<std::string>{"ltorch.exp", "ltorch.add", "prims.uniform",
                                                "prims.uniform"}));
  // The add now reads the first exp twice.
  const BoundSymbol& add = *t.bsyms[1];
  EXPECT_EQ(add.args[0].as_tensor(), add.args[1].as_tensor());
}

TEST_F(CoreTest, DrawDropoutWritesPhiloxDrawsAndKeepsTheOutput) {
  Builder b;
  auto x = input(b, "x", {4, 8});
  auto w = b.new_tensor({4, 8}, DType::kFloat32, Device::cpu(), true, "w");
  Value d1 = b.call(ltorch_symbol("dropout"), {Value(x), Value(0.1), Value(true), Value(false)});
  Value d2 = b.call(ltorch_symbol("dropout"), {Value(w), Value(0.1), Value(true), Value(false)});
  Value out = Value::tuple({d1, d2});
  Trace before = finish(b, {x, w}, out);
  Trace t = draw_dropout_in_kernels(before);
  EXPECT_EQ(names(t), (std::vector<std::string>{"prims.philox_state", "prims.uniform_philox",
                                                "ltorch.lt", "ltorch.mul", "ltorch.where",
                                                "prims.philox_state", "prims.uniform_philox",
                                                "ltorch.lt", "ltorch.mul", "ltorch.where"}))
      << t.python();
  // The dropouts' outputs are defined by their last operation, so later readers are unchanged.
  EXPECT_EQ(t.bsyms[4]->output.as_tensor(), d1.as_tensor());
  EXPECT_EQ(t.bsyms[9]->output.as_tensor(), d2.as_tensor());
  // Each draw has its own state; the mask keeps 1 - p.
  EXPECT_NE(t.bsyms[1]->args[1].as_tensor(), t.bsyms[6]->args[1].as_tensor());
  EXPECT_DOUBLE_EQ(t.bsyms[2]->args[1].as_double(), 0.9);
  // In training, an input that requires grad is left to dropout's gradient rule.
  Trace tr = draw_dropout_in_kernels(before, {.skip_inputs_requiring_grad = true});
  EXPECT_EQ(names(tr),
            (std::vector<std::string>{"prims.philox_state", "prims.uniform_philox", "ltorch.lt",
                                      "ltorch.mul", "ltorch.where", "ltorch.dropout"}))
      << tr.python();
}

TEST_F(CoreTest, CudaGraphPlanAcceptsOneDevicesWorkAndNamesWhatBlocksIt) {
  const Device gpu = Device::parse("cuda:1");
  {
    Builder b;
    auto x = b.new_tensor({4, 8}, DType::kFloat32, gpu, false, "x");
    auto buf = b.new_tensor({4, 8}, DType::kFloat32, gpu, false, "buf");
    Value y = b.call(ltorch_symbol("add"), {Value(x), Value(buf)});
    Value z = b.call(ltorch_symbol("add_"), {Value(buf), y});
    CudaGraphPlan p = plan_cuda_graph(functionalize(finish(b, {x, buf}, z)));
    EXPECT_EQ(p.blocker, "");
    EXPECT_EQ(p.device, 1);
    EXPECT_EQ(p.written_inputs, std::vector<int>{1});  // buf is written in place
  }
  {
    Builder b;
    auto x = b.new_tensor({4, 8}, DType::kFloat32, gpu, true, "x");
    Value d = b.call(ltorch_symbol("dropout"), {Value(x), Value(0.1), Value(true), Value(false)});
    CudaGraphPlan p = plan_cuda_graph(draw_dropout_in_kernels(finish(b, {x}, d)));
    EXPECT_NE(p.blocker.find("'prims.philox_state'"), std::string::npos) << p.blocker;
    EXPECT_NE(p.blocker.find("fuse_random"), std::string::npos) << p.blocker;
    EXPECT_EQ(p.device, -1);
  }
  {
    Builder b;
    auto x = b.new_tensor({4}, DType::kFloat32, gpu, false, "x");
    auto c = input(b, "c", {4});
    Value y = b.call(ltorch_symbol("mul"), {Value(x), Value(x)});
    CudaGraphPlan p = plan_cuda_graph(finish(b, {x, c}, Value::tuple({y, Value(c)})));
    EXPECT_EQ(p.blocker,
              "input 'c' is a cpu tensor; a CUDA graph replays only the work of one CUDA device");
    auto other = b.new_tensor({4}, DType::kFloat32, Device::parse("cuda:0"), false, "o");
    p = plan_cuda_graph(finish(b, {x, other}, y));
    EXPECT_NE(p.blocker.find("input 'o' is a cuda:0 tensor"), std::string::npos) << p.blocker;
  }
}

TEST_F(CoreTest, FunctionalizeRewritesInplaceAndWritesBackInputs) {
  Builder b;
  auto x = input(b, "x", {3});
  auto y = input(b, "y", {3});
  Value x1 = b.call(ltorch_symbol("add_"), {Value(x), Value(y)});
  Value x2 = b.call(ltorch_symbol("mul_"), {x1, Value(2)});
  Trace t = functionalize(finish(b, {x, y}, x2));
  EXPECT_EQ(names(t), (std::vector<std::string>{"ltorch.add", "ltorch.mul", "prims.copy_"}));
  const BoundSymbol& wb = *t.bsyms.back();
  EXPECT_EQ(wb.args[0].as_tensor(), x2.as_tensor());  // the latest version ...
  EXPECT_EQ(wb.args[1].as_tensor(), x);               // ... written into the input
}

TEST_F(CoreTest, InplaceRefusesWideningCast) {
  Builder b;
  auto i = input(b, "i", {3}, DType::kInt64);
  // Error (Python's RuntimeError, as eager raises): a TypeError would make `i += 1.5` fall back to
  // i = i + 1.5.
  EXPECT_THROW(b.call(ltorch_symbol("add_"), {Value(i), Value(1.5)}), Error);
}

TEST_F(CoreTest, DecomposeInlinesToPrims) {
  Builder b;
  auto x = input(b, "x", {3});
  Value s = b.call(ltorch_symbol("sigmoid"), {Value(x)});
  Trace t = decompose(finish(b, {x}, s));
  for (const BSymRef& bs : t.bsyms) EXPECT_TRUE(bs->sym->is_prim()) << bs->sym->qualname();
}

TEST_F(CoreTest, InputCastsGroupByDtypeWithinTheirByteBudget) {
  Builder b;
  auto w1 = input(b, "w1", {4, 8});
  auto w2 = input(b, "w2", {8, 8});
  auto w3 = input(b, "w3", {8});
  auto x = input(b, "x", {2, 4});
  const Symbol& convert = prims::convert_element_type();
  Value c1 = b.call(convert, {Value(w1), Value(DType::kBFloat16)});
  Value xe = b.call(ltorch_symbol("exp"), {Value(x)});
  Value c2 = b.call(convert, {Value(w2), Value(DType::kBFloat16)});
  Value cx = b.call(convert, {xe, Value(DType::kBFloat16)});        // not an input: stays
  Value c3 = b.call(convert, {Value(w3), Value(DType::kFloat16)});  // alone in its dtype: stays
  Trace t = finish(b, {w1, w2, w3, x}, Value::tuple({c1, c2, cx, c3}));
  Executor ex("ex");
  for (const Symbol* sym : {&convert, SymbolTable::instance().find("prims", "exp"),
                            &ltorch_symbol("convert_tensors")}) {
    ex.register_impl(sym, ex.make_impl_symbol(*sym, "k", sym->name, -1));
  }
  Trace claimed = claim_executors(t, {&ex});
  Trace g = group_input_casts(claimed, {&ex});
  EXPECT_EQ(names(g),
            (std::vector<std::string>{"k.convert_tensors", "k.exp", "k.convert_element_type",
                                      "k.convert_element_type"}))
      << g.python();
  EXPECT_EQ(g.bsyms[0]->output.items()[1].as_tensor(), c2.as_tensor());  // the same proxies
  // A budget of 100 bytes: w1's 64 bf16 bytes and w2's 128 no longer share a group.
  EXPECT_EQ(names(group_input_casts(claimed, {&ex}, 100)), names(claimed));
}

TEST_F(CoreTest, CastsOfReturnedValuesGroupWhereTheLastWas) {
  Builder b;
  auto x = input(b, "x", {2, 4}, DType::kBFloat16);
  const Symbol& convert = prims::convert_element_type();
  const Symbol& exp = *SymbolTable::instance().find("prims", "exp");
  Value e1 = b.call(exp, {Value(x)});
  Value g1 = b.call(convert, {e1, Value(DType::kFloat32)});  // only returned
  Value e2 = b.call(exp, {e1});
  Value g2 = b.call(convert, {e2, Value(DType::kFloat32)});  // only returned
  Value e3 = b.call(convert, {e2, Value(DType::kFloat32)});  // read below: stays
  Value e4 = b.call(exp, {e3});
  Trace t = finish(b, {x}, Value::tuple({g1, g2, e4}));
  Executor ex("ex");
  for (const Symbol* sym : {&convert, &exp, &ltorch_symbol("convert_tensors")}) {
    ex.register_impl(sym, ex.make_impl_symbol(*sym, "k", sym->name, -1));
  }
  Trace g = group_input_casts(claim_executors(t, {&ex}), {&ex});
  EXPECT_EQ(names(g), (std::vector<std::string>{"k.exp", "k.exp", "k.convert_tensors",
                                                "k.convert_element_type", "k.exp"}))
      << g.python();
}

TEST_F(CoreTest, ClaimPrefersFirstExecutorAndFlattensUnclaimed) {
  Builder b;
  auto x = input(b, "x", {3});
  Value s = b.call(ltorch_symbol("sigmoid"), {Value(x)});
  Trace t = finish(b, {x}, s);
  Executor prims_only("prims_only");
  for (const char* p : {"neg", "exp", "add", "reciprocal"}) {
    const Symbol& sym = *SymbolTable::instance().find("prims", p);
    prims_only.register_impl(&sym, prims_only.make_impl_symbol(sym, "k", p, -1));
  }
  Trace claimed = claim_executors(t, {&prims_only});
  EXPECT_EQ(names(claimed), (std::vector<std::string>{"k.neg", "k.exp", "k.add", "k.reciprocal"}));
  Executor none("none");
  EXPECT_THROW(claim_executors(t, {&none}), NotImplementedError);
}

}  // namespace
}  // namespace thunder
