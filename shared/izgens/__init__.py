"""izgens: the shared library of the izgens backend functions."""
