"""Write one benchmark's figures into its own section of docs/BENCHMARKS.md.

Each benchmark owns the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`;
running it replaces only that section, so benchmarks never clobber each other.
"""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

from dccn_common import PROJECT_ROOT

BENCHMARKS_MD = PROJECT_ROOT / "docs" / "BENCHMARKS.md"
HEADER = """# Benchmarks

Every figure here is written by a script under `bench/` (`make bench` runs them all;
each section names its own command). Gas figures come from receipts on anvil; each
sits next to the anchor figure its issue names. Throughput is given with the
physical limit measured in the same run, and as a ratio to it.
"""


def machine_line() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, title: str, body: str, command: str, path: Path = BENCHMARKS_MD) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"Command: `{command}` — measured {stamp} on {machine_line()}.\n\n{body.strip()}\n<!-- /bench:{name} -->"
    )
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def table(headers: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        return f"{value:,}" if isinstance(value, int) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(value: float, goal: float, *, lower_is_better: bool = True) -> str:
    ok = value <= goal if lower_is_better else value >= goal
    return "meets goal" if ok else "MISSES goal"
