"""`dfdsl init`: a working folder for your own models, with what the tutorial's steps need.

It writes, into the folder given (the current one by default): `mymodels/` for `.dfl` files,
`hf/` with the Hugging Face configs dfdsl ships (for `dfdsl import-hf`), and `filecheck/` with a
`lit.cfg.py`, so `lit filecheck` runs the FileCheck tests you put there. A file that exists is
left as it is, so running it twice changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from dfdsl.cli.output import UsageError, write_output

LIT_CONFIG = '''"""lit configuration for FileCheck tests of dfdsl passes: each .mlir file here is a test whose
`// RUN:` lines run `dfdsl opt` (or `xdsl-opt`) and pipe the result into `filecheck`."""

import os

import lit.formats

config.name = "my dfdsl tests"  # noqa: F821
config.test_format = lit.formats.ShTest(preamble_commands=[])  # noqa: F821
config.suffixes = [".mlir"]  # noqa: F821
config.test_source_root = os.path.dirname(__file__)  # noqa: F821
config.excludes = ["lit.cfg.py"]  # noqa: F821
config.environment["PATH"] = os.environ["PATH"]  # noqa: F821
'''
"""What `lit` reads from `filecheck/`: run the tests with the PATH of the shell that runs lit,
where `dfdsl` and `filecheck` are."""


def add_parser(sub) -> None:
    p = sub.add_parser("init", help="make a folder to work in: models, Hugging Face configs, FileCheck tests",
                       description="Write mymodels/ (for your .dfl files), hf/ (the Hugging Face config.json "
                                   "files dfdsl ships, for import-hf) and filecheck/lit.cfg.py (so `lit filecheck` "
                                   "runs your FileCheck tests) into FOLDER. Existing files are left alone.")
    p.add_argument("folder", metavar="FOLDER", nargs="?", default=".", help="where to write (default: here)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    root = Path(args.folder)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file, not a folder")
    files: dict[Path, str] = {Path("filecheck") / "lit.cfg.py": LIT_CONFIG}
    bundled = resources.files("dfdsl.hf_configs")
    for entry in sorted(bundled.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".json", ".md")):
            files[Path("hf") / entry.name] = entry.read_text(encoding="utf-8")
    written = []
    for folder in (Path("mymodels"), Path("hf"), Path("filecheck")):
        if not (root / folder).is_dir():
            (root / folder).mkdir(parents=True)
            written.append(f"{folder}/")
    for name, text in files.items():
        if not (root / name).exists():
            write_output(root / name, text)
            written.append(str(name))
    configs = [w for w in written if w.startswith("hf") and w.endswith(".json")]
    shown = [w for w in written if w not in configs and w != "hf/README.md"]
    if configs:
        shown.append(f"{len(configs)} Hugging Face configs in hf/")
    where = "" if args.folder == "." else f" in {root}"
    sys.stdout.write(f"wrote {', '.join(shown)}{where}\n" if shown else f"nothing to write: it is all here{where}\n")
    return 0
