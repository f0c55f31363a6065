"""Hardware as data: reads a target's TOML file (bundled beside this module, or a user's) into `Hardware`.

A target file says its `kind`: `"rdu"` (the default: an SN40L-style dataflow chip, read into
`Hardware`) or `"gpu"` (a node of GPUs, read into `GpuHardware`). An RDU file has a `[chip]`, a
`[memory.hbm]` and `[memory.ddr]`, and an `[assumptions]` section for what nobody has published;
a GPU file has a `[gpu]`, a `[node]`, the same two memories and a `[gpu_assumptions]` section.
Each section may carry a `source` string. The loader checks every key it needs (present, of the
right type, positive) and raises `HardwareError` naming the file and the key otherwise. Values
keep the units their names say.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import attrs

from dfdsl.errors import LoweringError

ORCHESTRATIONS = ("hardware", "host")
ALLREDUCE_ALGORITHMS = ("direct", "ring", "auto")
KINDS = ("rdu", "gpu")


class HardwareError(ValueError):
    """A hardware file is missing, unreadable, or has a missing, mistyped or non-positive key."""


class TargetMismatchError(LoweringError):
    """What was asked cannot exist on this kind of machine (kernel looping on a GPU, an RDU
    lowering for a GPU, more GPUs than a node)."""

    code = "E022"


@attrs.frozen
class Chip:
    """One socket's compute and on-chip memory."""

    pcus: int
    pmus: int
    pmu_bytes: int
    sram_bytes: int
    peak_flops_per_s: float
    usable_fraction: float


@attrs.frozen
class MemoryTier:
    """An off-chip memory of one socket."""

    capacity_bytes: int
    bandwidth_bytes_per_s: float


@attrs.frozen
class Assumptions:
    """The timing model's unpublished parameters (see the target file for each one's reasoning)."""

    orchestration: str
    launch_sync_hardware_s: float
    launch_sync_host_s: float
    stage_latency_s: float
    first_tile_latency_s: float
    stream_efficiency: float
    compute_efficiency: float
    p2p_bandwidth_bytes_per_s: float
    p2p_latency_s: float
    allreduce_algorithm: str
    host_per_token_s: float


class _OffChipMemories:
    """Capacity and tiers of a target whose `chip` says its SRAM and that has `hbm` and `ddr`."""

    chip: Any
    hbm: MemoryTier
    ddr: MemoryTier

    def capacity_bytes(self, tier: str) -> int:
        """Per-socket capacity of a memory tier (`sram`, `hbm` or `ddr`)."""
        if tier == "sram":
            return self.chip.sram_bytes
        return self.tier(tier).capacity_bytes

    def tier(self, tier: str) -> MemoryTier:
        """The off-chip tier `hbm` or `ddr`."""
        if tier not in ("hbm", "ddr"):
            raise KeyError(f"no off-chip memory tier {tier!r}")
        return self.hbm if tier == "hbm" else self.ddr


@attrs.frozen
class Hardware(_OffChipMemories):
    """One socket of a target: chip, memories, and the timing model's assumptions."""

    kind: ClassVar[str] = "rdu"
    unit: ClassVar[str] = "socket"
    """What a run counts of this machine (`--sockets`)."""

    name: str
    description: str
    path: str
    chip: Chip
    hbm: MemoryTier
    ddr: MemoryTier
    assumptions: Assumptions
    sources: dict[str, str] = attrs.field(factory=dict, eq=False)

    @property
    def launch_sync_s(self) -> float:
        """Per-call launch and synchronization under the file's orchestration."""
        a = self.assumptions
        return a.launch_sync_hardware_s if a.orchestration == "hardware" else a.launch_sync_host_s


@attrs.frozen
class GpuChip:
    """One GPU's compute and on-chip memory (`sram_bytes`: the L2 cache, where activations
    passed between kernels stay)."""

    sms: int
    peak_flops_per_s: float
    sram_bytes: int


@attrs.frozen
class GpuNode:
    """The GPUs of one node and the links between them."""

    gpus: int
    link_bandwidth_bytes_per_s: float
    """Per GPU and direction, through the switch."""


