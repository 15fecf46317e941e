"""The enclave's code measurement: what the oracle's enclave registry records next to its key.

Rule (version 1), over the folder of the `nos_enclave` package:

1. Walk the folder recursively and take every file in it, of any name or suffix, skipping
   every directory named `__pycache__` (bytecode the interpreter writes while it runs; it is
   derived from the sources, which are measured).
2. Name each file by its path relative to the package folder, `/`-separated, UTF-8.
3. Sort the files by that name (code point order, which is also UTF-8 byte order).
4. measurement = sha256 over, for each file in that order:
       name || 0x00 || len(content) as 8 bytes big-endian || content

The length prefix keeps the encoding unambiguous: no two different trees hash the same
bytes. The package imports nothing else from the project (tests/nos_enclave checks it), so
this hash covers all of the project's code the enclave runs; third-party libraries are
pinned by requirements.lock, and a TEE attestation would cover the interpreter as well.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
SKIPPED_DIRS = frozenset({"__pycache__"})


def package_files(root: Path = PACKAGE_ROOT) -> list[tuple[str, Path]]:
    """(relative name, path) of every measured file under `root`, in measurement order."""
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [name for name in dirs if name not in SKIPPED_DIRS]  # prune: never descended into
        for name in files:
            path = Path(folder) / name
            found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def measurement(root: Path = PACKAGE_ROOT) -> bytes:
    """sha256 of every file of the package (the rule in this module's docstring)."""
    digest = hashlib.sha256()
    for name, path in package_files(root):
        content = path.read_bytes()
        digest.update(name.encode() + b"\0" + len(content).to_bytes(8, "big") + content)
    return digest.digest()
