"""The one exception type of the passes and the simulators, `LoweringError`, and its kinds.

A pass or a simulator that cannot do what it is asked raises a `LoweringError` (a xDSL
`DiagnosticException`, as `xdsl-opt` expects of a pass) whose `code` is its entry in
docs/errors.md: E020 the model does not divide over the sockets (`ShardingError`), E021 it does
not fit in memory (`CapacityError`), E022 not possible on this target (`TargetMismatchError`),
E023 a bad hardware file, E024 the IR does not suit the pass (the default, and `StageError` for
a broken stage contract), E025 the IR does not verify. The command line prints the code after the
message. Any other exception out of a pass is a bug in dfdsl.

What fails outside dfdsl and its input is an `EnvironmentFailure`, never a bug nor an IR error:
E028 an output cannot be written (a full disk, a read-only file), E029 the Dask scheduler cannot be
reached, E030 a program dfdsl runs (Graphviz's `dot`) is missing or fails, E031 out of memory.
Its message names what was tried (the file, the address, the program) and how long dfdsl waited
when it did; its `fix` says what to do.
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import FileLineColLoc, ModuleOp, StringAttr, SymbolRefAttr
from xdsl.ir import Operation
from xdsl.utils.exceptions import DiagnosticException, VerifyException


class LoweringError(DiagnosticException):
    """A pass or simulator cannot do what it is asked with this module; `code` says why."""

    code: ClassVar[str] = "E024"


class HardwareFileError(LoweringError):
    """The hardware file a pass was given is missing or wrong."""

    code: ClassVar[str] = "E023"


class VerificationError(LoweringError):
    """The module breaks a rule of the `df`, `rdu` or `nv` dialect."""

    code: ClassVar[str] = "E025"


def verify(module: ModuleOp) -> None:
    """Verifies `module`, raising `VerificationError` rather than xDSL's `VerifyException`."""
    try:
        module.verify()
    except VerifyException as err:
        raise VerificationError(str(err)) from err


def describe(op: Operation) -> str:
    """`df.launch @nope`, `df.weight 'embed'`: the op's name and the symbol it calls or defines, or
    the tensor it declares, and where it was written when the IR says so (a
    `loc("file.mlir":3:5)` after the op: xDSL's parser keeps no other position)."""
    text = op.name
    callee, symbol = op.properties.get("callee"), op.properties.get("sym_name")
    tensor = op.properties.get("tensor_name") or op.properties.get("buffer_name")
    if isinstance(callee, SymbolRefAttr):
        text += f" @{callee.string_value()}"
    elif isinstance(symbol, StringAttr):
        text += f" @{symbol.data}"
    elif isinstance(tensor, StringAttr):
        text += f" {tensor.data!r}"
    if isinstance(op.location, FileLineColLoc):
        loc = op.location
        text += f" (at {loc.filename.data}:{loc.line.data}:{loc.column.data})"
    return text


class EnvironmentFailure(Exception):
    """Something outside dfdsl and its input failed; the command line prints the message, the
    code and `help: <fix>`, and exits with status 2."""

    code: ClassVar[str]

    def __init__(self, message: str, fix: str):
        super().__init__(message)
        self.fix = fix


class OutputFailure(EnvironmentFailure):
    """An output (a file, a device, standard output) cannot be written."""

    code: ClassVar[str] = "E028"


class SchedulerUnreachable(EnvironmentFailure):
    """The Dask scheduler given with `--scheduler` did not answer."""

    code: ClassVar[str] = "E029"


class ProgramFailure(EnvironmentFailure):
    """A program dfdsl runs (Graphviz's `dot`) is not installed, failed, or did not finish."""

    code: ClassVar[str] = "E030"


class OutOfMemory(EnvironmentFailure):
    """The machine (or the process's limit) ran out of memory."""

    code: ClassVar[str] = "E031"
