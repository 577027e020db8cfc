"""The primitives, by name: `thunder.prims.add` is the symbol printed as `prims.add` in traces."""

from thunder import _core


def __getattr__(name):
    sym = _core.find_symbol("prims", name)
    if sym is None:
        raise AttributeError(f"thunder.prims has no primitive '{name}'")
    return sym


def __dir__():
    return sorted(s.name for s in _core.symbols() if s.module == "prims")
