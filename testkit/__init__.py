"""Helpers shared by the test suite and the load runs: the throw-away stack and what drives it."""
