// The region partitioner (executors/partition.h): regions grow along data dependences, stay convex,
// respect barriers, and are emitted where their last member was.
#include <gtest/gtest.h>

#include "executors/partition.h"
#include "ir/builder.h"
#include "ops/registry.h"

namespace thunder {
namespace {

class PartitionTest : public ::testing::Test {
 protected:
  void SetUp() override { ensure_builtin_ops(); }
  TensorRef input(const std::string& name, Shape shape) {
    return b.new_tensor(std::move(shape), DType::kFloat32, Device::cpu(), false, name);
  }
  Trace finish(std::vector<TensorRef> inputs, Value out) {
    Trace t;
    t.inputs = std::move(inputs);
    t.bsyms = b.take();
    t.output = std::move(out);
    return t;
  }
  // Partitions with elementwise prims fusible; each region becomes one `fusionN` symbol whose
  // sub-symbols are the members. Records the regions seen.
  Trace run(const Trace& t, bool broadcasts_fusible = false) {
    return partition_regions(
        t,
        [broadcasts_fusible](const BoundSymbol& s) {
          return s.sym->has_tag(kTagElementwise) ||
                 (broadcasts_fusible && s.sym == &prims::broadcast_in_dim());
        },
        [&](const Region& r) -> std::vector<BSymRef> {
          regions.push_back(r);
          static std::vector<std::unique_ptr<Symbol>> syms;
          auto s = std::make_unique<Symbol>();
          s->name = "fusion" + std::to_string(regions.size() - 1);
          s->kind = SymbolKind::kFusion;
          std::vector<Value> args(r.inputs.begin(), r.inputs.end());
          std::vector<Value> outs(r.outputs.begin(), r.outputs.end());
          syms.push_back(std::move(s));
          return {BoundSymbol::make(syms.back().get(), args, Value::tuple(outs), r.bsyms)};
        });
  }
  static std::vector<std::string> names(const Trace& t) {
    std::vector<std::string> out;
    for (const BSymRef& s : t.bsyms) out.push_back(s->sym->qualname());
    return out;
  }
  static std::vector<std::string> names(const std::vector<TensorRef>& ts) {
    std::vector<std::string> out;
    for (const TensorRef& t : ts) out.push_back(t->name());
    return out;
  }
  Builder b;
  std::vector<Region> regions;
};

TEST_F(PartitionTest, ChainBecomesOneRegionAndMatmulStaysOut) {
  auto x = input("x", {4, 4}), y = input("y", {4, 4}), w = input("w", {4, 4});
  Value t0 = b.call(prims::mul(), {x, y});
  Value t1 = b.call(prims::exp(), {t0});
  Value t2 = b.call(prims::matmul(), {t1, w});
  Trace out = run(finish({x, y, w}, t2));
  EXPECT_EQ(names(out), (std::vector<std::string>{"fusion0", "prims.matmul"}));
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(names(regions[0].inputs), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(names(regions[0].outputs), (std::vector<std::string>{t1.as_tensor()->name()}));
}

TEST_F(PartitionTest, RegionThatWouldFormACycleIsSplit) {
  auto x = input("x", {4, 4}), w = input("w", {4, 4});
  Value t0 = b.call(prims::exp(), {x});
  Value t1 = b.call(prims::matmul(), {t0, w});
  Value t2 = b.call(prims::add(), {t0, t1});
  Trace out = run(finish({x, w}, t2));
  EXPECT_EQ(names(out), (std::vector<std::string>{"fusion0", "prims.matmul", "fusion1"}));
  ASSERT_EQ(regions.size(), 2u);
  // t0 is read by the matmul and by the second region: an output of the first.
  EXPECT_EQ(names(regions[0].outputs), (std::vector<std::string>{t0.as_tensor()->name()}));
}

TEST_F(PartitionTest, IndependentProducerIsHoistedBeforeTheRegion) {
  auto x = input("x", {4, 4}), w = input("w", {4, 4});
  Value t0 = b.call(prims::exp(), {x});
  Value t1 = b.call(prims::matmul(), {x, w});
  Value t2 = b.call(prims::add(), {t0, t1});
  Trace out = run(finish({x, w}, t2));
  EXPECT_EQ(names(out), (std::vector<std::string>{"prims.matmul", "fusion0"}));
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions[0].bsyms.size(), 2u);
  EXPECT_EQ(names(regions[0].inputs), (std::vector<std::string>{"x", t1.as_tensor()->name()}));
  // Only the returned value leaves the region; t0 stays inside.
  EXPECT_EQ(names(regions[0].outputs), (std::vector<std::string>{t2.as_tensor()->name()}));
}

TEST_F(PartitionTest, ChainsThatMeetBecomeOneRegion) {
  auto x = input("x", {4, 4}), y = input("y", {4, 4});
  Value t0 = b.call(prims::exp(), {x});
  Value t1 = b.call(prims::sin(), {y});
  Value t2 = b.call(prims::add(), {t0, t1});
  Trace out = run(finish({x, y}, t2));
  EXPECT_EQ(names(out), (std::vector<std::string>{"fusion0"}));
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions[0].bsyms.size(), 3u);
  EXPECT_EQ(names(regions[0].outputs), (std::vector<std::string>{t2.as_tensor()->name()}));
}

TEST_F(PartitionTest, ChainsJoinedThroughAnOutsideSymbolStaySeparate) {
  // exp(x) feeds a matmul whose result a second chain reads; adding both chains' results must not
  // put exp(x) and the second chain in one region (the matmul would sit inside a cycle).
  auto x = input("x", {4, 4}), w = input("w", {4, 4});
  Value t0 = b.call(prims::exp(), {x});
  Value t1 = b.call(prims::matmul(), {t0, w});
  Value t2 = b.call(prims::sin(), {t1});
  Value t3 = b.call(prims::add(), {t0, t2});
  Trace out = run(finish({x, w}, t3));
  EXPECT_EQ(names(out), (std::vector<std::string>{"fusion0", "prims.matmul", "fusion1"}));
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[0].bsyms.size(), 1u);
  EXPECT_EQ(regions[1].bsyms.size(), 2u);
}

