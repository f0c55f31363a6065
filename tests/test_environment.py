"""What lies outside dfdsl and its input: where outputs go (symbolic links, devices, named pipes,
read-only files, a full disk) and the machine a command runs on (a Dask scheduler, memory, the
local cores). A failure of the environment is its own coded error (E028-E031) with exit status
2 and what to do, never "a bug in dfdsl"; a mistake on the command line is E027."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fuzz.mutations import run_cli
from test_input_files import TINY


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.dfl"
    path.write_text(TINY, encoding="utf-8")
    return path


# -- -o and what it names ----------------------------------------------------------------------


def test_output_through_a_symlink_replaces_its_target_and_keeps_the_link(tiny, tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o640)
    link = tmp_path / "link.txt"
    link.symlink_to("real.txt")
    outcome = run_cli(["lower", str(tiny), "--emit", "df", "-o", str(link)], seconds=60)
    assert outcome.code == 0, outcome.stderr
    assert link.is_symlink() and os.readlink(link) == "real.txt"
    assert target.read_text(encoding="utf-8").startswith("builtin.module {")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the replaced file keeps its permissions
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "real.txt", "tiny.dfl"]


def test_output_through_a_dangling_symlink_creates_its_target(tiny, tmp_path):
    link = tmp_path / "link.txt"
    link.symlink_to("made.txt")
    assert run_cli(["lower", str(tiny), "--emit", "df", "-o", str(link)], seconds=60).code == 0
    assert link.is_symlink() and (tmp_path / "made.txt").read_text(encoding="utf-8").startswith("builtin.module")


def test_output_to_a_device_is_written_not_replaced(tiny):
    """/dev/zero takes writes and throws them away (/dev/null would do, but a replaced /dev/null
    breaks every program on the machine: that is the bug this prevents)."""
    assert stat.S_ISCHR(os.stat("/dev/zero").st_mode)
    assert run_cli(["lower", str(tiny), "--emit", "df", "-o", "/dev/zero"], seconds=60).code == 0
    assert stat.S_ISCHR(os.stat("/dev/zero").st_mode)


def test_output_to_a_named_pipe_reaches_its_reader(tiny, tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    outcome = run_cli(["lower", str(tiny), "--emit", "df", "-o", str(fifo)], seconds=60)
    reader.join(10)
    assert outcome.code == 0, outcome.stderr
    assert received and received[0].startswith(b"builtin.module {")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_read_only_output_is_refused_and_kept(tiny, tmp_path):
    out = tmp_path / "out.mlir"
    out.write_text("keep me", encoding="utf-8")
    out.chmod(0o444)
    outcome = run_cli(["lower", str(tiny), "--emit", "df", "-o", str(out)], seconds=60)
    assert outcome.code == 2
    assert f"dfdsl: error: cannot write {out}: the file is read-only [E028]\nhelp: make it writable" in outcome.stderr
    assert out.read_text(encoding="utf-8") == "keep me"


def test_a_full_device_is_e028_with_what_to_do(tiny):
    outcome = run_cli(["lower", str(tiny), "--emit", "df", "-o", "/dev/full"], seconds=60)
    assert outcome.code == 2
    assert outcome.stderr == ("dfdsl: error: cannot write /dev/full: No space left on device [E028]\n"
                              "help: free some space on that disk, or write elsewhere with -o\n")


def test_the_fix_names_the_option_that_chose_the_file(tiny):
    """A trace that cannot be written says to move the trace (`--trace`), not the output (`-o`)."""
    outcome = run_cli(["run", str(tiny), "--tokens", "1", "--trace", "/dev/full"], seconds=60)
    assert outcome.code == 2
    assert outcome.stderr.endswith("help: free some space on that disk, or write elsewhere with --trace\n")


def test_standard_output_on_a_full_disk_is_e028_and_nothing_more(tiny):
    """Not an internal error, and not a second error when Python flushes at exit (status 120)."""
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "dfdsl", "lower", str(tiny), "--emit", "df"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == ("dfdsl: error: cannot write to standard output: No space left on device [E028]\n"
                           "help: free some space on that disk, or write elsewhere with -o\n")


SAME_FILE = {
    "run --trace and -o": lambda model, out: ["run", model, "--trace", out, "-o", out],
    "sweep -o and --plot": lambda model, out: ["sweep", model, "-q", "-o", out, "--plot", out],
    "compare -o and --plot": lambda model, out: ["compare", model, "--targets", "sn40l", "-o", out, "--plot", out],
}


@pytest.mark.parametrize("argv", SAME_FILE.values(), ids=SAME_FILE)
def test_two_outputs_in_one_file_are_refused_before_any_work(argv, tiny, tmp_path):
    out = tmp_path / "x.json"
    start = time.perf_counter()
    outcome = run_cli(argv(str(tiny), str(out)), seconds=60)
    assert outcome.code == 2 and "name the same file" in outcome.stderr and "[E027]" in outcome.stderr
    assert not out.exists() and time.perf_counter() - start < 5


# -- the machine a sweep runs on --------------------------------------------------------------

BAD_DISTRIBUTION = {
    "--workers -1": (["--workers", "-1"], "--workers -1: give a number of processes from 1 to 1,024"),
    "--workers 0": (["--workers", "0"], "--workers 0: give a number of processes from 1 to 1,024"),
    "--workers 100000": (["--workers", "100000"], "--workers 100000: give a number"),
    "port not a number": (["--scheduler", "tcp://127.0.0.1:notaport"],
                          "--scheduler tcp://127.0.0.1:notaport: not a scheduler address; write tcp://HOST:PORT"),
    "port out of range": (["--scheduler", "tcp://127.0.0.1:70000"], "--scheduler tcp://127.0.0.1:70000: not a"),
    "no port": (["--scheduler", "tcp://127.0.0.1"], "--scheduler tcp://127.0.0.1: not a scheduler address"),
    "unknown protocol": (["--scheduler", "http://127.0.0.1:8786"], "--scheduler http://127.0.0.1:8786: not a"),
    "timeout 0": (["--scheduler", "tcp://127.0.0.1:8786", "--scheduler-timeout", "0"],
                  "--scheduler-timeout 0: give seconds"),
    "timeout nan": (["--scheduler", "tcp://127.0.0.1:8786", "--scheduler-timeout", "nan"],
                    "--scheduler-timeout nan: give seconds"),
}


@pytest.mark.parametrize(("options", "message"), BAD_DISTRIBUTION.values(), ids=BAD_DISTRIBUTION)
def test_bad_workers_and_scheduler_addresses_are_e027_at_once(options, message, tiny):
    outcome = run_cli(["sweep", str(tiny), "-q", *options], seconds=10)
    assert outcome.code == 2 and outcome.stderr.startswith(f"dfdsl: error: {message}"), outcome.stderr
    assert outcome.stderr.rstrip().endswith("[E027]")


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "127.0.0.1:8786", "tls://sched.example.org:8786",
                                     "tcp://[::1]:8786"])
def test_the_address_forms_dask_takes_are_accepted(address):
    from dfdsl.cli.sweep import SCHEDULER_ADDRESS

    assert SCHEDULER_ADDRESS.match(address)


def test_a_scheduler_that_does_not_answer_is_e029_with_the_address_and_the_wait(tiny):
    start = time.perf_counter()
    outcome = run_cli(["sweep", str(tiny), "-q", "--scheduler", "tcp://127.0.0.1:1", "--scheduler-timeout", "1"],
                      seconds=30)
    assert outcome.code == 2, outcome.error or outcome.stderr
    assert outcome.stderr.startswith("dfdsl: error: cannot reach the Dask scheduler at tcp://127.0.0.1:1: Timed out "
                                     "trying to connect to tcp://127.0.0.1:1 after 1 s [E029]\nhelp: start it")
    assert time.perf_counter() - start < 15


def test_the_scheduler_timeout_leaves_dasks_configuration_whole(tiny):
    """The timeout is set in Dask's configuration for one sweep; a second sweep in the same fresh
    process (a notebook, a test run) must still find Dask's defaults."""
    script = ("import sys\nfrom dfdsl.cli import main\n"
              f"argv = ['sweep', {str(tiny)!r}, '-q', '--scheduler', 'tcp://127.0.0.1:1', '--scheduler-timeout', '1']\n"
              "sys.exit(10 * main(argv) + main(argv))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 22 and done.stderr.count("[E029]") == 2, done.stderr


def test_a_sweep_is_held_to_the_limits_of_run(tiny):
    start = time.perf_counter()
    outcome = run_cli(["sweep", str(tiny), "-q", "--tokens", "4,3000000"], seconds=10)
    assert outcome.code == 2
    assert "`tokens` is 3000000 on the command line; it must be from 0 to 1,048,576 [E019]" in outcome.stderr
    assert time.perf_counter() - start < 5


# -- memory ------------------------------------------------------------------------------------


def test_running_out_of_memory_is_e031_not_a_bug(tiny, monkeypatch):
    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("dfdsl.cli.run.run_model", exhausted)
    outcome = run_cli(["run", str(tiny)])
    assert outcome.code == 2
    assert outcome.stderr.startswith("dfdsl: error: ran out of memory")
    assert "[E031]\nhelp: the input is likely far larger than a model needs" in outcome.stderr


def test_running_out_of_memory_in_one_compare_row_stops_the_command(tiny, monkeypatch):
    """`compare` keeps going after a bug in one row; memory running out is not such a bug."""
    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("dfdsl.compare.Compiler.simulate", exhausted)
    outcome = run_cli(["compare", str(tiny), "--sockets", "2"])
    assert outcome.code == 2 and "[E031]" in outcome.stderr and "bug" not in outcome.stderr
