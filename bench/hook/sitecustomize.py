"""Loaded by Python at start-up when bench/hook is on PYTHONPATH (the benchmarks put it there
for the processes they serve or run): counts database round trips (bench/measure.py)."""

import os

if os.environ.get("RUTA_BENCH_ROUNDTRIPS"):
    import measure  # bench/, next on PYTHONPATH

    measure.install(os.environ["RUTA_BENCH_ROUNDTRIPS"])
