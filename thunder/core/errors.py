"""Errors thunder raises for programs it cannot trace."""


class DataDependentError(RuntimeError):
    """The program's control flow or shapes depend on tensor values, which tracing does not know."""
