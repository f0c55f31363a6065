"""Registers dfdsl's dialects and passes with xDSL, so `xdsl-opt` knows them."""

from xdsl.universe import Universe

from dfdsl.dialects import DIALECTS, dialect_loader
from dfdsl.lowering.pipeline import PASSES, pass_loader

DFDSL_UNIVERSE = Universe(
    all_dialects={name: dialect_loader(name) for name in DIALECTS},
    all_passes={name: pass_loader(name) for name in PASSES},
)
