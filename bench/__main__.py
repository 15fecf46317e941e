"""`make bench`: run every benchmark under bench/ (each writes its section of docs/BENCHMARKS.md)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    selected = [n for n in names if not sys.argv[1:] or any(arg in n for arg in sys.argv[1:])]
    for name in selected:
        started = time.monotonic()
        print(f"==> {name}", flush=True)
        importlib.import_module(f"bench.{name}").main()
        print(f"    done in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
