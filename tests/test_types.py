"""Every module of the package type-checks with mypy (configuration: [tool.mypy] in pyproject.toml).

mypy must see the package as it is installed, where `dfdsl.dialects` is the folder dialects/, `dfdsl.sim` is
sim/, and so on ([tool.setuptools.package-dir]). The editable install maps those names with an import hook
that mypy cannot see, so the test lays out that tree as symlinks in a temporary folder and runs
`mypy -p dfdsl` there; mypy then reports the symlinked paths, which the test maps back to the repository's.
mypy runs once for all the tests here. Its cache is build/mypy_cache, so a second local run takes under a
second (CI's runs are always cold).
"""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGE_DIR: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
MODULES = sorted({
    str(path.relative_to(ROOT)) for folder in PACKAGE_DIR.values() for path in (ROOT / folder).rglob("*.py")
})

# Temporary: the modules known to type-check while other branches rewrite the rest (the df operator
# classes and the passes, stage contracts, the CLI and its drivers, the split of elaborate.py and
# timing.py). The others are expected to fail until those branches merge and their errors are fixed;
# then this list and the xfail below go, and every module must pass.
CHECKED_NOW = {
    "dfdsl/__init__.py", "dfdsl/ast.py", "dfdsl/diagnostics.py", "dfdsl/hf_import.py", "dfdsl/loader.py",
    "dfdsl/parser.py", "dfdsl/report.py", "dfdsl/stdlib/__init__.py", "dfdsl/universe.py",
    "dialects/__init__.py", "dialects/shapes.py", "grammar/__init__.py",
    "sim/__init__.py", "sim/gpu_interpreter.py", "sim/interpreter.py", "sim/trace.py",
    "dfdsl/sweep.py", "dfdsl/sweep_view.py", "dfdsl/sensitivity.py", "dfdsl/cli/sweep.py",
    "dfdsl/cli/sensitivity.py", "sim/vectorized.py",
}


def lay_out_package(dest: Path) -> None:
    """Symlink the installed layout under dest: dest/dfdsl/ast.py -> dfdsl/ast.py, dest/dfdsl/sim -> sim/, ..."""
    for name, folder in sorted(PACKAGE_DIR.items()):  # a package before its subpackages
        source, target = ROOT / folder, dest.joinpath(*name.split("."))
        if target.exists():  # inside a folder linked whole already (dfdsl.sim.targets is sim/targets)
            assert target.resolve() == source.resolve(), f"{name} is {folder}, but its parent links {target.resolve()}"
            continue
        mapped_elsewhere = any(
            other.startswith(name + ".") and not (ROOT / other_folder).resolve().is_relative_to(source.resolve())
            for other, other_folder in PACKAGE_DIR.items()
        )
        if mapped_elsewhere:  # a real folder, so the subpackages from other folders can be linked into it
            target.mkdir(parents=True)
            for entry in source.iterdir():
                (target / entry.name).symlink_to(entry)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source, target_is_directory=True)


@pytest.fixture(scope="module")
def errors_by_module(tmp_path_factory) -> dict[str, list[str]]:
    """mypy's report on the package, its lines grouped by module (repository path)."""
    tree = tmp_path_factory.mktemp("installed")
    lay_out_package(tree)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(ROOT / "build" / "mypy_cache"), "--no-error-summary", "--no-pretty", "-p", "dfdsl"],
        cwd=tree, capture_output=True, text=True,
    )
    if "No module named mypy" in proc.stderr:
        pytest.fail("mypy is not installed; install the dev extra: pip install -e '.[dev]'")
    # 0: no errors, 1: errors in the code; anything else (a crash, a bad option) must not pass as "no errors".
    assert proc.returncode in (0, 1) and not proc.stderr, proc.stdout + proc.stderr
    by_module: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        path, _, rest = line.partition(":")
        real = (tree / path).resolve()
        module = str(real.relative_to(ROOT.resolve())) if real.is_relative_to(ROOT.resolve()) else None
        assert module in MODULES, f"mypy reported outside the package's modules: {line}"
        by_module.setdefault(module, []).append(module + ":" + rest)
    return by_module


@pytest.mark.parametrize("module", [
    pytest.param(module, marks=() if module in CHECKED_NOW else pytest.mark.xfail(
        strict=False, reason="temporary: rewritten on another branch now; its type errors are fixed once that merges"))
    for module in MODULES
])
def test_module_type_checks(errors_by_module, module):
    if module in errors_by_module:
        pytest.fail("\n".join(errors_by_module[module]), pytrace=False)
