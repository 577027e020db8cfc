"""Errors thunder raises for programs it cannot trace."""

from thunder import _core


class DataDependentError(RuntimeError):
    """The program's control flow or shapes depend on tensor values, which tracing does not know."""


# Bad values the core reports (shapes that do not broadcast, reshape sizes): a ValueError and a
# RuntimeError, the type eager raises for them.
ThunderValueError = _core.ThunderValueError
