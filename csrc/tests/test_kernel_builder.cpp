// The fuser's kernel builder (fuser/kernel.h) and layouts (fuser/layout.h): a cat no operation of
// the kernel reads is written in parts, each part stored at its place in the cat's one tensor.
#include <gtest/gtest.h>

#include "fuser/kernel.h"
#include "fuser/layout.h"
#include "ir/builder.h"
#include "ops/registry.h"

namespace thunder {
namespace {

class KernelBuilderTest : public ::testing::Test {
 protected:
  void SetUp() override { ensure_builtin_ops(); }
  TensorRef input(const std::string& name, Shape shape) {
    return b.new_tensor(std::move(shape), DType::kFloat32, Device::cpu(), false, name);
  }
  Builder b;
};

TEST_F(KernelBuilderTest, CatNoOperationReadsIsWrittenInParts) {
  // y = cat(x * 2, exp(x), 1) over x of 4 x 8: a kernel over x's 4 x 8, two parts of y [4, 16].
  auto x = input("x", {4, 8});
  Value a = b.call(prims::mul(), {x, Value(2.0)});
  Value e = b.call(prims::exp(), {x});
  Value y = b.call(prims::cat(), {Value::list({a, e}), Value(int64_t{1})});
  std::vector<BSymRef> prims = b.take();
  std::string why;
  auto k = fuser::build_kernel(prims, {x}, {y.as_tensor()}, &why);
  ASSERT_TRUE(k.has_value()) << why;
  EXPECT_EQ(k->kind, fuser::KernelDef::Kind::kPointwise);
  EXPECT_EQ(k->sizes, (std::vector<int64_t>{4, 8}));
  ASSERT_EQ(k->outputs.size(), 2u);
  EXPECT_EQ(k->tensor_outputs(), 1u);
  EXPECT_EQ(k->tensor_of(1), 0u);
  ASSERT_EQ(k->output_parts.size(), 2u);
  EXPECT_EQ(k->output_parts[1].dim, 1);
  EXPECT_EQ(k->output_parts[1].start, 8);
  fuser::Layout L;
  ASSERT_TRUE(fuser::contiguous_layout(*k, &L));
  // y's rows are 16 wide: the second part's stores start 8 elements in; both parts' strides are
  // y's.
  ASSERT_EQ(L.stores.size(), 2u);
  EXPECT_EQ(L.stores[0].offset, 0);
  EXPECT_EQ(L.stores[1].offset, 8);
  EXPECT_EQ(L.stores[0].strides, L.stores[1].strides);
  EXPECT_EQ(L.out_strides[0], (std::vector<int64_t>{16, 1}));
}

TEST_F(KernelBuilderTest, CatReadByTheKernelIsComputedFromPaddedLoads) {
  // exp(cat(x, x * 2, 0)): the kernel reads the cat, so it runs over the cat's 8 x 4 with each part
  // computed from loads padded to it, and writes one output.
  auto x = input("x", {4, 4});
  Value a = b.call(prims::mul(), {x, Value(2.0)});
  Value c = b.call(prims::cat(), {Value::list({Value(x), a}), Value(int64_t{0})});
  Value y = b.call(prims::exp(), {c});
  std::vector<BSymRef> prims = b.take();
  auto k = fuser::build_kernel(prims, {x}, {y.as_tensor()});
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->outputs.size(), 1u);
  EXPECT_TRUE(k->output_parts.empty());
  bool padded = false;
  for (const fuser::KNode& n : k->nodes) padded = padded || fuser::padded_load(n);
  EXPECT_TRUE(padded);
}

TEST_F(KernelBuilderTest, CatOfPartsOfDifferentSizesIsComputedFromPaddedLoads) {
  auto x = input("x", {4, 8}), z = input("z", {4, 3});
  Value a = b.call(prims::mul(), {x, Value(2.0)});
  Value e = b.call(prims::exp(), {z});
  Value y = b.call(prims::cat(), {Value::list({a, e}), Value(int64_t{1})});
  std::vector<BSymRef> prims = b.take();
  auto k = fuser::build_kernel(prims, {x, z}, {y.as_tensor()});
  ASSERT_TRUE(k.has_value());
  EXPECT_TRUE(k->output_parts.empty());
  EXPECT_EQ(k->sizes, (std::vector<int64_t>{4, 11}));
}

TEST_F(KernelBuilderTest, ReshapeOfASliceIsIndexingWhereItOnlySplitsDims) {
  // q = x[:, :, 0:8] of x [2, 3, 24], its heads split ([2, 3, 2, 4]): a load through both views.
  // Merging the slice's dims ([6, 8]) is not indexing whatever the strides: refused.
  auto x = input("x", {2, 3, 24});
  Value q = b.call(prims::slice(), {x, Value::ints({0, 0, 0}), Value::ints({2, 3, 8}), Value::ints({1, 1, 1})});
  Value split = b.call(prims::reshape(), {q, Value::shape(Shape{2, 3, 2, 4})});
  Value y = b.call(prims::mul(), {split, Value(2.0)});
  std::vector<BSymRef> prims = b.take();
  std::string why;
  EXPECT_TRUE(fuser::build_kernel(prims, {x}, {y.as_tensor()}, &why).has_value()) << why;
  Value q2 = b.call(prims::slice(), {x, Value::ints({0, 0, 0}), Value::ints({2, 3, 8}), Value::ints({1, 1, 1})});
  Value merged = b.call(prims::reshape(), {q2, Value::shape(Shape{6, 8})});
  Value y2 = b.call(prims::mul(), {merged, Value(2.0)});
  prims = b.take();
  EXPECT_FALSE(fuser::build_kernel(prims, {x}, {y2.as_tensor()}, &why).has_value());
  EXPECT_NE(why.find("reshape of a transposed, sliced or broadcast input"), std::string::npos) << why;
}

}  // namespace
}  // namespace thunder
