"""Benchmarks: the product's speed and memory against baselines measured in the same run.

`python -m benchmarks NAME` runs one on a fresh embedded stack (`benchmarks/runner.py` lists
them); the test suite runs each once at the `tiny` size on its own servers. Kept free of
imports: the bare workflow's module is re-imported inside the workflow sandbox.
"""
