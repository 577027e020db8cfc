"""layer_norm and rms_norm training steps (thunder.jit, forward and backward) captured in one CUDA graph
and replayed: wall time per step with the gaps between kernels, and whether the replayed gradients
equal those of the launches outside the graph bit for bit. Run on a GPU machine:

    python3 scripts/gpu_norm_graph_replay.py
"""
import torch
import torch.nn.functional as F

import thunder


def layer_norm(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b)


def rms_norm(x, w):
    return F.rms_norm(x, (x.shape[-1],), w)


def step_time(jf, x, params, g):
    leaves = [x] + params
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the graph: kernels built, caches filled
        for _ in range(3):
            for t in leaves:
                t.grad = None
            jf(x, *params).backward(g)
    torch.cuda.current_stream().wait_stream(side)
    ref = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        jf(x, *params).backward(g)
    graph.replay()
    torch.cuda.synchronize()
    same = all(torch.equal(a, t.grad) for a, t in zip(ref, leaves))
    best = float("inf")
    for _ in range(5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(100):
            graph.replay()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) * 10)  # ms for 100 -> us for one
    return best, same


def main():
    torch.manual_seed(0)
    for n, d in ((2048, 4096), (2048, 8192), (8192, 768)):
        for dt in (torch.bfloat16, torch.float32):
            for name, fn, nparams in (("layer_norm", layer_norm, 2), ("rms_norm", rms_norm, 1)):
                x = torch.randn(n, d, device="cuda", dtype=dt, requires_grad=True)
                params = [torch.randn(d, device="cuda", dtype=dt, requires_grad=True) for _ in range(nparams)]
                g = torch.randn(n, d, device="cuda", dtype=dt)
                us, same = step_time(thunder.jit(fn), x, params, g)
                print(f"{name} {n}x{d} {str(dt)[6:]}: {us:.1f} us a step (graph replay), "
                      f"replayed gradients == launched: {same}", flush=True)


if __name__ == "__main__":
    main()
