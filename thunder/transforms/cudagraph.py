"""`thunder.jit(fn, transforms=[CUDAGraphTransform()])`: the programs replayed as CUDA graphs, the same as
the `cuda_graphs=True` compile option (thunder/core/cudagraphs.py)."""

from __future__ import annotations

from typing import ClassVar

__all__ = ["CUDAGraphTransform"]


class CUDAGraphTransform:
    """Replays each program of a cache entry as a CUDA graph after its first run. The programs' forward
    and backward share one memory pool per cache entry; `share_mem_pool` is accepted for compatibility
    and has no further effect."""

    def __init__(self, share_mem_pool: bool = False):
        self.share_mem_pool = bool(share_mem_pool)

    def __repr__(self):
        return f"CUDAGraphTransform(share_mem_pool={self.share_mem_pool})"

    # The compile options this transform sets (read by thunder.jit).
    compile_options: ClassVar[dict] = {"cuda_graphs": True}
