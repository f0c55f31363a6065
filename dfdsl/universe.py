"""Registers dfdsl's dialects and passes with xDSL, so `xdsl-opt` knows them."""

from collections.abc import Callable
from importlib import import_module

from xdsl.ir import Dialect
from xdsl.universe import Universe

PASSES: dict[str, tuple[str, str]] = {
    "shard-tensor-parallel": ("dfdsl.lowering.shard_tensor_parallel", "ShardTensorParallel"),
    "fuse": ("dfdsl.lowering.fuse", "Fuse"),
    "kernel-looping": ("dfdsl.lowering.kernel_looping", "KernelLooping"),
    "place-memory": ("dfdsl.lowering.place_memory", "PlaceMemory"),
    "df-to-rdu": ("dfdsl.lowering.df_to_rdu", "DfToRdu"),
    "gpu-partition": ("dfdsl.lowering.gpu_partition", "GpuPartition"),
    "df-to-nv": ("dfdsl.lowering.df_to_nv", "DfToNv"),
}
"""Pass name to (module, class), imported only when the pass is asked for."""

DIALECTS: dict[str, tuple[str, str]] = {
    "df": ("dfdsl.dialects.df", "Df"),
    "rdu": ("dfdsl.dialects.rdu", "Rdu"),
    "nv": ("dfdsl.dialects.nv", "Nv"),
}


def _loader(module: str, attr: str) -> Callable[[], object]:
    return lambda: getattr(import_module(module), attr)


DFDSL_UNIVERSE = Universe(
    all_dialects={name: _loader(*where) for name, where in DIALECTS.items()},  # type: ignore[misc]
    all_passes={name: _loader(*where) for name, where in PASSES.items()},  # type: ignore[misc]
)


def dialects() -> list[Dialect]:
    return [_loader(*where)() for where in DIALECTS.values()]  # type: ignore[misc]

