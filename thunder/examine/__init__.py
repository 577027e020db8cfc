"""Coverage inspection: which torch operations a function uses, which thunder has rules for (and
which executor runs them), and which run as opaque torch calls."""

from __future__ import annotations

import copy

import torch

import thunder

__all__ = ["cuda_graphs", "examine", "opaque_ops", "operations"]


def _entry_info(jfn):
    stats = thunder.compile_stats(jfn)
    return stats._info()


def opaque_ops(jfn) -> list[str]:
    """The torch calls of the last compiled program that thunder has no rule for (run as opaque)."""
    return sorted(set(_entry_info(jfn).opaque_ops))


def cuda_graphs(jfn) -> dict | None:
    """How the last used cache entry ran its programs under `cuda_graphs=True`: per program
    ("program", or "forward" and "backward"), its captures, replays, normal runs, and why it stopped
    trying graphs ("failed"). None when the entry runs without graphs (option off, or the program
    cannot be replayed: thunder.jit warned why)."""
    graphs = _entry_info(jfn).cuda_graphs
    return None if graphs is None else graphs.stats()


def _is_fusion(b) -> bool:
    # A fused region: an executor's call without a module, whose sub-symbols are its members.
    return not b["module"] and bool(b["executor"]) and bool(b["subsymbols"]) and not b["opaque"]


def operations(jfn) -> list[tuple[str, str]]:
    """(torch-level operation, executor that runs it) for each operation of the last program. The
    members of a fused region are listed one by one, with the fusion executor's name."""
    final = _entry_info(jfn).traces[-1]
    out = []

    def add(b, executor=None):
        subs = b["subsymbols"]
        op = subs[0]["name"] if subs else b["name"]
        out.append((op, (executor or b["executor"]) + (" (opaque)" if b["opaque"] else "")))

    for b in final.bound_symbols:
        if _is_fusion(b):
            for member in b["subsymbols"]:
                add(member, b["executor"])
        else:
            add(b)
    return out


def _clone(x):
    if isinstance(x, torch.Tensor):
        return x.detach().clone().requires_grad_(x.requires_grad)
    if isinstance(x, (list, tuple)):
        return type(x)(_clone(i) for i in x) if not hasattr(x, "_fields") else type(x)(*(_clone(i) for i in x))
    if isinstance(x, dict):
        return {k: _clone(v) for k, v in x.items()}
    return x


def examine(fn, *args, show_call_stack=False, **kwargs):
    """Prints the operations `fn(*args, **kwargs)` uses, how thunder runs each, and whether the jitted
    function agrees with eager on these inputs."""
    model_copy = copy.deepcopy(fn) if isinstance(fn, torch.nn.Module) else fn
    jfn = thunder.jit(model_copy)
    try:
        out = jfn(*_clone(args), **_clone(kwargs))
    except Exception as e:  # report, do not hide: the error names the unsupported construct
        print(f"thunder could not run the function: {type(e).__name__}: {e}")
        return None
    ops = operations(jfn)
    opaque = opaque_ops(jfn)
    counts = {}
    for op, ex in ops:
        counts[(op, ex)] = counts.get((op, ex), 0) + 1
    print(f"Found {len(ops)} operations ({len(counts)} distinct):")
    for (op, ex), n in sorted(counts.items()):
        kind = "opaque: no thunder rule, runs as a torch call" if ex.endswith("(opaque)") else "supported"
        print(f"  {op:40s} x{n:<3d} executor: {ex.split(' ')[0]:10s} {kind}")
    if opaque:
        print(f"{len(opaque)} operation(s) run as opaque torch calls: {', '.join(opaque)}")
    else:
        print("Every operation has a thunder rule.")
    ref = fn(*_clone(args), **_clone(kwargs))
    try:
        torch.testing.assert_close(out, ref, equal_nan=True)
        print("The jitted function's results match eager on these inputs.")
        agree = True
    except AssertionError as e:
        print(f"The jitted function's results differ from eager: {e}")
        agree = False
    return {"operations": ops, "opaque": opaque, "matches_eager": agree}
