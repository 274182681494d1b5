"""Benchmarks: each prints a table comparing this project with a baseline measured in the same run."""
