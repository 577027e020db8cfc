// Meta functions of the reduction and creation op families: output shapes and dtypes as PyTorch
// produces them, PyTorch's errors, and which calls decompose into primitives.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"
#include "ir/bound_symbol.h"
#include "ir/builder.h"
#include "ops/registry.h"

namespace thunder {
namespace {

using Kwargs = std::vector<std::pair<std::string, Value>>;

class OpsTest : public ::testing::Test {
 protected:
  void SetUp() override { ensure_builtin_ops(); }
  TensorRef input(Shape shape, DType dt = DType::kFloat32, bool requires_grad = false) {
    return b.new_tensor(std::move(shape), dt, Device::cpu(), requires_grad);
  }
  Value call(const char* op, std::vector<Value> args, Kwargs kwargs = {}) {
    return b.call(ltorch_symbol(op), std::move(args), std::move(kwargs));
  }
  TensorRef call_t(const char* op, std::vector<Value> args, Kwargs kwargs = {}) {
    Value v = call(op, std::move(args), std::move(kwargs));
    EXPECT_TRUE(v.is_tensor());
    return v.as_tensor();
  }
  // The names of the primitives the last recorded op decomposed into (recursively).
  std::set<std::string> last_prims() {
    std::vector<BSymRef> bs = b.take();
    std::set<std::string> out;
    if (bs.empty()) return out;
    std::vector<BSymRef> stack = bs.back()->subsymbols;
    while (!stack.empty()) {
      BSymRef s = stack.back();
      stack.pop_back();
      if (s->sym->is_prim()) out.insert(s->sym->name);
      for (const BSymRef& c : s->subsymbols) stack.push_back(c);
    }
    return out;
  }
  size_t recorded() { return b.take().size(); }

