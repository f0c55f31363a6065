"""Hardware as data: reads a target's TOML file (sim/targets/*.toml, or a user's) into `Hardware`.

A target file has a `[chip]`, a `[memory.hbm]` and `[memory.ddr]`, and an `[assumptions]`
section for what nobody has published. Each section may carry a `source` string. The loader
checks every key it needs (present, of the right type, positive) and raises `HardwareError`
naming the file and the key otherwise. Values keep the units their names say.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

ORCHESTRATIONS = ("hardware", "host")
ALLREDUCE_ALGORITHMS = ("direct", "ring")


class HardwareError(ValueError):
    """A hardware file is missing, unreadable, or has a missing, mistyped or non-positive key."""


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


@attrs.frozen
class Hardware:
    """One socket of a target: chip, memories, and the timing model's assumptions."""

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


def _read_assumptions(r: _Reader) -> Assumptions:
    s = "assumptions"
    choices = {"orchestration": ORCHESTRATIONS, "allreduce_algorithm": ALLREDUCE_ALGORITHMS}
    numbers = {
        field.name: float(
            r.value(s, field.name, _FRACTION if field.name.endswith("efficiency") else _POSITIVE_NUMBER)
        )
        for field in attrs.fields(Assumptions)
        if field.name not in choices
    }
    strings = {key: r.value(s, key, "a string", allowed) for key, allowed in choices.items()}
    return Assumptions(**strings, **numbers)


def _sources(data: dict[str, Any]) -> dict[str, str]:
    """The `source` string of each section that has one, by section name."""
    tables = {"chip": data.get("chip")} | {
        f"memory.{name}": table for name, table in data.get("memory", {}).items()
    }
    return {
        name: table["source"]
        for name, table in tables.items()
        if isinstance(table, dict) and isinstance(table.get("source"), str)
    }


def parse_hardware(text: str, path: str) -> Hardware:
    """A `Hardware` from the text of a target file; `path` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise HardwareError(f"{path}: not valid TOML: {err}") from err
    r = _Reader(path, data)
    return Hardware(
        name=r.value("", "name", "a string"),
        description=data.get("description", "") if isinstance(data.get("description"), str) else "",
        path=path,
        chip=_read_chip(r),
        hbm=_read_tier(r, "hbm"),
        ddr=_read_tier(r, "ddr"),
        assumptions=_read_assumptions(r),
        sources=_sources(data),
    )


def bundled_targets() -> list[str]:
    """Names of the targets shipped in `dfdsl.sim.targets`."""
    files = resources.files("dfdsl.sim.targets")
    return sorted(f.name.removesuffix(".toml") for f in files.iterdir() if f.name.endswith(".toml"))


def load_hardware(name_or_path: str | Path) -> Hardware:
    """A bundled target by name (`sn40l`) or a target file by path (`my_chip.toml`)."""
    text_path = str(name_or_path)
    bundled = resources.files("dfdsl.sim.targets") / f"{text_path}.toml"
    if "/" not in text_path and not text_path.endswith(".toml") and bundled.is_file():
        return parse_hardware(bundled.read_text(encoding="utf-8"), f"{text_path}.toml (bundled)")
    path = Path(name_or_path)
    if not path.is_file():
        raise HardwareError(
            f"{text_path}: no such hardware file, and no bundled target of that name "
            f"(bundled: {', '.join(bundled_targets())})"
        )
    return parse_hardware(path.read_text(encoding="utf-8"), text_path)
