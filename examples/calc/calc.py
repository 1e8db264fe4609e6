"""A tiny calculator with a bug for slipway's quick start."""


def add(a, b):
    return a - b


def mul(a, b):
    return a * b