  Builder b;
};

using ReductionOps = OpsTest;
using CreationOps = OpsTest;

Shape shape_of(const TensorRef& t) { return t->shape(); }

// Reductions.

TEST_F(ReductionOps, SumOverDimsKeepdimAndNegativeDims) {
  auto x = input({2, 3, 4});
  EXPECT_EQ(shape_of(call_t("sum", {Value(x)})), Shape({}));
  EXPECT_EQ(shape_of(call_t("sum", {Value(x), Value::ints({1})})), Shape({2, 4}));
  EXPECT_EQ(shape_of(call_t("sum", {Value(x), Value(-1), Value(true)})), Shape({2, 3, 1}));
  EXPECT_EQ(shape_of(call_t("sum", {Value(x), Value::ints({0, 2})}, {{"keepdim", Value(true)}})),
            Shape({1, 3, 1}));
  EXPECT_EQ(shape_of(call_t("sum", {Value(x), Value::tuple({})})), Shape({}));
  EXPECT_TRUE(last_prims().count("sum"));
}

TEST_F(ReductionOps, SumPromotesIntegersAndHonoursDtype) {
  EXPECT_EQ(call_t("sum", {Value(input({3}, DType::kBool))})->dtype(), DType::kInt64);
  EXPECT_EQ(call_t("sum", {Value(input({3}, DType::kInt32))})->dtype(), DType::kInt64);
  EXPECT_EQ(call_t("sum", {Value(input({3}, DType::kBFloat16))})->dtype(), DType::kBFloat16);
  EXPECT_EQ(call_t("sum", {Value(input({3}, DType::kInt32))}, {{"dtype", Value(DType::kFloat64)}})
                ->dtype(),
            DType::kFloat64);
  EXPECT_EQ(call_t("sum", {Value(input({3}, DType::kBool))}, {{"dtype", Value(DType::kBool)}})
                ->dtype(),
            DType::kBool);
}

TEST_F(ReductionOps, SumOfZeroDimTensorAcceptsDimZero) {
  auto x = input({});
  EXPECT_EQ(shape_of(call_t("sum", {Value(x), Value(0), Value(true)})), Shape({}));
  EXPECT_THROW(call("sum", {Value(x), Value(1)}), IndexError);
}

TEST_F(ReductionOps, SumRejectsOutOfRangeAndRepeatedDims) {
  auto x = input({2, 3});
  EXPECT_THROW(call("sum", {Value(x), Value(2)}), IndexError);
  EXPECT_THROW(call("sum", {Value(x), Value::ints({0, -2})}), ValueError);
}

TEST_F(ReductionOps, MeanRejectsIntegersAndKeepsFloatDtypes) {
  EXPECT_THROW(call("mean", {Value(input({3}, DType::kInt64))}), Error);
  EXPECT_THROW(call("mean", {Value(input({3}))}, {{"dtype", Value(DType::kInt64)}}), Error);
  EXPECT_EQ(call_t("mean", {Value(input({3}, DType::kInt64))}, {{"dtype", Value(DType::kFloat32)}})
                ->dtype(),
            DType::kFloat32);
  auto m = call_t("mean", {Value(input({2, 3}, DType::kBFloat16)), Value(1), Value(true)});
  EXPECT_EQ(m->dtype(), DType::kBFloat16);
  EXPECT_EQ(m->shape(), Shape({2, 1}));
  std::set<std::string> p = last_prims();
  EXPECT_TRUE(p.count("sum") && p.count("div"));
}

TEST_F(ReductionOps, ProdTakesOneDimOnly) {
  auto x = input({2, 3}, DType::kInt32);
  EXPECT_EQ(call_t("prod", {Value(x)})->dtype(), DType::kInt64);
  EXPECT_EQ(shape_of(call_t("prod", {Value(x), Value(1), Value(true)})), Shape({2, 1}));
  EXPECT_THROW(call("prod", {Value(x), Value::ints({0, 1})}), TypeError);
}

TEST_F(ReductionOps, AmaxRefusesEmptyReducedDims) {
  auto x = input({0, 3});
  EXPECT_EQ(shape_of(call_t("amax", {Value(x), Value(1)})), Shape({0}));
  EXPECT_THROW(call("amax", {Value(x), Value(0)}), IndexError);
  EXPECT_EQ(shape_of(call_t("amin", {Value(input({2, 3})), Value::tuple({})})), Shape({}));
}

TEST_F(ReductionOps, MaxWithDimReturnsValuesAndIndices) {
  auto x = input({2, 3});
  Value out = call("max", {Value(x), Value(1), Value(true)});
  ASSERT_TRUE(out.is_seq());
  ASSERT_EQ(out.items().size(), 2u);
  EXPECT_EQ(out.items()[0].as_tensor()->shape(), Shape({2, 1}));
  EXPECT_EQ(out.items()[0].as_tensor()->dtype(), DType::kFloat32);
  EXPECT_EQ(out.items()[1].as_tensor()->shape(), Shape({2, 1}));
  EXPECT_EQ(out.items()[1].as_tensor()->dtype(), DType::kInt64);
  // The values are gathered at the indices (their gradient goes to the indexed element).
  std::set<std::string> p = last_prims();
  EXPECT_TRUE(p.count("take_along_axis") && p.count("argmax"));
}

TEST_F(ReductionOps, MaxWithoutDimAndBinaryMax) {
  auto x = input({2, 3});
  EXPECT_EQ(shape_of(call_t("max", {Value(x)})), Shape({}));
  auto y = input({3}, DType::kFloat64);
  auto m = call_t("min", {Value(x), Value(y)});
  EXPECT_EQ(m->shape(), Shape({2, 3}));
  EXPECT_EQ(m->dtype(), DType::kFloat64);
  EXPECT_THROW(call("max", {Value(input({0, 3}))}), Error);
  EXPECT_THROW(call("max", {Value(input({0, 3})), Value(0)}), IndexError);
  EXPECT_EQ(call("max", {Value(input({0, 3})), Value(1)}).items()[0].as_tensor()->shape(),
            Shape({0}));
}

TEST_F(ReductionOps, ArgmaxFlattensWithoutDim) {
  auto x = input({2, 3});
  EXPECT_EQ(shape_of(call_t("argmax", {Value(x)})), Shape({}));
  EXPECT_EQ(shape_of(call_t("argmax", {Value(x), Value(), Value(true)})), Shape({1, 1}));
  EXPECT_EQ(shape_of(call_t("argmin", {Value(x), Value(-1), Value(true)})), Shape({2, 1}));
  EXPECT_EQ(call_t("argmin", {Value(x), Value(0)})->dtype(), DType::kInt64);
  EXPECT_THROW(call("argmax", {Value(input({3}, DType::kBool))}), Error);
  EXPECT_THROW(call("argmax", {Value(input({0}))}), IndexError);
}

TEST_F(ReductionOps, VarAcceptsUnbiasedCorrectionAndBoolInDimsPlace) {
  auto x = input({4, 5});
  EXPECT_EQ(shape_of(call_t("var", {Value(x)})), Shape({}));
  EXPECT_EQ(shape_of(call_t("var", {Value(x), Value(1), Value(true), Value(true)})),
            Shape({4, 1}));
  (void)recorded();
  call_t("var", {Value(x), Value(false)});  // x.var(False): unbiased=False over all dims
  std::vector<BSymRef> bs = b.take();
  ASSERT_EQ(bs.size(), 1u);
  bool saw_correction_zero = false;
  for (const BSymRef& s : bs[0]->subsymbols) {
    if (s->sym->name == "var") saw_correction_zero = s->args[2] == Value(int64_t{0});
  }
  EXPECT_TRUE(saw_correction_zero);
  EXPECT_EQ(shape_of(call_t("std", {Value(x), Value::ints({0})}, {{"correction", Value(0)}})),
            Shape({5}));
  EXPECT_THROW(call("var", {Value(input({3}, DType::kInt64))}), Error);
  EXPECT_THROW(call("var", {Value(x), Value(1), Value(true)}, {{"correction", Value(1)}}),
               TypeError);
}

TEST_F(ReductionOps, VarMeanReturnsBothWithBf16Dtype) {
  Value out = call("std_mean", {Value(input({4, 5}, DType::kBFloat16)), Value(1)},
                   {{"keepdim", Value(true)}});
  ASSERT_TRUE(out.is_seq());
  for (const Value& v : out.items()) {
    EXPECT_EQ(v.as_tensor()->shape(), Shape({4, 1}));
    EXPECT_EQ(v.as_tensor()->dtype(), DType::kBFloat16);
  }
}

TEST_F(ReductionOps, AllAnyReturnBoolOrUint8AndDimTupleEmptyReducesNothing) {
  EXPECT_EQ(call_t("all", {Value(input({2, 3}))})->dtype(), DType::kBool);
  EXPECT_EQ(call_t("any", {Value(input({2, 3}, DType::kUInt8))})->dtype(), DType::kUInt8);
  EXPECT_EQ(shape_of(call_t("all", {Value(input({2, 3})), Value::tuple({})})), Shape({2, 3}));
  EXPECT_EQ(shape_of(call_t("any", {Value(input({2, 3})), Value(1), Value(true)})), Shape({2, 1}));
  EXPECT_EQ(shape_of(call_t("all", {Value(input({0, 3})), Value(0)})), Shape({3}));
}

TEST_F(ReductionOps, LogsumexpPromotesIntegersToFloat) {
  auto r = call_t("logsumexp", {Value(input({2, 3}, DType::kInt64)), Value(1)});
  EXPECT_EQ(r->dtype(), DType::kFloat32);
  EXPECT_EQ(r->shape(), Shape({2}));
  EXPECT_EQ(shape_of(call_t("logsumexp", {Value(input({2, 3})), Value::ints({0, 1}), Value(true)})),
            Shape({1, 1}));
  EXPECT_THROW(call("logsumexp", {Value(input({2}))}), TypeError);  // dim is required
}

TEST_F(ReductionOps, NormsOfFloatsOnly) {
  auto x = input({2, 3});
  EXPECT_EQ(shape_of(call_t("vector_norm", {Value(x)})), Shape({}));
  EXPECT_EQ(shape_of(call_t("vector_norm", {Value(x), Value(1), Value(0), Value(true)})),
            Shape({1, 3}));
  EXPECT_EQ(call_t("vector_norm", {Value(x)}, {{"dtype", Value(DType::kFloat64)}})->dtype(),
            DType::kFloat64);
  double inf = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(last_prims().count("sqrt"));
  call_t("vector_norm", {Value(x), Value(inf)});
  EXPECT_TRUE(last_prims().count("amax"));
  EXPECT_THROW(call("vector_norm", {Value(input({0})), Value(inf)}), Error);
  EXPECT_THROW(call("norm", {Value(input({3}, DType::kInt64))}), Error);
  EXPECT_EQ(shape_of(call_t("norm", {Value(x), Value("fro"), Value(1)})), Shape({2}));
  EXPECT_THROW(call("norm", {Value(x), Value("nuc")}), NotImplementedError);
  EXPECT_EQ(call_t("vector_norm", {Value(input({3}, DType::kBFloat16))})->dtype(),
            DType::kBFloat16);
}

TEST_F(ReductionOps, CountNonzeroAndCumsum) {
  auto x = input({2, 3});
  auto c = call_t("count_nonzero", {Value(x), Value(0)});
  EXPECT_EQ(c->dtype(), DType::kInt64);
  EXPECT_EQ(c->shape(), Shape({3}));
  auto s = call_t("cumsum", {Value(input({2, 3}, DType::kBool)), Value(-1)});
  EXPECT_EQ(s->dtype(), DType::kInt64);
  EXPECT_EQ(s->shape(), Shape({2, 3}));
  EXPECT_TRUE(last_prims().empty());  // no scan primitive
  EXPECT_THROW(call("cumsum", {Value(x), Value(2)}), IndexError);
}

// Creation.

TEST_F(CreationOps, ArangeInfersInt64OrDefaultFloat) {
  auto a = call_t("arange", {Value(5)});
  EXPECT_EQ(a->shape(), Shape({5}));
  EXPECT_EQ(a->dtype(), DType::kInt64);
  EXPECT_TRUE(last_prims().count("iota"));
  auto f = call_t("arange", {Value(0.0), Value(1.0), Value(0.1)});
  EXPECT_EQ(f->shape(), Shape({10}));
  EXPECT_EQ(f->dtype(), DType::kFloat32);
  EXPECT_EQ(shape_of(call_t("arange", {Value(5), Value(0), Value(-2)})), Shape({3}));
  EXPECT_EQ(shape_of(call_t("arange", {Value(2.5)})), Shape({3}));
  EXPECT_EQ(call_t("arange", {Value(3)}, {{"dtype", Value(DType::kFloat64)}})->dtype(),
            DType::kFloat64);
  EXPECT_THROW(call("arange", {Value(0), Value(1), Value(0)}), Error);
  EXPECT_THROW(call("arange", {Value(5), Value(0)}), Error);
}

TEST_F(CreationOps, ZerosOnesFullTakeVarargsOrSequence) {
  EXPECT_EQ(shape_of(call_t("zeros", {Value(2), Value(3)})), Shape({2, 3}));
  EXPECT_EQ(shape_of(call_t("ones", {Value::list({Value(2), Value(3)})})), Shape({2, 3}));
  EXPECT_EQ(shape_of(call_t("zeros", {Value::tuple({})})), Shape({}));
  EXPECT_EQ(call_t("ones", {Value(2)}, {{"dtype", Value(DType::kInt32)}})->dtype(), DType::kInt32);
  EXPECT_TRUE(last_prims().count("full"));
  EXPECT_EQ(call_t("full", {Value::ints({2}), Value(1)})->dtype(), DType::kInt64);
  EXPECT_EQ(call_t("full", {Value::ints({2}), Value(true)})->dtype(), DType::kBool);
  EXPECT_EQ(call_t("full", {Value::ints({2}), Value(1.5)})->dtype(), DType::kFloat32);
  EXPECT_THROW(call("zeros", {Value(-1), Value(2)}), Error);
  auto e = call_t("empty", {Value(4)}, {{"device", Value("cpu")}});
  EXPECT_EQ(e->device(), Device::cpu());
}

TEST_F(CreationOps, RequiresGradMakesAnUndecomposedLeaf) {
  auto z = call_t("zeros", {Value(2)}, {{"requires_grad", Value(true)}});
  EXPECT_TRUE(z->requires_grad());
  EXPECT_TRUE(last_prims().empty());
  EXPECT_THROW(
      call("zeros", {Value(2)}, {{"dtype", Value(DType::kInt64)}, {"requires_grad", Value(true)}}),
      Error);
}

TEST_F(CreationOps, LikeAndNewFormsDefaultToTheInput) {
  auto x = input({2, 3}, DType::kFloat64);
  auto z = call_t("zeros_like", {Value(x)});
  EXPECT_EQ(z->shape(), Shape({2, 3}));
  EXPECT_EQ(z->dtype(), DType::kFloat64);
  EXPECT_EQ(call_t("full_like", {Value(x), Value(7)}, {{"dtype", Value(DType::kInt32)}})->dtype(),
            DType::kInt32);
  auto n = call_t("new_ones", {Value(x), Value(4), Value(5)});
  EXPECT_EQ(n->shape(), Shape({4, 5}));
  EXPECT_EQ(n->dtype(), DType::kFloat64);
  EXPECT_EQ(call_t("new_full", {Value(x), Value::ints({3}), Value(2)})->dtype(), DType::kFloat64);
}

TEST_F(CreationOps, RandomOpsDecomposeToRandomPrims) {
  auto r = call_t("rand", {Value(2), Value(3)});
  EXPECT_EQ(r->shape(), Shape({2, 3}));
  EXPECT_TRUE(last_prims().count("uniform"));
  EXPECT_EQ(call_t("randn_like", {Value(input({4}, DType::kFloat64))})->dtype(), DType::kFloat64);
  EXPECT_TRUE(last_prims().count("randn"));
  EXPECT_TRUE(ltorch_symbol("rand").has_tag(kTagRandom));
  EXPECT_THROW(call("rand", {Value(2)}, {{"dtype", Value(DType::kInt64)}}), Error);
  auto ri = call_t("randint", {Value(10), Value::ints({2, 3})});
  EXPECT_EQ(ri->shape(), Shape({2, 3}));
  EXPECT_EQ(ri->dtype(), DType::kInt64);
  EXPECT_EQ(shape_of(call_t("randint", {Value(3), Value(10), Value::ints({4})})), Shape({4}));
}

TEST_F(CreationOps, LinspaceAndEye) {
  auto l = call_t("linspace", {Value(0), Value(1), Value(5)});
  EXPECT_EQ(l->shape(), Shape({5}));
  EXPECT_EQ(l->dtype(), DType::kFloat32);
  EXPECT_EQ(shape_of(call_t("linspace", {Value(0), Value(1), Value(0)})), Shape({0}));
  EXPECT_THROW(call("linspace", {Value(0), Value(1), Value(-1)}), Error);
  auto e = call_t("eye", {Value(2), Value(3)}, {{"dtype", Value(DType::kBool)}});
  EXPECT_EQ(e->shape(), Shape({2, 3}));
  EXPECT_EQ(e->dtype(), DType::kBool);
  EXPECT_EQ(shape_of(call_t("eye", {Value(3)})), Shape({3, 3}));
}

TEST_F(CreationOps, ToReturnsTheInputWhenNothingChanges) {
  auto x = input({2, 3});
  (void)recorded();
  EXPECT_EQ(call_t("to", {Value(x), Value(DType::kFloat32)}), x);
  EXPECT_EQ(call_t("to", {Value(x), Value("cpu")}), x);
  EXPECT_EQ(call_t("float", {Value(x)}), x);
  EXPECT_EQ(recorded(), 0u);
  EXPECT_NE(call_t("to", {Value(x), Value(DType::kFloat32)}, {{"copy", Value(true)}}), x);
  // to(dtype, non_blocking, copy) positionally
  EXPECT_NE(call_t("to", {Value(x), Value(DType::kFloat32), Value(false), Value(true)}), x);
}

TEST_F(CreationOps, ToOverloads) {
  auto x = input({2, 3});
  auto other = input({1}, DType::kInt32);
  EXPECT_EQ(call_t("to", {Value(x), Value(DType::kFloat64)})->dtype(), DType::kFloat64);
  EXPECT_EQ(call_t("to", {Value(x), Value("cpu"), Value(DType::kInt64)})->dtype(), DType::kInt64);
  EXPECT_EQ(call_t("to", {Value(x)}, {{"dtype", Value(DType::kBFloat16)}})->dtype(),
            DType::kBFloat16);
  EXPECT_EQ(call_t("to", {Value(x), Value(other)})->dtype(), DType::kInt32);
  auto c = call_t("to", {Value(x), Value("cuda")});
  EXPECT_EQ(c->device().type, DeviceType::kCUDA);
  EXPECT_EQ(c->device().index, 0);
  EXPECT_TRUE(last_prims().empty());  // no transfer primitive
  EXPECT_EQ(call_t("long", {Value(x)})->dtype(), DType::kInt64);
  EXPECT_EQ(call_t("type_as", {Value(x), Value(other)})->dtype(), DType::kInt32);
  EXPECT_EQ(call_t("type", {Value(x), Value("torch.DoubleTensor")})->dtype(), DType::kFloat64);
}

TEST_F(CreationOps, CloneCopiesAndDetachAliases) {
  auto x = input({2});
  EXPECT_NE(call_t("clone", {Value(x)}), x);
  EXPECT_EQ(call_t("detach", {Value(x)}), x);
  auto g = input({2}, DType::kFloat32, true);
  auto d = call_t("detach", {Value(g)});
  EXPECT_NE(d, g);
  EXPECT_FALSE(d->requires_grad());
}

}  // namespace
}  // namespace thunder
