// Meta functions of the shape and indexing ops: output shapes and dtypes, the primitives they
// decompose into, and PyTorch's errors for bad arguments.
#include <gtest/gtest.h>

#include "core/error.h"
#include "ir/bound_symbol.h"
#include "ir/builder.h"
#include "ops/registry.h"
#include "tests/op_fixture.h"

namespace thunder {
namespace {

using ShapeOpsTest = testing::OpFixture;

TEST_F(ShapeOpsTest, ReshapeInfersMinusOne) {
  Value out = call("reshape", {Value(in({2, 3})), Value::ints({3, -1})});
  EXPECT_EQ(shape_of(out), (Shape{3, 2}));
  EXPECT_EQ(last_prims(), std::vector<std::string>{"reshape"});
}

TEST_F(ShapeOpsTest, ViewTakesVarargs) {
  Value out = call("view", {Value(in({6})), Value(2), Value(3)});
  EXPECT_EQ(shape_of(out), (Shape{2, 3}));
}

TEST_F(ShapeOpsTest, ReshapeToSameShapeRecordsNothing) {
  TensorRef x = in({2, 3});
  Value out = call("reshape", {Value(x), Value::ints({2, 3})});
  EXPECT_EQ(out.as_tensor(), x);
  EXPECT_TRUE(b.take().empty());
}

TEST_F(ShapeOpsTest, ReshapeErrorsLikeTorch) {
  EXPECT_THROW(call("reshape", {Value(in({6})), Value::ints({4, -1})}), ValueError);
  EXPECT_THROW(call("reshape", {Value(in({6})), Value::ints({-1, -1})}), ValueError);
  EXPECT_THROW(call("reshape", {Value(in({0})), Value::ints({0, -1})}), ValueError);
}

TEST_F(ShapeOpsTest, PermuteAndTranspose) {
  EXPECT_EQ(shape_of(call("permute", {Value(in({2, 3, 4})), Value(2), Value(0), Value(1)})),
            (Shape{4, 2, 3}));
  EXPECT_EQ(shape_of(call("transpose", {Value(in({2, 3, 4})), Value(0), Value(-1)})),
            (Shape{4, 3, 2}));
  EXPECT_EQ(shape_of(call("t", {Value(in({2, 3}))})), (Shape{3, 2}));
  EXPECT_THROW(call("t", {Value(in({2, 3, 4}))}), ValueError);
  EXPECT_THROW(call("permute", {Value(in({2, 3})), Value(0)}), ValueError);
  EXPECT_THROW(call("transpose", {Value(in({2, 3})), Value(0), Value(2)}), IndexError);
}

TEST_F(ShapeOpsTest, MovedimPlacesSourcesAtDestinations) {
  Value out = call("movedim", {Value(in({2, 3, 4, 5})), Value::ints({0, 1}), Value::ints({3, 0})});
  EXPECT_EQ(shape_of(out), (Shape{3, 4, 5, 2}));
}

TEST_F(ShapeOpsTest, ExpandKeepsMinusOneAndPrependsDims) {
  Value out = call("expand", {Value(in({3, 1})), Value(2), Value(-1), Value(4)});
  EXPECT_EQ(shape_of(out), (Shape{2, 3, 4}));
  EXPECT_THROW(call("expand", {Value(in({2, 3})), Value(3)}), ValueError);
  EXPECT_THROW(call("expand", {Value(in({2, 3})), Value(2), Value(4)}), ValueError);
  EXPECT_THROW(call("expand", {Value(in({3})), Value(-1), Value(3)}), ValueError);
}

TEST_F(ShapeOpsTest, RepeatAndRepeatInterleave) {
  EXPECT_EQ(shape_of(call("repeat", {Value(in({2, 3})), Value(2), Value(1), Value(3)})),
            (Shape{2, 2, 9}));
  EXPECT_EQ(shape_of(call("repeat_interleave", {Value(in({2, 3})), Value(2)})), (Shape{12}));
  EXPECT_EQ(shape_of(call("repeat_interleave", {Value(in({2, 3})), Value(2)}, {{"dim", Value(1)}})),
            (Shape{2, 6}));
  EXPECT_THROW(call("repeat", {Value(in({2, 3})), Value(2)}), ValueError);
  EXPECT_THROW(call("repeat_interleave", {Value(in({2})), Value(in({2}, DType::kInt64))}),
               NotImplementedError);
}

TEST_F(ShapeOpsTest, SqueezeDropsOnlySizeOneDims) {
  EXPECT_EQ(shape_of(call("squeeze", {Value(in({1, 2, 1}))})), (Shape{2}));
  EXPECT_EQ(shape_of(call("squeeze", {Value(in({1, 2, 1})), Value::ints({0, 1})})), (Shape{2, 1}));
  TensorRef x = in({1, 2, 1});
  EXPECT_EQ(call("squeeze", {Value(x), Value(1)}).as_tensor(), x);
  EXPECT_EQ(shape_of(call("unsqueeze", {Value(in({2, 3})), Value(-1)})), (Shape{2, 3, 1}));
  EXPECT_EQ(shape_of(call("unsqueeze", {Value(in({})), Value(0)})), (Shape{1}));
}

TEST_F(ShapeOpsTest, FlattenAndUnflatten) {
  EXPECT_EQ(shape_of(call("flatten", {Value(in({2, 3, 4})), Value(1)})), (Shape{2, 12}));
  EXPECT_EQ(shape_of(call("flatten", {Value(in({}))})), (Shape{1}));
  EXPECT_THROW(call("flatten", {Value(in({2, 3, 4})), Value(2), Value(1)}), ValueError);
  EXPECT_EQ(shape_of(call("unflatten", {Value(in({3, 8})), Value(1), Value::ints({2, -1, 2})})),
            (Shape{3, 2, 2, 2}));
  EXPECT_THROW(call("unflatten", {Value(in({3, 8})), Value(1), Value::ints({3, 3})}), ValueError);
}

TEST_F(ShapeOpsTest, NarrowAndSelect) {
  EXPECT_EQ(shape_of(call("narrow", {Value(in({2, 5})), Value(1), Value(-3), Value(2)})),
            (Shape{2, 2}));
  EXPECT_THROW(call("narrow", {Value(in({2, 5})), Value(1), Value(4), Value(2)}), ValueError);
  EXPECT_EQ(shape_of(call("select", {Value(in({2, 5})), Value(1), Value(-1)})), (Shape{2}));
  EXPECT_EQ(last_prims(), (std::vector<std::string>{"slice", "squeeze"}));
  EXPECT_THROW(call("select", {Value(in({2, 5})), Value(0), Value(2)}), IndexError);
  EXPECT_THROW(call("select", {Value(in({})), Value(0), Value(0)}), IndexError);
}

TEST_F(ShapeOpsTest, SplitChunkUnbindTensorSplit) {
  auto shapes = [](const Value& v) {
    std::vector<Shape> out;
    for (const Value& t : v.items()) out.push_back(t.as_tensor()->shape());
    return out;
  };
  EXPECT_EQ(shapes(call("split", {Value(in({5, 2})), Value(2)})),
            (std::vector<Shape>{{2, 2}, {2, 2}, {1, 2}}));
  EXPECT_EQ(shapes(call("split", {Value(in({2, 5})), Value::list({Value(1), Value(4)}), Value(1)})),
            (std::vector<Shape>{{2, 1}, {2, 4}}));
  EXPECT_THROW(call("split", {Value(in({5})), Value::list({Value(1), Value(1)})}), ValueError);
  EXPECT_EQ(shapes(call("chunk", {Value(in({5})), Value(3)})), (std::vector<Shape>{{2}, {2}, {1}}));
  EXPECT_EQ(shapes(call("chunk", {Value(in({0})), Value(2)})), (std::vector<Shape>{{0}, {0}}));
  EXPECT_EQ(shapes(call("unbind", {Value(in({2, 3})), Value(1)})),
            (std::vector<Shape>{{2}, {2}, {2}}));
  EXPECT_EQ(shapes(call("tensor_split", {Value(in({7})), Value(3)})),
            (std::vector<Shape>{{3}, {2}, {2}}));
  EXPECT_EQ(shapes(call("tensor_split",
                        {Value(in({7})), Value::list({Value(1), Value(5), Value(3), Value(9)})})),
            (std::vector<Shape>{{1}, {4}, {0}, {4}, {0}}));
}

TEST_F(ShapeOpsTest, CatPromotesAndSkipsLegacyEmpty) {
  Value out = call(
      "cat", {Value::list({Value(in({2, 3}, DType::kInt64)), Value(in({1, 3})), Value(in({0}))})});
  EXPECT_EQ(shape_of(out), (Shape{3, 3}));
  EXPECT_EQ(out.as_tensor()->dtype(), DType::kFloat32);
  EXPECT_THROW(call("cat", {Value::list({Value(in({2, 3})), Value(in({2, 2}))})}), ValueError);
  EXPECT_THROW(call("cat", {Value::list({Value(in({}))})}), ValueError);
  EXPECT_THROW(call("cat", {Value::list({})}), ValueError);
}

TEST_F(ShapeOpsTest, StackAndHVStack) {
  EXPECT_EQ(
      shape_of(call("stack", {Value::list({Value(in({2, 3})), Value(in({2, 3}))}), Value(-1)})),
      (Shape{2, 3, 2}));
  EXPECT_THROW(call("stack", {Value::list({Value(in({2})), Value(in({3}))})}), ValueError);
  EXPECT_EQ(shape_of(call("hstack", {Value::list({Value(in({2})), Value(in({3}))})})), (Shape{5}));
  EXPECT_EQ(shape_of(call("vstack", {Value::list({Value(in({3})), Value(in({2, 3}))})})),
            (Shape{3, 3}));
}

TEST_F(ShapeOpsTest, FlipRollTril) {
  EXPECT_EQ(shape_of(call("flip", {Value(in({2, 3})), Value(0), Value(1)})), (Shape{2, 3}));
  EXPECT_THROW(call("flip", {Value(in({2, 3})), Value(0), Value(0)}), ValueError);
  EXPECT_EQ(shape_of(call("roll", {Value(in({2, 3})), Value(1), Value(1)})), (Shape{2, 3}));
  EXPECT_EQ(last_prims(), (std::vector<std::string>{"slice", "slice", "cat"}));
  Value m = call("tril", {Value(in({3, 4}, DType::kBool))});
  EXPECT_EQ(shape_of(m), (Shape{3, 4}));
  EXPECT_EQ(m.as_tensor()->dtype(), DType::kBool);
  EXPECT_THROW(call("triu", {Value(in({3}))}), ValueError);
}

TEST_F(ShapeOpsTest, GetitemBasicIndices) {
  TensorRef x = in({2, 3, 4});
  auto get = [&](Value idx) { return shape_of(call("getitem", {Value(x), std::move(idx)})); };
  EXPECT_EQ(get(Value(1)), (Shape{3, 4}));
  EXPECT_EQ(get(Value::tuple({Value(EllipsisT{}), Value(-1)})), (Shape{2, 3}));
  EXPECT_EQ(get(Value::tuple({Value(), Value(Slice{1, std::nullopt, std::nullopt})})),
            (Shape{1, 1, 3, 4}));
  EXPECT_EQ(
      get(Value::tuple({Value(Slice{std::nullopt, std::nullopt, 2}), Value(Slice{-2, -10, 1})})),
      (Shape{1, 0, 4}));
  EXPECT_EQ(get(Value::tuple({Value(Slice{-10, 10, std::nullopt})})), (Shape{2, 3, 4}));
  EXPECT_THROW(get(Value(2)), IndexError);
  EXPECT_THROW(get(Value::tuple({Value(0), Value(0), Value(0), Value(0)})), IndexError);
  EXPECT_THROW(get(Value(Slice{std::nullopt, std::nullopt, -1})), ValueError);
}

TEST_F(ShapeOpsTest, GetitemAdvancedIndicesFollowTorchPlacement) {
  TensorRef x = in({2, 3, 4});
  TensorRef i = in({5}, DType::kInt64);
  TensorRef j = in({2, 1}, DType::kInt64);
  auto get = [&](Value idx) { return shape_of(call("getitem", {Value(x), std::move(idx)})); };
  Value all(Slice{});
  EXPECT_EQ(get(Value(i)), (Shape{5, 3, 4}));
  EXPECT_EQ(get(Value::tuple({all, Value(i), Value(j)})), (Shape{2, 2, 5}));  // adjacent: in place
  EXPECT_EQ(get(Value::tuple({Value(i), all, Value(j)})), (Shape{2, 5, 3}));  // separated: in front
  EXPECT_EQ(get(Value::tuple({Value(0), all, Value::list({Value(0), Value(1)})})), (Shape{3, 2}));
  EXPECT_EQ(get(Value::list({Value(true), Value(false)})), (Shape{1, 3, 4}));
  EXPECT_THROW(get(Value(in({2}, DType::kBool))), NotImplementedError);
}

TEST_F(ShapeOpsTest, SetitemKeepsShapeAndDtype) {
  TensorRef x = in({3, 4}, DType::kInt64);
  Value out =
      call("setitem", {Value(x), Value(Slice{1, std::nullopt, std::nullopt}), Value(in({4}))});
  EXPECT_EQ(shape_of(out), (Shape{3, 4}));
  EXPECT_EQ(out.as_tensor()->dtype(), DType::kInt64);
  Value adv = call("setitem", {Value(x), Value(in({2}, DType::kInt64)), Value(1.5)});
  EXPECT_EQ(shape_of(adv), (Shape{3, 4}));
  EXPECT_THROW(call("setitem", {Value(x), Value(0), Value(in({3}))}), ValueError);
  Value inplace = call("setitem_", {Value(x), Value(0), Value(2)});
  EXPECT_EQ(shape_of(inplace), (Shape{3, 4}));
}

TEST_F(ShapeOpsTest, MaskedFillBroadcastsAndChecksMask) {
  Value out = call("masked_fill", {Value(in({3})), Value(in({2, 3}, DType::kBool)), Value(1.0)});
  EXPECT_EQ(shape_of(out), (Shape{2, 3}));
  EXPECT_THROW(call("masked_fill", {Value(in({3})), Value(in({3})), Value(1.0)}), TypeError);
  EXPECT_THROW(call("masked_fill", {Value(in({3})), Value(in({3}, DType::kBool)), Value(in({1}))}),
               ValueError);
  EXPECT_THROW(call("masked_fill_", {Value(in({3})), Value(in({2, 3}, DType::kBool)), Value(1.0)}),
               Error);  // eager's RuntimeError: an in-place op does not broadcast its input
}

TEST_F(ShapeOpsTest, GatherScatterIndexSelect) {
  TensorRef x = in({3, 4});
  EXPECT_EQ(shape_of(call("index_select", {Value(x), Value(1), Value(in({5}, DType::kInt64))})),
            (Shape{3, 5}));
  EXPECT_THROW(call("index_select", {Value(x), Value(1), Value(in({5}))}), TypeError);
  EXPECT_EQ(shape_of(call("gather", {Value(x), Value(0), Value(in({2, 2}, DType::kInt64))})),
            (Shape{2, 2}));
  EXPECT_THROW(call("gather", {Value(x), Value(0), Value(in({2, 5}, DType::kInt64))}), ValueError);
  EXPECT_THROW(call("gather", {Value(x), Value(0), Value(in({2}, DType::kInt64))}), ValueError);
  EXPECT_EQ(shape_of(call("scatter_add", {Value(x), Value(0), Value(in({2, 2}, DType::kInt64)),
                                          Value(in({2, 3}))})),
            (Shape{3, 4}));
  EXPECT_THROW(call("scatter_add", {Value(x), Value(0), Value(in({2, 2}, DType::kInt64)),
                                    Value(in({2, 3}, DType::kFloat64))}),
               TypeError);
  EXPECT_EQ(
      shape_of(call("take_along_dim", {Value(x), Value(in({1, 2}, DType::kInt64)), Value(1)})),
      (Shape{3, 2}));
  EXPECT_EQ(shape_of(call("take_along_dim", {Value(x), Value(in({5}, DType::kInt64))})),
            (Shape{5}));
}

}  // namespace
}  // namespace thunder
