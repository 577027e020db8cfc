// Autograd: VJP rules (the backward each emits), the joint trace, the min-cut partitioner and the
// forward/backward split, on small traces built here. Numerics are checked against torch.autograd in
// tests/test_grad*.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "autograd/grad_rule.h"
#include "autograd/rematerialize.h"
#include "autograd/split_forward_backward.h"
#include "autograd/vjp.h"
#include "core/error.h"
#include "ir/builder.h"
#include "ops/registry.h"

namespace thunder::autograd {
namespace {

class AutogradTest : public ::testing::Test {
 protected:
  void SetUp() override { ensure_builtin_ops(); }
  TensorRef param(const std::string& name, Shape shape, bool rg = true,
                  DType dt = DType::kFloat32) {
    TensorRef t = b.new_tensor(std::move(shape), dt, Device::cpu(), rg, name);
    inputs.push_back(t);
    return t;
  }
  Value call(const char* op, std::vector<Value> args,
             std::vector<std::pair<std::string, Value>> kwargs = {}) {
    return b.call(ltorch_symbol(op), std::move(args), std::move(kwargs));
  }
  Trace finish(Value out) {
    Trace t;
    t.inputs = inputs;
    t.bsyms = b.take();
    t.output = std::move(out);
    return t;
  }
  static std::vector<std::string> names(const std::vector<BSymRef>& bs) {
    std::vector<std::string> out;
    for (const BSymRef& s : bs) out.push_back(s->sym->qualname());
    return out;
  }
  static bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  }
  static std::set<std::string> tensor_names(const std::vector<TensorRef>& ts) {
    std::set<std::string> out;
    for (const TensorRef& t : ts) out.insert(t->name());
    return out;
  }
  Builder b;
  std::vector<TensorRef> inputs;
};

TEST_F(AutogradTest, ExpBackwardMultipliesByTheOutput) {
  TensorRef x = param("x", {4});
  Value y = call("exp", {Value(x)});
  Value s = call("sum", {y});
  JointTrace j = vjp(finish(s));
  ASSERT_EQ(j.cotangents.size(), 1u);
  ASSERT_TRUE(j.cotangents[0]);
  ASSERT_TRUE(j.input_grads[0].is_tensor());
  EXPECT_EQ(j.input_grads[0].as_tensor()->shape(), (Shape{4}));
  std::vector<std::string> bw = names(j.backward);
  EXPECT_TRUE(contains(bw, "prims.broadcast_in_dim")) << ::testing::PrintToString(bw);
  EXPECT_TRUE(contains(bw, "prims.mul"));
  // The backward reads exp's output, not a recomputed exp.
  EXPECT_FALSE(contains(bw, "prims.exp"));
}

TEST_F(AutogradTest, InputsWithoutRequiresGradGetNone) {
  TensorRef x = param("x", {3});
  TensorRef w = param("w", {3}, false);
  Value y = call("mul", {Value(x), Value(w)});
  JointTrace j = vjp(finish(call("sum", {y})));
  EXPECT_TRUE(j.input_grads[0].is_tensor());
  EXPECT_TRUE(j.input_grads[1].is_none());
}

TEST_F(AutogradTest, BroadcastGradientIsSummedBack) {
  TensorRef x = param("x", {2, 3});
  TensorRef bias = param("bias", {3});
  Value y = call("add", {Value(x), Value(bias)});
  JointTrace j = vjp(finish(call("sum", {y})));
  ASSERT_TRUE(j.input_grads[1].is_tensor());
  EXPECT_EQ(j.input_grads[1].as_tensor()->shape(), (Shape{3}));
  EXPECT_TRUE(contains(names(j.backward), "prims.sum"));
}

TEST_F(AutogradTest, IntegerOutputsTakeNoCotangent) {
  TensorRef x = param("x", {3});
  Value am = call("argmax", {Value(x)});
  Value y = call("sum", {Value(x)});
  JointTrace j = vjp(finish(Value::tuple({y, am})));
  ASSERT_EQ(j.cotangents.size(), 2u);
  EXPECT_TRUE(j.cotangents[0]);
  EXPECT_FALSE(j.cotangents[1]);
}

TEST_F(AutogradTest, SoftmaxUsesTorchBackwardKernel) {
  TensorRef x = param("x", {2, 5});
  Value y = call("softmax", {Value(x), Value(int64_t{-1})});
  JointTrace j = vjp(finish(y));
  EXPECT_EQ(names(j.backward), std::vector<std::string>{"ltorch.softmax_backward"});
}

TEST_F(AutogradTest, LayerNormForwardSavesMeanAndRstd) {
  TensorRef x = param("x", {2, 8});
  TensorRef w = param("w", {8});
  TensorRef bb = param("b", {8});
  Value y = call("layer_norm", {Value(x), Value::ints({8}), Value(w), Value(bb)});
  JointTrace j = vjp(finish(call("sum", {y})));
  EXPECT_TRUE(contains(names(j.forward.bsyms), "ltorch.native_layer_norm"));
  EXPECT_TRUE(contains(names(j.backward), "ltorch.native_layer_norm_backward"));
  for (const Value& g : j.input_grads) EXPECT_TRUE(g.is_tensor());
}

TEST_F(AutogradTest, GroupNormForwardSavesMeanAndRstdPerGroup) {
  TensorRef x = param("x", {2, 6, 5});
  TensorRef w = param("w", {6});
  TensorRef bb = param("b", {6});
  Value y = call("group_norm", {Value(x), Value(int64_t{3}), Value(w), Value(bb)});
  ForwardBackward fb = split_forward_backward(rematerialize(vjp(finish(call("sum", {y})))));
  EXPECT_TRUE(contains(names(fb.forward.bsyms), "ltorch.native_group_norm"));
  EXPECT_TRUE(contains(names(fb.backward.bsyms), "ltorch.native_group_norm_backward"));
  // The backward computes no statistic again: it reads the saved (N, groups) mean and rstd.
  EXPECT_FALSE(contains(names(fb.backward.bsyms), "ltorch.native_group_norm"));
  int stats = 0;
  for (size_t i = 0; i < fb.num_saved; ++i) {
    const TensorRef& t = fb.backward.inputs.at(i);
    stats += t->shape() == Shape{2, 3};
  }
  EXPECT_EQ(stats, 2);
}

TEST_F(AutogradTest, BatchNormInTrainingSavesMeanAndRstdPerChannel) {
  TensorRef x = param("x", {4, 3, 5});
  TensorRef w = param("w", {3});
  TensorRef bb = param("b", {3});
  Value y = call("batch_norm", {Value(x), Value(), Value(), Value(w), Value(bb), Value(true)});
  ForwardBackward fb = split_forward_backward(rematerialize(vjp(finish(call("sum", {y})))));
  EXPECT_TRUE(contains(names(fb.forward.bsyms), "ltorch.native_batch_norm"));
  EXPECT_TRUE(contains(names(fb.backward.bsyms), "ltorch.native_batch_norm_backward"));
  int stats = 0;
  for (size_t i = 0; i < fb.num_saved; ++i) stats += fb.backward.inputs.at(i)->shape() == Shape{3};
  EXPECT_EQ(stats, 3);  // the weight, the mean and the rstd
}

TEST_F(AutogradTest, FusedGroupNormOutputIsComputedAgainFromItsStatistics) {
  // silu(group_norm(x)): silu's backward reads the norm's output. For fused kernels the backward
  // computes it again from x, the statistics, the weight and the bias (native_group_norm's recipe)
  // instead of the forward saving it; without a fusion executor it is saved.
  TensorRef x = param("x", {2, 6, 5});
  TensorRef w = param("w", {6});
  TensorRef bb = param("b", {6});
  for (bool fused : {false, true}) {
    autograd::FusingScope scope(fused, false);
    Value y = call("group_norm", {Value(x), Value(int64_t{3}), Value(w), Value(bb)});
    Value s = call("silu", {y});
    ForwardBackward fb = split_forward_backward(rematerialize(vjp(finish(call("sum", {s})))));
    int full = 0;  // saved values of x's shape that are not x
    for (size_t i = 0; i < fb.num_saved; ++i) {
      const TensorRef& t = fb.backward.inputs.at(i);
      full += t->shape() == x->shape() && t->name() != "x";
    }
    EXPECT_EQ(full, fused ? 0 : 1) << fb.backward.python();
  }
}

TEST_F(AutogradTest, DropoutSavesItsMask) {
  TensorRef x = param("x", {16});
  Value y = call("dropout", {Value(x), Value(0.25)});
  ForwardBackward fb = split_forward_backward(rematerialize(vjp(finish(call("sum", {y})))));
  EXPECT_TRUE(contains(names(fb.forward.bsyms), "ltorch.native_dropout"));
  EXPECT_FALSE(contains(names(fb.backward.bsyms), "ltorch.native_dropout"));
  bool saves_mask = false;
  for (size_t i = 0; i < fb.num_saved; ++i) {
    saves_mask = saves_mask || fb.backward.inputs[i]->dtype() == DType::kBool;
  }
  EXPECT_TRUE(saves_mask);
}

TEST_F(AutogradTest, CrossEntropyBecomesLogSoftmaxAndNllLoss) {
  TensorRef x = param("x", {4, 10});
  TensorRef t = param("t", {4}, false, DType::kInt64);
  Value loss = call("cross_entropy", {Value(x), Value(t)});
  JointTrace j = vjp(finish(loss));
  std::vector<std::string> fw = names(j.forward.bsyms);
  EXPECT_TRUE(contains(fw, "ltorch.log_softmax"));
  EXPECT_TRUE(contains(fw, "ltorch.nll_loss_forward"));
  EXPECT_TRUE(contains(names(j.backward), "ltorch.nll_loss_backward"));
  EXPECT_TRUE(contains(names(j.backward), "ltorch.log_softmax_backward"));
  EXPECT_TRUE(j.cotangents.at(0)) << "the loss takes a cotangent";
}

TEST_F(AutogradTest, CompositeWithoutRuleRecomputesItsDecompositionInBackward) {
  TensorRef x = param("x", {4});
  // softplus has no torch-level rule: log1p(exp(x)) (with a threshold) is differentiated through.
  Value y = call("softplus", {Value(x)});
  JointTrace j = vjp(finish(call("sum", {y})));
  // The forward keeps one torch-level call.
  EXPECT_EQ(names(j.forward.bsyms)[0], "ltorch.softplus");
  // The backward recomputes the intermediate exp(x) that log1p's gradient reads.
  EXPECT_TRUE(contains(names(j.backward), "prims.exp")) << ::testing::PrintToString(names(j.backward));
}

TEST_F(AutogradTest, NoGradRegionIsNotDifferentiated) {
  TensorRef x = param("x", {3});
  b.call(prims::set_grad_enabled(), {Value(false)});
  Value y = call("exp", {Value(x)});
  b.call(prims::set_grad_enabled(), {Value(true)});
  JointTrace j = vjp(finish(y));
  EXPECT_FALSE(j.cotangents[0]);
  EXPECT_TRUE(j.input_grads[0].is_none());
  EXPECT_FALSE(contains(names(j.forward.bsyms), "prims.set_grad_enabled"));
}

TEST_F(AutogradTest, OpWithoutRuleIsAnErrorNamingIt) {
  TensorRef x = param("x", {3});
  Symbol s;
  s.name = "mystery_op_for_test";
  s.module = "test";
  s.kind = SymbolKind::kPrim;
  s.signature = Signature::parse("a");
  s.meta = [](Builder& bb, const BoundArgs& a) -> Value {
    return bb.new_tensor(a.tensor(0)->shape(), DType::kFloat32, Device::cpu(), true);
  };
  const Symbol* sym = SymbolTable::instance().find("test", "mystery_op_for_test");
  if (!sym) sym = SymbolTable::instance().add(s);
  b.set_source("model.py:7");
  Value y = b.call(*sym, {Value(x)});
  try {
    vjp(finish(y));
    FAIL() << "expected an error";
  } catch (const NotImplementedError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("test.mystery_op_for_test"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.py:7"), std::string::npos) << msg;
  }
}

TEST_F(AutogradTest, UserRegisteredRuleIsUsed) {
  TensorRef x = param("x", {3});
  Symbol s;
  s.name = "custom_square_for_test";
  s.module = "test";
  s.kind = SymbolKind::kPrim;
  s.signature = Signature::parse("a");
  s.meta = [](Builder& bb, const BoundArgs& a) -> Value {
    return bb.new_tensor(a.tensor(0)->shape(), DType::kFloat32, Device::cpu(), true);
  };
  const Symbol* sym = SymbolTable::instance().find("test", "custom_square_for_test");
  if (!sym) sym = SymbolTable::instance().add(s);
  GradRule r;
  r.backward = [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    c.put_grad(0, c.b.call(prims::mul(), {Value(g), c.args[0]}).as_tensor());
  };
  register_grad_rule(sym, r);
  Value y = b.call(*sym, {Value(x)});
  JointTrace j = vjp(finish(y));
  EXPECT_EQ(names(j.backward), std::vector<std::string>{"prims.mul"});
}

// prims.slice with a step: the cotangent is padded back with interior padding (step - 1) and the
// elements before the start and after the last taken one.
TEST_F(AutogradTest, SliceWithStepBackwardIsInteriorPad) {
  TensorRef x = param("x", {10});
  Value y = b.call(prims::slice(), {Value(x), Value::ints({1}), Value::ints({8}), Value::ints({3})});
  ASSERT_EQ(y.as_tensor()->shape(), (Shape{3}));  // elements 1, 4, 7
  JointTrace j = vjp(finish(y));
  ASSERT_EQ(j.backward.size(), 1u);
  const BoundSymbol& pad = *j.backward[0];
  EXPECT_EQ(pad.sym, &prims::pad());
  EXPECT_EQ(pad.args[2].items()[0].as_int_list(), (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(j.input_grads[0].as_tensor()->shape(), (Shape{10}));
}

// matmul of a vector and a batch of matrices: the vector's gradient sums over the batch.
TEST_F(AutogradTest, MatmulVectorTimesBatchGradientShapes) {
  TensorRef v = param("v", {4});
  TensorRef m = param("m", {2, 4, 3});
  Value y = call("matmul", {Value(v), Value(m)});
  ASSERT_EQ(y.as_tensor()->shape(), (Shape{2, 3}));
  JointTrace j = vjp(finish(y));
  EXPECT_EQ(j.input_grads[0].as_tensor()->shape(), (Shape{4}));
  EXPECT_EQ(j.input_grads[1].as_tensor()->shape(), (Shape{2, 4, 3}));
  EXPECT_TRUE(contains(names(j.backward), "prims.sum"));
}

// A value used twice accumulates its cotangents with one add.
TEST_F(AutogradTest, ValueUsedTwiceAccumulates) {
  TensorRef x = param("x", {3});
  TensorRef e = call("exp", {Value(x)}).as_tensor();
  Value y = call("add", {Value(e), Value(e)});
  JointTrace j = vjp(finish(call("sum", {y})));
  std::vector<std::string> bw = names(j.backward);
  EXPECT_EQ(std::count(bw.begin(), bw.end(), "prims.add"), 1) << ::testing::PrintToString(bw);
}

// split's gradient is one cat of its outputs' cotangents (zeros for the unused piece).
TEST_F(AutogradTest, SplitBackwardIsOneCat) {
  TensorRef x = param("x", {6, 2});
  Value parts = call("split", {Value(x), Value(int64_t{2})});
  Value y = call("sum", {parts.items()[0]});
  JointTrace j = vjp(finish(y));
  std::vector<std::string> bw = names(j.backward);
  EXPECT_EQ(std::count(bw.begin(), bw.end(), "prims.cat"), 1) << ::testing::PrintToString(bw);
  EXPECT_FALSE(contains(bw, "prims.pad"));
}

// The min-cut partitioner: for linear -> gelu -> square, the backward needs gelu's input (for
// gelu's backward) and gelu's output (for the square's). Saving the input and recomputing the cheap
// gelu is the cut of least bytes.
TEST_F(AutogradTest, MinCutRecomputesElementwiseAndSavesMatmulOutputs) {
  TensorRef x = param("x", {128, 16}, false);
  TensorRef w1 = param("w1", {64, 16});
  TensorRef h = call("linear", {Value(x), Value(w1)}).as_tensor();
  TensorRef a = call("gelu", {Value(h)}).as_tensor();
  TensorRef o = call("mul", {Value(a), Value(a)}).as_tensor();
  JointTrace j = vjp(finish(call("sum", {Value(o)})));
  RematPlan plan = plan_rematerialization(j);
  std::set<std::string> saved = tensor_names(plan.saved);
  EXPECT_TRUE(saved.count(h->name())) << ::testing::PrintToString(saved);
  EXPECT_FALSE(saved.count(a->name())) << ::testing::PrintToString(saved);
  ASSERT_EQ(plan.recomputed.size(), 1u);
  EXPECT_EQ(plan.recomputed[0]->sym->qualname(), "ltorch.gelu");
  // Without rematerialization both are saved.
  RematOptions off;
  off.enabled = false;
  std::set<std::string> all = tensor_names(plan_rematerialization(j, off).saved);
  EXPECT_TRUE(all.count(h->name()) && all.count(a->name()));
  // Applying the plan puts gelu before its first use in the backward.
  JointTrace r = rematerialize(j);
  std::vector<std::string> bw = names(r.backward);
  auto gelu = std::find(bw.begin(), bw.end(), "ltorch.gelu");
  ASSERT_NE(gelu, bw.end());
  ForwardBackward fb = split_forward_backward(r);
  EXPECT_EQ(tensor_names(std::vector<TensorRef>(fb.backward.inputs.begin(),
                                                fb.backward.inputs.begin() + fb.num_saved)),
            saved);
}

// A value a library call of the backward reads (here the second linear's weight gradient, a
// matrix product) is held in memory by the backward whatever the plan. Computed again from
// activations no fused backward kernel reads, it would take a kernel of its own: it is saved, even
// where its operand is smaller (h in float32 beside its float64 copy). Where gelu's backward reads
// its input anyway, the kernel computing that backward computes gelu's output again at the cost of
// its write: recomputed, as is a weight's cast (a value of the trace's inputs alone).
TEST_F(AutogradTest, MinCutSavesValuesALibraryCallReadsInTheBackward) {
  TensorRef x = param("x", {128, 16}, false);
  TensorRef w1 = param("w1", {64, 16});
  autograd::FusingScope scope(true, false, 0);
  {
    TensorRef w2 = param("w2", {4, 64}, true, DType::kFloat64);
    TensorRef h = call("linear", {Value(x), Value(w1)}).as_tensor();
    TensorRef a = call("to", {Value(h), Value(DType::kFloat64)}).as_tensor();
    TensorRef o = call("linear", {Value(a), Value(w2)}).as_tensor();
    RematPlan plan = plan_rematerialization(vjp(finish(call("sum", {Value(o)}))));
    std::set<std::string> saved = tensor_names(plan.saved);
    EXPECT_TRUE(saved.count(a->name())) << ::testing::PrintToString(saved);
    EXPECT_FALSE(saved.count(h->name())) << ::testing::PrintToString(saved);
    EXPECT_TRUE(plan.recomputed.empty());
  }
}

TEST_F(AutogradTest, MinCutRecomputesALibraryCallsOperandWhereAFusedKernelReadsItsInputs) {
  TensorRef x = param("x", {128, 16}, false);
  TensorRef w1 = param("w1", {64, 16});
  TensorRef w2 = param("w2", {4, 64});
  autograd::FusingScope scope(true, false, 0);
  TensorRef h = call("linear", {Value(x), Value(w1)}).as_tensor();
  TensorRef a = call("gelu", {Value(h)}).as_tensor();
  TensorRef w2h = call("to", {Value(w2), Value(DType::kBFloat16)}).as_tensor();
  TensorRef ah = call("to", {Value(a), Value(DType::kBFloat16)}).as_tensor();
  TensorRef o = call("linear", {Value(ah), Value(w2h)}).as_tensor();
  RematPlan plan = plan_rematerialization(vjp(finish(call("sum", {Value(o)}))));
  std::set<std::string> saved = tensor_names(plan.saved);
  EXPECT_TRUE(saved.count(h->name())) << ::testing::PrintToString(saved);
  EXPECT_FALSE(saved.count(ah->name()) || saved.count(w2h->name()))
      << ::testing::PrintToString(saved);
  std::vector<std::string> recomputed;
  for (const BSymRef& r : plan.recomputed) recomputed.push_back(r->sym->qualname());
  EXPECT_EQ(std::count(recomputed.begin(), recomputed.end(), "ltorch.gelu"), 1)
      << ::testing::PrintToString(recomputed);
  EXPECT_EQ(std::count(recomputed.begin(), recomputed.end(), "ltorch.to"), 2)
      << ::testing::PrintToString(recomputed);
}

TEST_F(AutogradTest, MinCutSavesSmallValuesNoFusedKernelTakes) {
  // gelu's output of 256 elements: computed again in the backward it would cost a torch call for
  // 1 KB, so it is saved, unless a fusion executor takes tensors of its size (CPU regions of fewer
  // than min_cpu_numel elements it leaves to torch).
  TensorRef x = param("x", {8, 16}, false);
  TensorRef w1 = param("w1", {32, 16});
  for (int64_t min_cpu_numel : {int64_t{-1}, int64_t{4096}, int64_t{0}}) {
    autograd::FusingScope scope(min_cpu_numel >= 0, false, std::max<int64_t>(min_cpu_numel, 0));
    TensorRef h = call("linear", {Value(x), Value(w1)}).as_tensor();
    TensorRef a = call("gelu", {Value(h)}).as_tensor();
    TensorRef o = call("mul", {Value(a), Value(a)}).as_tensor();
    RematPlan plan = plan_rematerialization(vjp(finish(call("sum", {Value(o)}))));
    const bool fused = min_cpu_numel == 0;
    EXPECT_EQ(tensor_names(plan.saved).count(a->name()), fused ? 0u : 1u) << min_cpu_numel;
    EXPECT_EQ(plan.recomputed.size(), fused ? 1u : 0u) << min_cpu_numel;
  }
}

TEST_F(AutogradTest, MinCutNeverRecomputesReductions) {
  TensorRef x = param("x", {4, 8});
  TensorRef s = call("softmax", {Value(x), Value(int64_t{-1})}).as_tensor();
  TensorRef y = call("mul", {Value(s), Value(s)}).as_tensor();
  JointTrace j = vjp(finish(call("sum", {Value(y)})));
  RematPlan plan = plan_rematerialization(j);
  EXPECT_TRUE(tensor_names(plan.saved).count(s->name()));
  for (const BSymRef& r : plan.recomputed) EXPECT_NE(r->sym->qualname(), "ltorch.softmax");
}

TEST_F(AutogradTest, MinCutPrefersASmallMaskOverALargeValue) {
  // y = where(x > 0, x * 3, 0): the backward needs the bool mask only; x is an input (free).
  TensorRef x = param("x", {1024});
  TensorRef w = param("w", {1024, 1024});
  TensorRef h = call("matmul", {Value(w), Value(x)}).as_tensor();
  TensorRef m = call("gt", {Value(h), Value(0.0)}).as_tensor();
  TensorRef y = call("where", {Value(m), Value(h), Value(0.0)}).as_tensor();
  JointTrace j = vjp(finish(call("sum", {Value(y)})));
  RematPlan plan = plan_rematerialization(j);
  std::set<std::string> saved = tensor_names(plan.saved);
  EXPECT_TRUE(saved.count(m->name())) << ::testing::PrintToString(saved);
}

// torch.utils.checkpoint: inside the region even a matmul output is recomputed, and the backward
// reads the region's inputs instead.
TEST_F(AutogradTest, CheckpointRegionIsRecomputedInBackward) {
  TensorRef x = param("x", {8, 16});
  TensorRef w1 = param("w1", {16, 16});
  TensorRef w2 = param("w2", {16, 4});
  TensorRef h0 = call("softmax", {Value(x), Value(int64_t{-1})}).as_tensor();
  call("checkpoint_region", {Value(true)});
  TensorRef h = call("matmul", {Value(h0), Value(w1)}).as_tensor();
  TensorRef a = call("tanh", {Value(h)}).as_tensor();
  call("checkpoint_region", {Value(false)});
  TensorRef o = call("matmul", {Value(a), Value(w2)}).as_tensor();
  JointTrace j = vjp(finish(call("sum", {Value(o)})));
  EXPECT_FALSE(contains(names(j.forward.bsyms), "ltorch.checkpoint_region"));
  EXPECT_EQ(j.checkpointed.size(), 2u);
  std::set<std::string> saved = tensor_names(plan_rematerialization(j).saved);
  EXPECT_FALSE(saved.count(h->name())) << ::testing::PrintToString(saved);
  EXPECT_FALSE(saved.count(a->name())) << ::testing::PrintToString(saved);
  EXPECT_TRUE(saved.count(h0->name())) << ::testing::PrintToString(saved);
  std::vector<std::string> bw = names(rematerialize(j).backward);
  EXPECT_TRUE(contains(bw, "ltorch.matmul")) << ::testing::PrintToString(bw);
}

TEST_F(AutogradTest, SplitReturnsOutputAndSavedAndTakesCotangents) {
  TensorRef x = param("x", {3});
  TensorRef w = param("w", {3});
  Value y = call("mul", {Value(x), Value(w)});
  ForwardBackward fb = split_forward_backward(rematerialize(vjp(finish(call("sum", {y})))));
  ASSERT_TRUE(fb.forward.output.is_seq());
  EXPECT_EQ(fb.forward.output.items().size(), 2u);
  EXPECT_EQ(fb.forward.output.items()[1].items().size(), fb.num_saved);
  EXPECT_EQ(fb.backward.inputs.size(), fb.num_saved + 1);
  EXPECT_EQ(fb.differentiable_leaves, std::vector<bool>{true});
  EXPECT_EQ(fb.backward.output.items().size(), 2u);
  // Both traces print as Python.
  EXPECT_NE(fb.backward.python().find("def backward("), std::string::npos)
      << fb.backward.python();
}

}  // namespace
}  // namespace thunder::autograd
