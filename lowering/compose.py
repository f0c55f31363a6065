"""A Composition of Experts as an `rdu` program: the HBM region its experts are resident in, and
one `rdu.copy` per distinct expert model, which brings an expert of that model from its home tier
into a slot of the region (docs/ir.md).

Each distinct expert model is compiled once, by the target's pipeline, with its weights in HBM
(where it runs from); the program here says how large a slot is (the largest expert's weights per
socket), how many slots HBM has beside the router and the KV caches, and what each switch copies.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import ModuleOp

from dfdsl.dialects import rdu
from dfdsl.errors import LoweringError

REGION = "experts"
"""The region's symbol."""


class CompositionError(LoweringError, code="E021"):
    """The router and the KV caches leave no HBM for even one expert."""


def region_slots(free_bytes: int, slot_bytes: int, wanted: int | None, experts: int, where: str,
                 all_resident: bool = False) -> int:
    """Experts a region keeps resident: `wanted` (None: as many as fit in `free_bytes`), never more
    than the experts there are; `CompositionError` when not even one fits or `wanted` is too many
    (`all_resident`: `wanted` is every expert, placed in HBM)."""
    fit = free_bytes // slot_bytes if free_bytes > 0 else 0
    if fit < 1:
        raise CompositionError(
            f"{where}: the router and the KV caches leave {max(free_bytes, 0) / 1e9:.1f} GB of HBM per socket, "
            f"and an expert needs {slot_bytes / 1e9:.1f} GB (GB = 10^9 bytes): use more sockets, or place the "
            "router in ddr")
    if wanted is not None and wanted > fit and all_resident:
        raise CompositionError(
            f"{where}: `experts -> hbm` keeps all {wanted} experts in HBM, and {fit} of {slot_bytes / 1e9:.2f} GB "
            "per socket fit beside the router and the KV caches (GB = 10^9 bytes): place the experts in ddr, "
            "or use fewer experts or more sockets")
    if wanted is not None and wanted > fit:
        raise CompositionError(
            f"{where}: hbm_slots = {wanted}, and {fit} experts of {slot_bytes / 1e9:.2f} GB per socket fit beside "
            f"the router and the KV caches (GB = 10^9 bytes): use hbm_slots = auto, or at most {fit}")
    return min(wanted if wanted is not None else fit, experts)


def composition_module(copies: Sequence[tuple[str, int, int]], slots: int, sockets: int,
                       source: str = "ddr") -> ModuleOp:
    """The program of a composition: a region of `slots` slots sized for the largest expert, and
    one copy per (model, bytes per socket, experts of that model) in `copies`. It verifies."""
    slot_bytes = max(b for _, b, _ in copies)
    region = rdu.HbmRegionOp(REGION, slots, slot_bytes)
    ops = [rdu.CopyOp(model, REGION, bytes_=b, experts=n, sockets=sockets, source=source) for model, b, n in copies]
    module = ModuleOp([region, *ops])
    module.verify()
    return module
