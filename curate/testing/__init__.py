"""Helpers for tests, benchmarks and docs (generated data): nothing else in curate imports this package."""
