"""Benchmarks of the hub over HTTP and of the CSV import; run `python -m bench.run_all`.

Figures go to bench/README.md and bench/out/ (gitignored); they are never asserted in tests.
"""
