"""Transforms passed as `thunder.jit(fn, transforms=[...])`. thunder's program transforms are passes of
its C++ core; the objects here select them."""

from thunder.transforms.cudagraph import CUDAGraphTransform

__all__ = ["CUDAGraphTransform"]
