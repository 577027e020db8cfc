"""The torch-level symbols, by name: `thunder.torch.softmax` (`ltorch.softmax` in traces)."""

from thunder import _core


def __getattr__(name):
    sym = _core.find_symbol("ltorch", name)
    if sym is None:
        raise AttributeError(f"thunder.torch has no symbol '{name}'")
    return sym


def __dir__():
    return sorted(s.name for s in _core.symbols() if s.module == "ltorch")
