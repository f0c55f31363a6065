"""Every example lowers to rdu under every fusion mode, with and without kernel looping, at 1, 8
and 16 sockets, or fails with the clear error of a configuration that truly cannot exist."""

from __future__ import annotations

from pathlib import Path

import pytest
from xdsl.utils.exceptions import DiagnosticException

from dfdsl.dialects import df, rdu
from dfdsl.elaborate import check_file
from dfdsl.irgen import generate
from dfdsl.lowering.pipeline import FUSION_MODES, RDU_PIPELINE, LoweringOptions, run_passes

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.dfl"))
ACCEPTED_FAILURES = ("cannot split", "does not fit in hbm", "does not fit in ddr")
"""Too little memory for the sockets, or heads that do not divide over them."""


@pytest.mark.parametrize("sockets", [1, 8, 16])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_lowers_in_every_configuration(path, sockets):
    model = check_file(path, {"sockets": sockets})
    front = generate(model)
    outcomes = {}
    for fusion in FUSION_MODES:
        for looping in (False, True):
            module = front.clone()
            options = LoweringOptions(sockets=sockets, fusion=fusion, kernel_looping=looping)
            try:
                run_passes(module, RDU_PIPELINE.passes_to("rdu", options))
            except DiagnosticException as err:
                assert any(s in str(err) for s in ACCEPTED_FAILURES), str(err)
                outcomes[fusion, looping] = "refused"
                continue
            calls = [op for op in module.walk() if isinstance(op, rdu.CallOp)]
            outcomes[fusion, looping] = len(calls)
    if outcomes["layer", False] == "refused":
        # A configuration that cannot exist is refused whatever the fusion.
        assert set(outcomes.values()) == {"refused"}
        return
    layers = sum(1 for op in front.walk() if isinstance(op, df.CallOp))
    assert outcomes["layer", False] == layers + 3
    kinds = len({op.callee.string_value() for op in front.walk() if isinstance(op, df.CallOp)})
    assert outcomes["layer", True] == kinds + 3  # one looped call per run of identical layers
    assert outcomes["block", True] == outcomes["block", False]  # alternating kernels never loop
    assert outcomes["none", False] > outcomes["block", False] > outcomes["layer", False]
