"""The one exception type of the passes and the simulators, `LoweringError`, and its kinds.

A pass or a simulator that cannot do what it is asked raises a `LoweringError` (a xDSL
`DiagnosticException`, as `xdsl-opt` expects of a pass) whose `code` is its entry in
docs/errors.md: E020 the model does not divide over the sockets (`ShardingError`), E021 it does
not fit in memory (`CapacityError`), E022 not possible on this target (`TargetMismatchError`),
E023 a bad hardware file, E024 the IR does not suit the pass (the default, and `StageError` for
a broken stage contract), E025 the IR does not verify. The command line prints the code after the
message. Any other exception out of a pass is a bug in dfdsl.
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
