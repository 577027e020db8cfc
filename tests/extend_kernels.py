"""A module of kernels for tests/test_extend.py's operators registered with module= (the printed
trace imports this module and calls the kernels from it)."""

from __future__ import annotations


def scaled_add(a, b, alpha=1.0):
    return a + alpha * b


class Kernels:
    @staticmethod
    def twice(a):
        return a * 2


def plus(a, b):
    return a + b