@attrs.frozen
class GpuAssumptions:
    """The GPU timing model's unpublished parameters (see the target file for each one's reasoning)."""

    launch_sync_s: float
    stream_efficiency: float
    stream_ramp_s: float
    compute_efficiency: float
    nccl_base_latency_s: float
    nccl_step_latency_s: float
    nccl_bus_bandwidth_bytes_per_s: float
    host_per_token_s: float


@attrs.frozen
class GpuHardware(_OffChipMemories):
    """One GPU of a node of GPUs: chip, memories, the node, and the timing model's assumptions."""

    kind: ClassVar[str] = "gpu"
    unit: ClassVar[str] = "GPU"
    """What a run counts of this machine (`--sockets` counts GPUs here)."""

    name: str
    description: str
    path: str
    chip: GpuChip
    hbm: MemoryTier
    ddr: MemoryTier
    node: GpuNode
    assumptions: GpuAssumptions
    sources: dict[str, str] = attrs.field(factory=dict, eq=False)


_POSITIVE_INT = "a positive integer"
_POSITIVE_NUMBER = "a positive number"
_FRACTION = "a number in (0, 1]"


class _Reader:
    """Reads typed keys from one parsed file, naming the file and key in every error."""

    def __init__(self, path: str, data: dict[str, Any]):
        self.path = path
        self.data = data

    def section(self, dotted: str) -> dict[str, Any]:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or not isinstance(node.get(part), dict):
                raise HardwareError(f"{self.path}: missing section [{dotted}]")
            node = node[part]
        return node

    def value(self, dotted: str, key: str, kind: str, choices: tuple[str, ...] = ()) -> Any:
        table = self.section(dotted) if dotted else self.data
        where = f"{self.path}: [{dotted}] {key}" if dotted else f"{self.path}: {key}"
        if key not in table:
            raise HardwareError(f"{where} is missing; it must be {kind}")
        value = table[key]
        if kind == "a string":
            if not isinstance(value, str) or (choices and value not in choices):
                wanted = " or ".join(repr(c) for c in choices) if choices else kind
                raise HardwareError(f"{where} = {value!r}; it must be {wanted}")
            return value
        wanted_type = int if kind == _POSITIVE_INT else int | float
        if isinstance(value, bool) or not isinstance(value, wanted_type):
            raise HardwareError(f"{where} = {value!r} has the wrong type; it must be {kind}")
        if value <= 0 or (kind == _FRACTION and value > 1):
            raise HardwareError(f"{where} = {value!r}; it must be {kind}")
        return value


def _read_chip(r: _Reader) -> Chip:
    return Chip(
        pcus=r.value("chip", "pcus", _POSITIVE_INT),
        pmus=r.value("chip", "pmus", _POSITIVE_INT),
        pmu_bytes=r.value("chip", "pmu_bytes", _POSITIVE_INT),
        sram_bytes=r.value("chip", "sram_bytes", _POSITIVE_INT),
        peak_flops_per_s=float(r.value("chip", "peak_flops_per_s", _POSITIVE_NUMBER)),
        usable_fraction=float(r.value("chip", "usable_fraction", _FRACTION)),
    )


def _read_tier(r: _Reader, name: str) -> MemoryTier:
    section = f"memory.{name}"
    return MemoryTier(
        capacity_bytes=r.value(section, "capacity_bytes", _POSITIVE_INT),
        bandwidth_bytes_per_s=float(r.value(section, "bandwidth_bytes_per_s", _POSITIVE_NUMBER)),
    )


def _numbers(r: _Reader, section: str, cls: type, skip: Collection[str] = ()) -> dict[str, float]:
    """Every field of `cls` but `skip` read from `section` as a number; efficiencies are fractions."""
    return {
        field.name: float(
            r.value(section, field.name, _FRACTION if field.name.endswith("efficiency") else _POSITIVE_NUMBER)
        )
        for field in attrs.fields(cls)
        if field.name not in skip
    }