TEST_F(PartitionTest, SiblingsReadingOneInputShareARegion) {
  auto x = input("x", {4, 4}), w = input("w", {4, 4});
  Value t0 = b.call(prims::exp(), {x});
  Value t1 = b.call(prims::matmul(), {t0, w});
  Value t2 = b.call(prims::sin(), {x});  // no fusible producer: joins exp(x)'s region (both read x)
  Trace out = run(finish({x, w}, Value::tuple({t1, t2})));
  EXPECT_EQ(names(out), (std::vector<std::string>{"fusion0", "prims.matmul"}));
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions[0].bsyms.size(), 2u);
}

TEST_F(PartitionTest, SiblingFedThroughTheRegionStaysOut) {
  // tanh reads x like exp(x)'s region, but also the matmul of that region's output: joining would
  // put the matmul inside a cycle.
  auto x = input("x", {4, 4}), w = input("w", {4, 4});
  Value t0 = b.call(prims::exp(), {x});
  Value t1 = b.call(prims::matmul(), {t0, w});
  Value t2 = b.call(prims::atan2(), {x, t1});
  Trace out = run(finish({x, w}, t2));
  EXPECT_EQ(names(out), (std::vector<std::string>{"fusion0", "prims.matmul", "fusion1"}));
}

TEST_F(PartitionTest, MergeThatWouldCycleThroughAThirdGroupIsRefused) {
  // sin(b)'s group feeds a matmul whose result reaches the group of exp(a) and cos(a) (t9, t10),
  // which feeds a second matmul read by the last group; that last group also reads b like sin(b).
  // Merging sin(b) into the last group would make a cycle through the middle group.
  auto a = input("a", {4, 4}), bb = input("b", {4, 4}), w = input("w", {4, 4});
  Value t1 = b.call(prims::exp(), {a});
  Value t3 = b.call(prims::sin(), {bb});
  Value t7 = b.call(prims::matmul(), {t3, w});
  Value t8 = b.call(prims::add(), {t3, t7});
  Value t9 = b.call(prims::add(), {t8, t1});
  Value t10 = b.call(prims::cos(), {a});
  Value t14 = b.call(prims::matmul(), {t10, w});
  Value t15 = b.call(prims::add(), {t10, t14});
  Value t16 = b.call(prims::add(), {t15, bb});
  Trace out = run(finish({a, bb, w}, Value::tuple({t9, t16})));
  EXPECT_EQ(names(out), (std::vector<std::string>{"fusion0", "prims.matmul", "fusion1",
                                                  "prims.matmul", "fusion2"}));
}

TEST_F(PartitionTest, GradModeSwitchIsABarrier) {
  auto x = input("x", {4});
  Value t0 = b.call(prims::exp(), {x});
  b.call(prims::set_grad_enabled(), {Value(false)});
  Value t1 = b.call(prims::exp(), {t0});
  Trace out = run(finish({x}, t1));
  EXPECT_EQ(names(out), (std::vector<std::string>{"fusion0", "prims.set_grad_enabled", "fusion1"}));
}

