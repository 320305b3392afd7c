"""Keel's benchmarks: each workload run Keel's way and the original "before" way, as ratios in one run.

`python -m bench [--quick] [--json FILE] [--only NAME ...]`; see bench/README.md.
"""