def _read_assumptions(r: _Reader) -> Assumptions:
    s = "assumptions"
    choices = {"orchestration": ORCHESTRATIONS, "allreduce_algorithm": ALLREDUCE_ALGORITHMS}
    return Assumptions(orchestration=r.value(s, "orchestration", "a string", ORCHESTRATIONS),
                       allreduce_algorithm=r.value(s, "allreduce_algorithm", "a string", ALLREDUCE_ALGORITHMS),
                       **_numbers(r, s, Assumptions, choices))


def _read_gpu(r: _Reader) -> GpuChip:
    return GpuChip(
        sms=r.value("gpu", "sms", _POSITIVE_INT),
        peak_flops_per_s=float(r.value("gpu", "peak_flops_per_s", _POSITIVE_NUMBER)),
        sram_bytes=r.value("gpu", "sram_bytes", _POSITIVE_INT),
    )


def _read_node(r: _Reader) -> GpuNode:
    return GpuNode(
        gpus=r.value("node", "gpus", _POSITIVE_INT),
        link_bandwidth_bytes_per_s=float(r.value("node", "link_bandwidth_bytes_per_s", _POSITIVE_NUMBER)),
    )


def _sources(data: dict[str, Any]) -> dict[str, str]:
    """The `source` string of each section that has one, by section name."""
    tables = {name: data.get(name) for name in ("chip", "gpu", "node")} | {
        f"memory.{name}": table for name, table in data.get("memory", {}).items()
    }
    return {
        name: table["source"]
        for name, table in tables.items()
        if isinstance(table, dict) and isinstance(table.get("source"), str)
    }


def parse_hardware(text: str, path: str) -> Hardware | GpuHardware:
    """A `Hardware` (or, for `kind = "gpu"`, a `GpuHardware`) from the text of a target file;
    `path` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise HardwareError(f"{path}: not valid TOML: {err}") from err
    r = _Reader(path, data)
    kind = r.value("", "kind", "a string", KINDS) if "kind" in data else "rdu"
    chip: Chip | GpuChip = _read_gpu(r) if kind == "gpu" else _read_chip(r)  # read first: its errors come first
    common = {
        "name": r.value("", "name", "a string"),
        "description": data.get("description", "") if isinstance(data.get("description"), str) else "",
        "path": path,
        "hbm": _read_tier(r, "hbm"),
        "ddr": _read_tier(r, "ddr"),
        "sources": _sources(data),
    }
    if isinstance(chip, GpuChip):
        return GpuHardware(**common, chip=chip, node=_read_node(r),
                           assumptions=GpuAssumptions(**_numbers(r, "gpu_assumptions", GpuAssumptions)))
    return Hardware(**common, chip=chip, assumptions=_read_assumptions(r))


def target_name(text: str) -> str:
    """The bundled target a user's spelling names: `dgx-h100` and `dgx_h100` are one target."""
    return text.replace("-", "_")


def display_name(name: str) -> str:
    """A target's name as the command line spells it (`dgx-h100`), for titles and lists."""
    return name.replace("_", "-")


def bundled_targets() -> list[str]:
    """Names of the targets shipped in `dfdsl.hardware`."""
    files = resources.files("dfdsl.hardware")
    return sorted(f.name.removesuffix(".toml") for f in files.iterdir() if f.name.endswith(".toml"))


def load_hardware(name_or_path: str | Path) -> Hardware | GpuHardware:
    """A bundled target by name (`sn40l`) or a target file by path (`my_chip.toml`)."""
    text_path = str(name_or_path)
    bundled = resources.files("dfdsl.hardware") / f"{text_path}.toml"
    if "/" not in text_path and not text_path.endswith(".toml") and bundled.is_file():
        return parse_hardware(bundled.read_text(encoding="utf-8"), f"{text_path}.toml (bundled)")
    path = Path(name_or_path)
    if not path.is_file():
        raise HardwareError(
            f"{text_path}: no such hardware file, and no bundled target of that name "
            f"(bundled: {', '.join(bundled_targets())})"
        )
    return parse_hardware(path.read_text(encoding="utf-8"), text_path)
