"""A plain (non-editable) build ships the folders under the `dfdsl` namespace, with their data."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def test_the_wheel_maps_the_folders_under_dfdsl(tmp_path):
    pytest.importorskip("setuptools")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("dfdsl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("dfdsl/cli.py", "dfdsl/dialects/df.py", "dfdsl/lowering/kernel_looping.py",
                     "dfdsl/sim/timing.py", "dfdsl/grammar/dfl.lark", "dfdsl/stdlib/llama.dfl",
                     "dfdsl/sim/targets/sn40l.toml"):
        assert expected in names
    top_level = {name.split("/")[0] for name in names}
    assert not top_level & {"dialects", "lowering", "sim", "grammar", "tests", "examples"}
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "dfdsl = dfdsl.cli:main" in text and "[xdsl.universe]" in text
