// Meta functions of the neural-network ops: output shapes and dtypes, the primitives they decompose
// into, and PyTorch's errors for bad arguments.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "ir/bound_symbol.h"
#include "ir/builder.h"
#include "ops/registry.h"
#include "tests/op_fixture.h"

namespace thunder {
namespace {

class NnOpsTest : public testing::OpFixture {
 protected:
  std::vector<std::string> last_prims() { return OpFixture::last_prims(/*recursive=*/true); }
  static bool has(const std::vector<std::string>& v, const char* name) {
    return std::find(v.begin(), v.end(), name) != v.end();
  }
};

TEST_F(NnOpsTest, MatmulShapesFollowTorch) {
  EXPECT_EQ(shape_of(call("matmul", {Value(in({3})), Value(in({3}))})), (Shape{}));
  EXPECT_EQ(shape_of(call("matmul", {Value(in({2, 3})), Value(in({3}))})), (Shape{2}));
  EXPECT_EQ(shape_of(call("matmul", {Value(in({3})), Value(in({5, 3, 4}))})), (Shape{5, 4}));
  EXPECT_EQ(shape_of(call("matmul", {Value(in({5, 1, 2, 3})), Value(in({4, 3, 2}))})),
            (Shape{5, 4, 2, 2}));
  EXPECT_EQ(last_prims(), std::vector<std::string>{"matmul"});
}

TEST_F(NnOpsTest, MatmulErrorsLikeTorch) {
  EXPECT_THROW(call("matmul", {Value(in({2, 3})), Value(in({4, 2}))}), Error);
  EXPECT_THROW(call("matmul", {Value(in({})), Value(in({3}))}), Error);
  EXPECT_THROW(call("matmul", {Value(in({2, 3})), Value(in({3, 2}, DType::kFloat64))}), Error);
  EXPECT_THROW(call("matmul", {Value(in({2, 3}, DType::kBool)), Value(in({3, 2}, DType::kBool))}),
               NotImplementedError);
}

TEST_F(NnOpsTest, MmBmmRequireTheirRanks) {
  EXPECT_EQ(shape_of(call("mm", {Value(in({2, 3})), Value(in({3, 4}))})), (Shape{2, 4}));
  EXPECT_EQ(shape_of(call("bmm", {Value(in({5, 2, 3})), Value(in({5, 3, 4}))})), (Shape{5, 2, 4}));
  EXPECT_THROW(call("mm", {Value(in({2, 3, 1})), Value(in({3, 4}))}), Error);
  EXPECT_THROW(call("bmm", {Value(in({5, 2, 3})), Value(in({4, 3, 4}))}), Error);
  Value out =
      call("addmm", {Value(in({4})), Value(in({2, 3})), Value(in({3, 4}))}, {{"beta", Value(0.5)}});
  EXPECT_EQ(shape_of(out), (Shape{2, 4}));
}

TEST_F(NnOpsTest, LinearRecordsThePrimitive) {
  Value out = call("linear", {Value(in({2, 3, 4})), Value(in({5, 4})), Value(in({5}))});
  EXPECT_EQ(shape_of(out), (Shape{2, 3, 5}));
  EXPECT_EQ(last_prims(), std::vector<std::string>{"linear"});
  EXPECT_THROW(call("linear", {Value(in({2, 3})), Value(in({5, 4}))}), Error);
  EXPECT_THROW(call("linear", {Value(in({2, 4})), Value(in({5, 4}, DType::kFloat64))}), Error);
}

TEST_F(NnOpsTest, EmbeddingTakesFlattenedIndices) {
  Value out = call("embedding", {Value(in({2, 3}, DType::kInt64)), Value(in({10, 4}))});
  EXPECT_EQ(shape_of(out), (Shape{2, 3, 4}));
  EXPECT_EQ(last_prims(), (std::vector<std::string>{"reshape", "take", "reshape"}));
  EXPECT_THROW(call("embedding", {Value(in({2}, DType::kFloat32)), Value(in({10, 4}))}), Error);
  EXPECT_THROW(call("embedding", {Value(in({2}, DType::kInt64)), Value(in({10, 4}))},
                    {{"max_norm", Value(1.0)}}),
               NotImplementedError);
}

TEST_F(NnOpsTest, SoftmaxSubtractsTheMaximum) {
  Value out = call("softmax", {Value(in({2, 3})), Value(int64_t{-1})});
  EXPECT_EQ(shape_of(out), (Shape{2, 3}));
  std::vector<std::string> p = last_prims();
  EXPECT_TRUE(has(p, "amax"));
  EXPECT_TRUE(has(p, "exp"));
  EXPECT_TRUE(has(p, "div"));
}

TEST_F(NnOpsTest, SoftmaxComputesLowPrecisionInFloat32) {
  Value out = call("log_softmax", {Value(in({2, 3}, DType::kBFloat16)), Value(int64_t{1})});
  EXPECT_EQ(dtype_of(out), DType::kBFloat16);
  std::vector<BSymRef> all = b.take();
  const auto& subs = all.back()->subsymbols;
  EXPECT_EQ(subs.front()->sym->name, "convert_element_type");
  EXPECT_EQ(subs.front()->output.as_tensor()->dtype(), DType::kFloat32);
}

TEST_F(NnOpsTest, SoftmaxDtypeAndErrors) {
  Value out = call("softmax", {Value(in({3}, DType::kInt64)), Value(int64_t{0})},
                   {{"dtype", Value(DType::kFloat64)}});
  EXPECT_EQ(dtype_of(out), DType::kFloat64);
  EXPECT_THROW(call("softmax", {Value(in({3}, DType::kInt64)), Value(int64_t{0})}),
               NotImplementedError);
  EXPECT_THROW(call("softmax", {Value(in({2, 3})), Value(int64_t{2})}), IndexError);
  EXPECT_EQ(shape_of(call("softmax", {Value(in({})), Value(int64_t{0})})), (Shape{}));
}

TEST_F(NnOpsTest, ActivationsKeepShapeAndDtype) {
  for (const char* op : {"gelu", "silu", "mish", "softplus", "leaky_relu", "elu", "hardtanh",
                         "relu6", "hardswish", "hardsigmoid"}) {
    Value out = call(op, {Value(in({2, 3}, DType::kBFloat16))});
    EXPECT_EQ(shape_of(out), (Shape{2, 3})) << op;
    EXPECT_EQ(dtype_of(out), DType::kBFloat16) << op;
  }
  EXPECT_THROW(call("gelu", {Value(in({2}))}, {{"approximate", Value("bogus")}}), Error);
  EXPECT_THROW(call("silu", {Value(in({2}, DType::kInt64))}), NotImplementedError);
  EXPECT_THROW(call("silu", {Value(in({2})), Value(true)}), NotImplementedError);
}

TEST_F(NnOpsTest, LayerNormChecksNormalizedShape) {
  Value out =
      call("layer_norm", {Value(in({2, 3, 4})), Value::ints({4}), Value(in({4})), Value(in({4}))});
  EXPECT_EQ(shape_of(out), (Shape{2, 3, 4}));
  EXPECT_TRUE(has(last_prims(), "var"));
  EXPECT_THROW(call("layer_norm", {Value(in({2, 3, 4})), Value::ints({5})}), Error);
  EXPECT_THROW(call("layer_norm", {Value(in({2, 3, 4})), Value::ints({4}), Value(in({3}))}), Error);
}

TEST_F(NnOpsTest, RmsNormKeepsInputDtype) {
  Value out = call("rms_norm", {Value(in({2, 4}, DType::kBFloat16)), Value::ints({4}),
                                Value(in({4}, DType::kFloat32))});
  EXPECT_EQ(dtype_of(out), DType::kBFloat16);
  EXPECT_TRUE(has(last_prims(), "rsqrt"));
}

TEST_F(NnOpsTest, GroupNormNeedsDivisibleChannels) {
  EXPECT_EQ(shape_of(call("group_norm", {Value(in({2, 6, 5})), Value(int64_t{3})})),
            (Shape{2, 6, 5}));
  EXPECT_THROW(call("group_norm", {Value(in({2, 6, 5})), Value(int64_t{4})}), Error);
}

TEST_F(NnOpsTest, BatchNormTrainingCopiesRunningStats) {
  Value out = call("batch_norm", {Value(in({4, 3, 5})), Value(in({3})), Value(in({3})), Value(),
                                  Value(), Value(true)});
  EXPECT_EQ(shape_of(out), (Shape{4, 3, 5}));
  std::vector<std::string> p = last_prims();
  EXPECT_EQ(std::count(p.begin(), p.end(), "copy_"), 2);
}

TEST_F(NnOpsTest, BatchNormEvalUsesRunningStatsAndErrors) {
  Value out = call("batch_norm", {Value(in({4, 3})), Value(in({3})), Value(in({3}))});
  EXPECT_EQ(shape_of(out), (Shape{4, 3}));
  std::vector<std::string> p = last_prims();
  EXPECT_FALSE(has(p, "copy_"));
  EXPECT_FALSE(has(p, "var"));
  EXPECT_THROW(call("batch_norm", {Value(in({4, 3})), Value(), Value()}), Error);
  EXPECT_THROW(
      call("batch_norm", {Value(in({1, 3})), Value(), Value(), Value(), Value(), Value(true)}),
      ValueError);
}

TEST_F(NnOpsTest, DropoutIsTheIdentityWhenNotTraining) {
  TensorRef x = in({3, 4});
  EXPECT_EQ(call("dropout", {Value(x), Value(0.5), Value(false)}).as_tensor(), x);
  EXPECT_EQ(call("dropout", {Value(x), Value(0.0)}).as_tensor(), x);
  b.take();
  Value out = call("dropout", {Value(x), Value(0.25)});
  EXPECT_EQ(shape_of(out), (Shape{3, 4}));
  std::vector<std::string> p = last_prims();
  EXPECT_TRUE(has(p, "uniform"));
  EXPECT_TRUE(has(p, "where"));
  EXPECT_THROW(call("dropout", {Value(x), Value(1.5)}), ValueError);
}

TEST_F(NnOpsTest, SdpaShapesCausalAndGqa) {
  Value out = call("scaled_dot_product_attention",
                   {Value(in({2, 3, 5, 8})), Value(in({2, 3, 7, 8})), Value(in({2, 3, 7, 6}))});
  EXPECT_EQ(shape_of(out), (Shape{2, 3, 5, 6}));
  out = call("scaled_dot_product_attention",
             {Value(in({2, 6, 5, 8})), Value(in({2, 2, 7, 8})), Value(in({2, 2, 7, 8}))},
             {{"is_causal", Value(true)}, {"enable_gqa", Value(true)}});
  EXPECT_EQ(shape_of(out), (Shape{2, 6, 5, 8}));
  std::vector<std::string> p = last_prims();
  EXPECT_TRUE(has(p, "iota"));
  EXPECT_EQ(std::count(p.begin(), p.end(), "matmul"), 2);
  EXPECT_THROW(call("scaled_dot_product_attention",
                    {Value(in({2, 4})), Value(in({3, 4})), Value(in({3, 4})),
                     Value(in({2, 3}, DType::kBool)), Value(0.0), Value(true)}),
               Error);
}

TEST_F(NnOpsTest, LossesReduceAndCheckTargets) {
  TensorRef x = in({6, 5});
  TensorRef t = in({6}, DType::kInt64);
  EXPECT_EQ(shape_of(call("cross_entropy", {Value(x), Value(t)})), (Shape{}));
  EXPECT_EQ(shape_of(call("nll_loss", {Value(x), Value(t)}, {{"reduction", Value("none")}})),
            (Shape{6}));
  EXPECT_EQ(shape_of(call("cross_entropy", {Value(in({2, 5, 3})), Value(in({2, 5, 3}))},
                          {{"reduction", Value("none")}})),
            (Shape{2, 3}));
  EXPECT_THROW(call("nll_loss", {Value(x), Value(in({4}, DType::kInt64))}), ValueError);
  EXPECT_THROW(call("nll_loss", {Value(x), Value(in({6}, DType::kInt32))}), Error);
  EXPECT_THROW(call("mse_loss", {Value(x), Value(x)}, {{"reduction", Value("bogus")}}), ValueError);
  EXPECT_EQ(dtype_of(call("mse_loss", {Value(in({3})), Value(in({3}, DType::kFloat64))})),
            DType::kFloat64);
}

TEST_F(NnOpsTest, ConvPaddingModes) {
  TensorRef x = in({2, 4, 7, 6});
  TensorRef w = in({6, 4, 3, 2});
  EXPECT_EQ(shape_of(call("conv2d", {Value(x), Value(w)})), (Shape{2, 6, 5, 5}));
  EXPECT_EQ(shape_of(call("conv2d", {Value(x), Value(w)}, {{"padding", Value("same")}})),
            (Shape{2, 6, 7, 6}));
  EXPECT_EQ(shape_of(call("conv2d", {Value(in({4, 7, 6})), Value(w)},
                          {{"stride", Value(int64_t{2})}, {"padding", Value(int64_t{1})}})),
            (Shape{6, 4, 4}));
  EXPECT_THROW(call("conv2d", {Value(x), Value(w)},
                    {{"padding", Value("same")}, {"stride", Value(int64_t{2})}}),
               Error);
  EXPECT_THROW(call("conv2d", {Value(x), Value(in({6, 3, 3, 3}))}), Error);
}

TEST_F(NnOpsTest, PoolingOutputSizes) {
  TensorRef x = in({2, 3, 7, 8});
  EXPECT_EQ(shape_of(call("max_pool2d", {Value(x), Value(int64_t{3}), Value(int64_t{2})})),
            (Shape{2, 3, 3, 3}));
  EXPECT_TRUE(has(last_prims(), "unfold"));
  EXPECT_EQ(shape_of(call("max_pool2d", {Value(x), Value(int64_t{3}), Value(int64_t{2})},
                          {{"ceil_mode", Value(true)}})),
            (Shape{2, 3, 3, 4}));
  EXPECT_EQ(shape_of(call("avg_pool2d", {Value(x), Value(int64_t{2})})), (Shape{2, 3, 3, 4}));
  EXPECT_EQ(shape_of(call("adaptive_avg_pool2d", {Value(x), Value::ints({3, 3})})),
            (Shape{2, 3, 3, 3}));
  EXPECT_THROW(call("max_pool2d", {Value(x), Value(int64_t{2})}, {{"padding", Value(int64_t{2})}}),
               Error);
  EXPECT_THROW(call("max_pool2d", {Value(x), Value(int64_t{2})}, {{"return_indices", Value(true)}}),
               NotImplementedError);
}

TEST_F(NnOpsTest, PadModes) {
  TensorRef x = in({2, 3, 4});
  EXPECT_EQ(shape_of(call("pad", {Value(x), Value::ints({1, 2, 0, 1})})), (Shape{2, 4, 7}));
  EXPECT_EQ(last_prims(), std::vector<std::string>{"pad"});
  EXPECT_EQ(shape_of(call("pad", {Value(x), Value::ints({2, 1}), Value("reflect")})),
            (Shape{2, 3, 7}));
  EXPECT_TRUE(has(last_prims(), "take"));
  EXPECT_THROW(call("pad", {Value(x), Value::ints({1})}), Error);
  EXPECT_THROW(call("pad", {Value(x), Value::ints({4, 4}), Value("reflect")}), Error);
  EXPECT_THROW(call("pad", {Value(x), Value::ints({1, 1}), Value("bogus")}), NotImplementedError);
}

TEST_F(NnOpsTest, OneHotNeedsNumClasses) {
  Value out = call("one_hot", {Value(in({2, 3}, DType::kInt64)), Value(int64_t{5})});
  EXPECT_EQ(shape_of(out), (Shape{2, 3, 5}));
  EXPECT_EQ(dtype_of(out), DType::kInt64);
  EXPECT_THROW(call("one_hot", {Value(in({2}, DType::kInt64))}), NotImplementedError);
}

}  // namespace
}  // namespace thunder
