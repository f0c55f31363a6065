"""lit configuration for the FileCheck IR tests; run from pytest (tests/test_filecheck.py)."""

import os

import lit.formats

config.name = "dfdsl"  # noqa: F821
config.test_format = lit.formats.ShTest(preamble_commands=[])  # noqa: F821
config.suffixes = [".mlir", ".dfl"]  # noqa: F821
config.test_source_root = os.path.dirname(__file__)  # noqa: F821
config.excludes = ["lit.cfg.py", "Inputs"]  # noqa: F821
config.environment["PATH"] = os.environ["PATH"]  # noqa: F821
