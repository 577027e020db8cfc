"""Executors: the objects that claim parts of a program and run them.

An executor declares which symbols it implements; when a program is compiled, each operation goes to
the first executor in the list that can run it (see csrc/executors/executor.h). `torch` and `python`
are always available and always appended to the list a user gives.
"""

from __future__ import annotations

from thunder import _core

__all__ = [
    "Executor",
    "OperatorExecutor",
    "register_executor",
    "deregister_executor",
    "get_executor",
    "get_all_executors",
    "get_default_executors",
    "get_always_executors",
    "set_default_executors",
    "add_default_executor",
    "remove_default_executor",
    "set_always_executors",
    "add_always_executor",
    "remove_always_executor",
    "resolve_executors",
]


class Executor:
    """An executor: a name and a table from symbols to implementations (held in C++)."""

    def __init__(self, name: str, version=None):
        if not isinstance(name, str) or not name:
            raise ValueError("an executor needs a non-empty string name")
        self.name = name
        self.version = version
        self._core = _core.Executor(name)

    def can_execute(self, symbol) -> bool:
        return self._core.implements(symbol)

    def __repr__(self):
        return f"thunder.extend.{type(self).__name__}('{self.name}')"


class OperatorExecutor(Executor):
    """An executor that runs individual operations with Python callables."""


_registry: dict[str, Executor] = {}
_default: list[Executor] = []
_always: list[Executor] = []


def register_executor(ex: Executor) -> Executor:
    if not isinstance(ex, Executor):
        raise TypeError(f"expected a thunder.extend.Executor, got {type(ex).__name__}")
    if ex.name in _registry and _registry[ex.name] is not ex:
        raise ValueError(f"an executor named '{ex.name}' is already registered")
    _registry[ex.name] = ex
    return ex


def deregister_executor(ex) -> None:
    name = ex if isinstance(ex, str) else ex.name
    _registry.pop(name, None)
    _default[:] = [e for e in _default if e.name != name]
    _always[:] = [e for e in _always if e.name != name]


def get_executor(name: str) -> Executor:
    ex = _registry.get(name)
    if ex is None:
        available = ", ".join(sorted(_registry)) or "none"
        raise ValueError(f"unknown executor '{name}'; available executors: {available}")
    return ex


def get_all_executors() -> tuple[Executor, ...]:
    return tuple(_registry.values())


def get_default_executors() -> tuple[Executor, ...]:
    return tuple(_default)


def get_always_executors() -> tuple[Executor, ...]:
    return tuple(_always)


def set_default_executors(executors) -> None:
    _default[:] = [_resolve_one(e) for e in executors]


def add_default_executor(ex) -> None:
    ex = _resolve_one(ex)
    _default[:] = [ex] + [e for e in _default if e is not ex]


def remove_default_executor(ex) -> None:
    name = ex if isinstance(ex, str) else ex.name
    _default[:] = [e for e in _default if e.name != name]


def set_always_executors(executors) -> None:
    _always[:] = [_resolve_one(e) for e in executors]


def add_always_executor(ex) -> None:
    ex = _resolve_one(ex)
    if ex not in _always:
        _always.append(ex)


def remove_always_executor(ex) -> None:
    name = ex if isinstance(ex, str) else ex.name
    _always[:] = [e for e in _always if e.name != name]


def _resolve_one(ex) -> Executor:
    if isinstance(ex, Executor):
        return ex
    if isinstance(ex, str):
        return get_executor(ex)
    raise TypeError(f"expected an executor or an executor name, got {type(ex).__name__}")


def resolve_executors(executors) -> list[Executor]:
    """The executors to compile with: the given ones (default: the default executors), in order, then
    the always-executors not already listed."""
    if executors is None:
        chosen = list(_default)
    else:
        if isinstance(executors, (str, Executor)):
            executors = [executors]
        chosen = [_resolve_one(e) for e in executors]
    for ex in _always:
        if ex not in chosen:
            chosen.append(ex)
    return chosen
