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

Every class of both gives its code where it is declared (`class CapacityError(LoweringError,
code="E021")`, `Coded`), and the code must be one of the catalogue's (`ERROR_CODES`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from xdsl.dialects.builtin import FileLineColLoc, ModuleOp, StringAttr, SymbolRefAttr
from xdsl.ir import Operation
from xdsl.utils.exceptions import DiagnosticException, VerifyException

from dfdsl.diagnostics import ERROR_CODES


class Coded:
    """An error of the catalogue (docs/errors.md): its `code`, given as the class is declared
    (`class X(Base, code="E0NN")`); a class that gives none keeps its base's."""

    code: ClassVar[str]

    def __init_subclass__(cls, code: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code:
            if code not in ERROR_CODES:
                raise ValueError(f"{cls.__name__}: {code} is not in the catalogue of errors (ERROR_CODES)")
            cls.code = code


class LoweringError(Coded, DiagnosticException, code="E024"):
    """A pass or simulator cannot do what it is asked with this module; `code` says why."""


class HintedError(LoweringError):
    """A pass's error whose message is the `problem` and then what to do (`hint`): the problem is
    kept apart, so that the driver can give it a hint of its own (the socket counts that work)."""

    def __init__(self, problem: str, hint: str = ""):
        super().__init__(f"{problem}; {hint}" if hint else problem)
        self.problem = problem


class HardwareFileError(LoweringError, code="E023"):
    """The hardware file a pass was given is missing or wrong."""


class VerificationError(LoweringError, code="E025"):
    """The module breaks a rule of the `df`, `rdu` or `nv` dialect."""


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


class EnvironmentFailure(Coded, Exception):
    """Something outside dfdsl and its input failed; the command line prints the message, the
    code and `help: <fix>`, and exits with status 2."""

    def __init__(self, message: str, fix: str):
        super().__init__(message)
        self.fix = fix


class OutputFailure(EnvironmentFailure, code="E028"):
    """An output (a file, a device, standard output) cannot be written."""


class SchedulerUnreachable(EnvironmentFailure, code="E029"):
    """The Dask scheduler given with `--scheduler` did not answer."""


class ProgramFailure(EnvironmentFailure, code="E030"):
    """A program dfdsl runs (Graphviz's `dot`) is not installed, failed, or did not finish."""


class OutOfMemory(EnvironmentFailure, code="E031"):
    """The machine (or the process's limit) ran out of memory."""
