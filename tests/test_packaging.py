"""A plain (non-editable) build ships the folders under the `dfdsl` namespace with their data, and
works installed: `dfdsl run`, `dfdsl validate` and the tutorial's `dfdsl init` from an unrelated
folder, with no checkout."""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools")
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (built,) = out.glob("dfdsl-*.whl")
    return built


def test_the_wheel_maps_the_folders_under_dfdsl(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("dfdsl/cli/__init__.py", "dfdsl/dialects/df.py", "dfdsl/lowering/kernel_looping.py",
                     "dfdsl/sim/timing.py", "dfdsl/grammar/dfl.lark", "dfdsl/stdlib/llama.dfl",
                     "dfdsl/hardware/sn40l.toml", "dfdsl/examples/llama3_1_8b.dfl",
                     "dfdsl/hf_configs/Mistral-7B-v0.3.json"):
        assert expected in names
    top_level = {name.split("/")[0] for name in names}
    assert not top_level & {"dialects", "lowering", "sim", "grammar", "tests", "examples"}
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "dfdsl = dfdsl.cli:main" in text and "[xdsl.universe]" in text


def test_the_installed_wheel_runs_and_validates_from_an_unrelated_folder(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                           str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The dependencies come from this environment's site-packages, added as a plain path: its .pth
    # files (the editable install of the checkout among them) are not run, so only the wheel's dfdsl exists.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    where = subprocess.run([str(python), "-c", "import dfdsl; print(dfdsl.__file__)"], cwd=folder, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site))
    example = site / "dfdsl" / "examples" / "mistral_7b.dfl"
    dfdsl = str(env_dir / "bin" / "dfdsl")
    run = subprocess.run([dfdsl, "run", str(example), "--tokens", "4"], cwd=folder, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "mistral_7b on 8 sockets of sn40l" in run.stdout and "ms per token" in run.stdout
    # docs/tutorial.md starts from an empty folder: `dfdsl init` writes what its steps need.
    init = subprocess.run([dfdsl, "init"], cwd=folder, env=env, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    assert (folder / "hf" / "Mistral-7B-v0.3.json").is_file() and (folder / "filecheck" / "lit.cfg.py").is_file()
    imported = subprocess.run([dfdsl, "import-hf", "hf/Mistral-7B-v0.3.json"], cwd=folder, env=env,
                              capture_output=True, text=True)
    assert imported.returncode == 0 and "model mistral_7b_v0_3 : llama" in imported.stdout, imported.stderr
    validate = subprocess.run([dfdsl, "validate"], cwd=folder, env=env, capture_output=True, text=True)
    assert "E002" not in validate.stderr and "internal error" not in validate.stderr, validate.stderr
    assert validate.returncode == 0, validate.stdout  # every published claim within its tolerance
    assert "Published SN40L results against the simulator" in validate.stdout
    assert "skipped" not in validate.stdout.split("Dense examples")[0]
