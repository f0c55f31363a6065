"""Runs the FileCheck IR tests under tests/filecheck/ with lit, so one pytest command runs all."""

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent / "filecheck"


def test_lit_filecheck_suite():
    lit = shutil.which("lit", path=str(Path(sys.executable).parent)) or shutil.which("lit")
    assert lit, "lit is not installed; install the dev extra: pip install -e '.[dev]'"
    env_path = f"{Path(sys.executable).parent}:{__import__('os').environ['PATH']}"
    # Without recording test times: lit rewrites tests/filecheck/.lit_test_times.txt at the end of
    # a run and aborts on a half-written one, and the tutorial test runs lit here too, maybe at once.
    proc = subprocess.run(
        [lit, "-v", "--skip-test-time-recording", str(HERE)], capture_output=True, text=True, env={"PATH": env_path}
    )
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    assert "Passed" in proc.stdout