TEST_F(PartitionTest, ACopyIsOrderedOnlyWithTheReadersOfItsDestination) {
  // A write-back into buffer m between two steps of one chain: the chain stays one region (the
  // copy does not split it), the copy comes after the region that computes what it writes and after
  // the old contents' reader, and a later reader of m comes after the copy.
  auto x = input("x", {4}), m = input("m", {4});
  Value t0 = b.call(prims::mul(), {x, m});  // reads m's old contents
  Value t1 = b.call(prims::add(), {t0, x});
  b.call(prims::copy_(), {t1, Value(m)});      // m = t1
  Value t2 = b.call(prims::exp(), {t0});       // the chain goes on past the copy
  Value t3 = b.call(prims::matmul(), {m, m});  // reads m's new contents
  Trace out = run(finish({x, m}, Value::tuple({t2, t3})));
  EXPECT_EQ(names(out), (std::vector<std::string>{"fusion0", "prims.copy_", "prims.matmul"}));
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions[0].bsyms.size(), 3u);
}

TEST_F(PartitionTest, ACopyAfterAReaderOfItsDestinationStaysAfterIt) {
  // exp(m) reads m's old contents and has no data path to the copy, and its region ends after the
  // copy (add): the copy still waits for the region, which is emitted before it.
  auto x = input("x", {4}), m = input("m", {4});
  Value t0 = b.call(prims::exp(), {m});
  b.call(prims::copy_(), {Value(x), Value(m)});
  Value t1 = b.call(prims::add(), {t0, x});
  Trace out = run(finish({x, m}, t1));
  EXPECT_EQ(names(out), (std::vector<std::string>{"fusion0", "prims.copy_"}));
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions[0].bsyms.size(), 2u);
}

TEST_F(PartitionTest, NothingFusibleLeavesTheTraceAlone) {
  auto x = input("x", {4, 4}), w = input("w", {4, 4});
  Value t0 = b.call(prims::matmul(), {x, w});
  Value t1 = b.call(prims::matmul(), {t0, w});
  Trace out = run(finish({x, w}, t1));
  EXPECT_EQ(names(out), (std::vector<std::string>{"prims.matmul", "prims.matmul"}));
  EXPECT_TRUE(regions.empty());
}

// A table rounded to bf16, back to f32 and broadcast over x, read by two regions a matmul apart:
// t2 = (exp(x * table) @ w) * table.
struct TableProgram {
  Value c1, t0, t1, t2;
};

TableProgram table_program(Builder& b, const TensorRef& x, const TensorRef& w,
                           const TensorRef& cos) {
  TableProgram p;
  Value c0 = b.call(prims::convert_element_type(), {cos, Value(DType::kBFloat16)});
  p.c1 = b.call(prims::convert_element_type(), {c0, Value(DType::kFloat32)});
  Value cb = b.call(prims::broadcast_in_dim(),
                    {p.c1, Value::shape(x->shape()), Value::ints(std::vector<int64_t>{1, 2})});
  p.t0 = b.call(prims::exp(), {b.call(prims::mul(), {x, cb})});
  p.t1 = b.call(prims::matmul(), {p.t0, w});
  p.t2 = b.call(prims::mul(), {p.t1, cb});
  return p;
}

TEST_F(PartitionTest, SmallConvertedTableIsRecomputedByTheRegionReadingIt) {
  // The second region recomputes the table from `cos`, so the first need not write it.
  auto x = input("x", {64, 8, 4}), w = input("w", {4, 4}), cos = input("cos", {8, 4});
  TableProgram p = table_program(b, x, w, cos);
  Trace out = run(finish({x, w, cos}, p.t2), /*broadcasts_fusible=*/true);
  EXPECT_EQ(names(out), (std::vector<std::string>{"fusion0", "prims.matmul", "fusion1"}));
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(names(regions[0].outputs), (std::vector<std::string>{p.t0.as_tensor()->name()}));
  EXPECT_EQ(names(regions[1].inputs), (std::vector<std::string>{"cos", p.t1.as_tensor()->name()}));
  EXPECT_EQ(regions[1].bsyms.size(), 4u);  // the two conversions, the broadcast, the product
}

TEST_F(PartitionTest, ConvertedValueReturnedIsReadAsItIs) {
  // The table back in f32 is also returned, so its region writes it: the second region reads it
  // and recomputes only the broadcast.
  auto x = input("x", {64, 8, 4}), w = input("w", {4, 4}), cos = input("cos", {8, 4});
  TableProgram p = table_program(b, x, w, cos);
  run(finish({x, w, cos}, Value::tuple({p.t2, p.c1})), /*broadcasts_fusible=*/true);
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(names(regions[0].outputs),
            (std::vector<std::string>{p.c1.as_tensor()->name(), p.t0.as_tensor()->name()}));
  EXPECT_EQ(names(regions[1].inputs),
            (std::vector<std::string>{p.c1.as_tensor()->name(), p.t1.as_tensor()->name()}));
  EXPECT_EQ(regions[1].bsyms.size(), 2u);  // the broadcast and the product
}

}  // namespace
}  // namespace thunder
