"""Run every benchmark (``make bench``); each prints its table with same-run baselines."""

from __future__ import annotations

import os
import subprocess
import sys

MODULES = [
    "benchmarks.bench_overhead",
    "benchmarks.bench_small",
    "benchmarks.bench_large",
    "benchmarks.bench_s3",
    "benchmarks.bench_ceiling",
    "benchmarks.bench_isolated",
    "benchmarks.bench_loops",
    "benchmarks.bench_s3_large",
    "benchmarks.bench_gcs",
    "benchmarks.bench_gcs_large",
    "benchmarks.bench_azure",
    "benchmarks.bench_azure_large",
    "benchmarks.bench_arrow",
]


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print("# objstore benchmarks (ratios are medians of same-run, interleaved repetitions)")
    for module in MODULES:
        subprocess.run([sys.executable, "-m", module], cwd=root, check=True)


if __name__ == "__main__":
    main()
