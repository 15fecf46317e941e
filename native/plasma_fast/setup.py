"""Build of plasma_fast, the operator's compiled hot path (see plasma_fast.c).

`pip install --no-build-isolation ./native/plasma_fast` (tools/bootstrap.sh does it); the
operator falls back to the pure-Python path in plasma_core.wire when it is absent.
"""

from setuptools import Extension, setup

setup(
    name="plasma-fast",
    version="1.0.0",
    description="Compiled decode, signing hash and signer recovery for the Plasma operator",
    ext_modules=[Extension("plasma_fast", ["plasma_fast.c"], extra_compile_args=["-O3", "-std=c11", "-pthread"], extra_link_args=["-pthread"])],
    python_requires="==3.11.*",
)
