"""Registers dfdsl's dialects and passes with xDSL, so `xdsl-opt` knows them."""

from xdsl.universe import Universe


def _df():
    from dfdsl.dialects.df import Df

    return Df


DFDSL_UNIVERSE = Universe(all_dialects={"df": _df}, all_passes={})
