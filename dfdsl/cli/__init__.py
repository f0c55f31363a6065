"""The `dfdsl` command line: one module per subcommand, each a short layer over the library
(`dfdsl.driver` and what it drives); this module builds the parser and turns errors into exit codes.

Exit codes: 0 success, 2 bad input (a located diagnostic) or a failure of the environment (a full
disk, an unreachable scheduler, a missing program, no memory: E028-E031, with what to do), 1 an
internal failure (a bug).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence

# Before numpy is first imported (the driver's array timing model): one OpenBLAS thread. The
# command line does no linear algebra (the array model is element-wise; sweeps use processes), and
# each OpenBLAS thread reserves a buffer, so the memory a command needs before it reads its input
# would otherwise grow with the machine's cores (E031's limit in docs/errors.md).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from xdsl.utils.exceptions import DiagnosticException, VerifyException

from dfdsl import __version__
from dfdsl.cli import calibrate, check, compare, import_hf, init, lower, opt, run, sensitivity, sweep, validate
from dfdsl.cli.output import USAGE_CODE, UsageError
from dfdsl.diagnostics import DfslError
from dfdsl.errors import EnvironmentFailure, OutOfMemory
from dfdsl.hardware import HardwareError

HARDWARE_CODE = "E023"
COMMANDS = (init, check, lower, run, compare, validate, sweep, sensitivity, calibrate, import_hf, opt)
"""Each subcommand's module, in the order `--help` lists them."""


def build_parser() -> tuple[argparse.ArgumentParser, Mapping[str, argparse.ArgumentParser]]:
    """The `dfdsl` parser, and each subcommand's parser by name."""
    parser = argparse.ArgumentParser(
        prog="dfdsl",
        description="Compile LLM decode programs written in .dfl through the df dialect to the SN40L's "
                    "rdu dialect (or a DGX H100's nv), and time their decode on a bundled simulator.",
        epilog="Start with: dfdsl run examples/llama3_1_8b.dfl. Docs: README.md, docs/tutorial.md.",
    )
    parser.add_argument("--version", action="version", version=f"dfdsl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser, sub.choices


def main(argv: Sequence[str] | None = None) -> int:
    parser, subcommands = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # argparse leaves a subcommand's unknown arguments to the top-level parser, whose usage
        # line does not show the subcommand's options: report them with the subcommand's.
        subcommands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return run_command(args.func, args)


def _code_of(err: Exception) -> str:
    """The catalogue code of an error raised by a pass or the simulator (docs/errors.md): its
    `code` (`dfdsl.errors`), or E025 for xDSL's own verifier."""
    return "E025" if isinstance(err, VerifyException) else getattr(err, "code", "E024")


def _environment(err: EnvironmentFailure) -> int:
    """Print a failure of the environment with its code and what to do; exit status 2."""
    sys.stderr.write(f"dfdsl: error: {err} [{err.code}]\nhelp: {err.fix}\n")
    return 2


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return func(args)
    except DfslError as err:
        sys.stderr.write(err.render() + "\n")
        return 2
    except UsageError as err:
        sys.stderr.write(f"dfdsl: error: {err} [{USAGE_CODE}]\n")
        return 2
    except HardwareError as err:
        sys.stderr.write(f"dfdsl: error: {err} [{HARDWARE_CODE}]\n")
        return 2
    except DiagnosticException as err:
        where = getattr(args, "file", None)
        sys.stderr.write(f"{where or 'dfdsl'}: error: {err} [{_code_of(err)}]\n")
        return 2
    except EnvironmentFailure as err:
        return _environment(err)
    except MemoryError:
        pass  # reported below: the traceback, alive in this clause, holds what filled the memory
    except KeyboardInterrupt:
        sys.stderr.write("dfdsl: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:  # a bug in dfdsl: say so, briefly, and how to see more
        if os.environ.get("DFDSL_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(f"dfdsl: internal error: {type(err).__name__}: {err}\n"
                         "This is a bug in dfdsl. Rerun with DFDSL_DEBUG=1 to see the traceback.\n")
        return 1
    return _environment(_out_of_memory())


def _out_of_memory() -> OutOfMemory:
    """The report of a MemoryError, naming the process's memory limit when one is set."""
    import resource

    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    within = f" (the process may use {limit / 1e6:,.0f} MB: ulimit -v)" if limit != resource.RLIM_INFINITY else ""
    return OutOfMemory(f"ran out of memory{within}",
                       "the input is likely far larger than a model needs (check the file and the run settings); "
                       "otherwise free memory, or raise the limit")

