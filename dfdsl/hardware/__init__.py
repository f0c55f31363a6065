"""Hardware as data: reads a target's TOML file (bundled beside this module, or a user's) into `Hardware`.

A target file says its `kind`: `"rdu"` (the default: an SN40L-style dataflow chip, read into
`Hardware`) or `"gpu"` (a node of GPUs, read into `GpuHardware`). An RDU file has a `[chip]`, a
`[memory.hbm]` and `[memory.ddr]`, and an `[assumptions]` section for what nobody has published;
a GPU file has a `[gpu]`, a `[node]`, the same two memories, a `[gpu_assumptions]` section and a
`[gpu_software]` section (the serving software's kernels and launches, `GpuSoftware`).
Each section may carry a `source` string. Values keep the units their names say.

Every hardware value goes through one validation, whatever its source: a file's keys as they are
read, a value swept with `dfdsl sweep --set` (`check_value`, then `check_relations` on the
machine it makes). A number must be of the key's type, finite, and inside the physical range of
its unit (`range_of`: a NaN, an infinity, a subnormal or a petabyte per second is refused), and
the values must agree with each other (DDR no faster than HBM, ...). A `HardwareError` names the
file, the line and the key, or the option.
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections.abc import Collection
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import attrs

from dfdsl import files
from dfdsl.errors import HardwareFileError, LoweringError

ORCHESTRATIONS = ("hardware", "host")
ALLREDUCE_ALGORITHMS = ("one-shot", "two-shot", "ring", "tree", "auto", "direct")
"""The all-reduce algorithms a file may name (`sim/timing.py` costs them); `direct` is the old name
of `one-shot`, read as `one-shot`."""
GPU_ALLREDUCES = ("nccl-ring", "nccl-tree", "one-shot", "two-shot", "custom")
"""A GPU node's all-reduce: NCCL's ring or tree, or a runtime's own kernel (one-shot, two-shot,
or `custom`: the faster of the two for each message, as TensorRT-LLM's picks)."""
KINDS = ("rdu", "gpu")


class HardwareError(ValueError):
    """A hardware file is missing or unreadable, or a hardware value (from a file or an option) is
    missing, mistyped, outside its range, or contradicts another."""


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
    """Per socket and direction, to the other sockets of its node (shared by all its peers)."""
    p2p_latency_s: float
    """One message step between two sockets of a node."""
    p2p_node_sockets: int
    """Sockets on one node's peer-to-peer network; a run over more spans nodes of a rack."""
    p2p_rack_bandwidth_bytes_per_s: float
    """Per socket and direction, to the sockets of the rack's other nodes."""
    p2p_rack_latency_s: float
    """One message step between sockets of two nodes of a rack."""
    allreduce_algorithm: str
    host_per_token_s: float
    prefill_compute_efficiency: float
    prefill_half_efficiency_tokens: float


@attrs.frozen
class InterNodeLink:
    """The link between two nodes (groups of sockets) that pipeline stages cross: per node and
    direction, and the latency of one message from a socket of one node to a socket of the other."""

    bandwidth_bytes_per_s: float
    latency_s: float


class _OffChipMemories:
    """Capacity and tiers of a target whose `chip` says its SRAM and that has `hbm` and `ddr`."""

    chip: Chip | GpuChip
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
    internode: InterNodeLink | None = None
    """The `[internode]` link, which only pipelined runs need (None: the file gives none)."""

    @property
    def launch_sync_key(self) -> str:
        """The assumption that is a call's launch and synchronization under the file's orchestration."""
        return "launch_sync_hardware_s" if self.assumptions.orchestration == "hardware" else "launch_sync_host_s"

    @property
    def launch_sync_s(self) -> float:
        """Per-call launch and synchronization under the file's orchestration."""
        return getattr(self.assumptions, self.launch_sync_key)


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
    prefill_compute_efficiency: float
    prefill_half_efficiency_tokens: float


@attrs.frozen
class GpuHost:
    """The host of a GPU node, as a Composition of Experts sees it: its memory (the whole node's),
    the bandwidth of that memory, and each GPU's PCIe link to it (per direction). A copy from host
    memory runs over every GPU's link at once, and no faster than the host memory streams."""

    memory_bytes: int
    memory_bandwidth_bytes_per_s: float
    pcie_bandwidth_bytes_per_s: float


@attrs.frozen
class GpuSoftware:
    """The software a GPU node runs a decode step with: how it launches kernels, which all-reduce
    it calls, and what its kernels cost at the shapes they run (see the target file for each
    number's source: measured tables of that software's kernels)."""

    framework: str
    """What the numbers describe, for people (`TensorRT-LLM 1.3, CUDA graphs`)."""
    cuda_graphs: bool
    """Launches replayed from a CUDA graph (no host launch on the critical path), or eager."""
    all_reduce: str
    """One of `GPU_ALLREDUCES`."""
    attention_kernel: str
    """The decode attention kernel the `attention_*` numbers were measured with, for people."""
    host_launch_s: float
    """Host time to issue one launch when eager: a kernel cannot start before it is issued."""
    gemm_ramp_s: float
    gemm_efficiency: float
    gemm_half_efficiency_columns: float
    attention_ramp_s: float
    attention_efficiency: float
    attention_floor_s: float
    attention_wave_s: float
    """Decode attention's cost per wave of CTAs (one CTA per SM) its context split makes."""
    attention_block_tokens: float
    """The tokens of one sequence and KV head that one CTA of the split takes."""
    attention_max_waves: float
    """The most CTAs the split makes, in waves of one CTA per SM."""
    experts_ramp_s: float
    experts_efficiency: float
    custom_allreduce_latency_s: float
    custom_allreduce_twoshot_latency_s: float
    custom_allreduce_step_latency_s: float
    custom_allreduce_bandwidth_bytes_per_s: float


SOFTWARE_CHOICES = {"all_reduce": GPU_ALLREDUCES}
"""The string keys of `[gpu_software]` that must be one of a few values."""


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
    software: GpuSoftware
    sources: dict[str, str] = attrs.field(factory=dict, eq=False)
    host: GpuHost | None = None
    """The `[host]` table, where the file has one."""


@attrs.frozen
class Range:
    """The physical range of a numeric hardware value (both ends included), by its unit."""

    low: float
    high: float
    unit: str
    integer: bool = False

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        return f"{kind} from {format_value(self.low)} to {format_value(self.high)}{self.unit}"


COUNT = Range(1, 1e6, "", integer=True)
"""Units of a chip (PCUs, PMUs, SMs) or GPUs of a node."""
BYTES = Range(1, 1e15, " bytes", integer=True)
"""A capacity: up to a petabyte per socket."""
BANDWIDTH = Range(1e6, 1e15, " bytes/s")
FLOPS = Range(1e9, 1e18, " FLOP/s")
SECONDS = Range(1e-12, 1.0, " s")
"""A latency or a per-step cost: from a picosecond (below one clock cycle) to a second."""
FRACTION = Range(1e-3, 1.0, "")
"""An efficiency or a share of the chip, in (0, 1]; below a thousandth it is a typo, and its
reciprocal (time = work / (rate x fraction)) would run past any finite figure."""
COUNT_KEYS = frozenset(("pcus", "pmus", "sms", "gpus", "p2p_node_sockets"))
TOKENS = Range(1, 1e7, " tokens")
"""A number of tokens (a prefill's half-efficiency size): up to ten million."""
COLUMNS = Range(1, 1e7, " columns")
"""A GEMM's output columns (its half-efficiency width): up to ten million."""
WAVES = Range(1e-3, 1e6, " waves")
"""Waves of thread blocks over a GPU's SMs (one block per SM each)."""


def range_of(name: str) -> Range:
    """The range of the numeric key `name` (its last part: `bandwidth_bytes_per_s`), by its unit suffix."""
    if name.endswith(("_fraction", "_efficiency")):
        return FRACTION
    for suffix, rule in (("_bytes_per_s", BANDWIDTH), ("_flops_per_s", FLOPS), ("_bytes", BYTES), ("_s", SECONDS)):
        if name.endswith(suffix):
            return rule
    if name in COUNT_KEYS:
        return COUNT
    if name.endswith("_tokens"):
        return TOKENS
    if name.endswith("_columns"):
        return COLUMNS
    if name.endswith("_waves"):
        return WAVES
    raise KeyError(f"no range for the hardware key {name!r}")


def format_value(value: float) -> str:
    """1e+15 as 1e15, 0.001 as 0.001: numbers as a hardware file would write them."""
    return f"{value:g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def check_value(where: str, name: str, value: object, *, exact_type: bool = True) -> int | float:
    """`value`, checked for the numeric key `name` (the last part of its dotted name): a number of
    the key's type, finite, inside its physical range (`range_of`); `HardwareError` beginning with
    `where` otherwise. With `exact_type` (a file's values) a count must be written as an integer;
    without it (a value from the command line, read as a float) a whole float will do."""
    rule = range_of(name)
    wanted = rule.describe()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HardwareError(f"{where} = {value!r} has the wrong type; it must be {wanted}")
    if isinstance(value, float) and math.isnan(value):
        raise HardwareError(f"{where} = {value!r} is not a number; it must be {wanted}")
    if isinstance(value, float) and math.isinf(value):
        raise HardwareError(f"{where} = {value!r} is infinite; it must be {wanted}")
    if rule.integer and isinstance(value, float) and exact_type:
        raise HardwareError(f"{where} = {value!r} has the wrong type; it must be {wanted}")
    if rule.integer and isinstance(value, float) and not value.is_integer():
        raise HardwareError(f"{where} = {value!r} is not a whole number; it must be {wanted}")
    if not rule.low <= value <= rule.high:
        raise HardwareError(f"{where} = {value!r}; it must be {wanted}")
    return int(value) if rule.integer else float(value)


def check_relations(hw: Hardware | GpuHardware, source: str) -> None:
    """The relations between values that the timing model relies on; `HardwareError` beginning
    with `source` (the file, or the option that changed a value) when one does not hold."""
    problems = []
    if hw.ddr.bandwidth_bytes_per_s > hw.hbm.bandwidth_bytes_per_s:
        problems.append(
            f"memory.ddr.bandwidth_bytes_per_s = {format_value(hw.ddr.bandwidth_bytes_per_s)} is more than "
            f"memory.hbm.bandwidth_bytes_per_s = {format_value(hw.hbm.bandwidth_bytes_per_s)}: DDR cannot be faster "
            "than HBM (memory placement spills to DDR as the slower tier, and the roofline is HBM's)")
    if isinstance(hw, Hardware):
        chip = hw.chip
        for units in ("pcus", "pmus"):
            if round(chip.usable_fraction * getattr(chip, units)) < 1:
                problems.append(f"chip.usable_fraction = {format_value(chip.usable_fraction)} of chip.{units} = "
                                f"{getattr(chip, units)} leaves no usable unit for a kernel")
    else:
        a = hw.assumptions
        if a.nccl_bus_bandwidth_bytes_per_s > hw.node.link_bandwidth_bytes_per_s:
            problems.append(
                f"gpu_assumptions.nccl_bus_bandwidth_bytes_per_s = {format_value(a.nccl_bus_bandwidth_bytes_per_s)} "
                f"is more than node.link_bandwidth_bytes_per_s = {format_value(hw.node.link_bandwidth_bytes_per_s)}: "
                "a collective cannot move data faster than the links")
        custom = hw.software.custom_allreduce_bandwidth_bytes_per_s
        if custom > hw.node.link_bandwidth_bytes_per_s:
            problems.append(
                f"gpu_software.custom_allreduce_bandwidth_bytes_per_s = {format_value(custom)} is more than "
                f"node.link_bandwidth_bytes_per_s = {format_value(hw.node.link_bandwidth_bytes_per_s)}: "
                "a collective cannot move data faster than the links")
    if problems:
        raise HardwareError(f"{source}: " + "; ".join(problems))


class _Reader:
    """Reads typed keys from one parsed file, naming the file, the line and the key in every error."""

    def __init__(self, path: str, text: str, data: dict[str, Any]):
        self.path = path
        self.lines = text.split("\n")
        self.data = data

    def section(self, dotted: str) -> dict[str, Any]:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or not isinstance(node.get(part), dict):
                raise HardwareError(f"{self.path}: missing section [{dotted}]")
            node = node[part]
        return node

    def _line(self, dotted: str, key: str) -> int:
        """The line that sets `key` in section `dotted` (0 when not written as `key = ...` under `[dotted]`)."""
        current = ""
        for number, line in enumerate(self.lines, 1):
            stripped = line.split("#", 1)[0].strip()
            if stripped.startswith("[") and stripped.endswith("]"):
                current = stripped.strip("[] ")
            elif current == dotted and re.match(rf"{re.escape(key)}\s*=", stripped):
                return number
        return 0

    def _raw(self, dotted: str, key: str, kind: str) -> tuple[str, Any]:
        """Where the key is (`file:line: [section] key`) and its value; `HardwareError` if missing."""
        table = self.section(dotted) if dotted else self.data
        named = f"[{dotted}] {key}" if dotted else key
        if key not in table:
            raise HardwareError(f"{self.path}: {named} is missing; it must be {kind}")
        line = self._line(dotted, key)
        return f"{self.path}{f':{line}' if line else ''}: {named}", table[key]

    def number(self, dotted: str, key: str) -> Any:
        where, value = self._raw(dotted, key, range_of(key).describe())
        return check_value(where, key, value)

    def boolean(self, dotted: str, key: str) -> bool:
        where, value = self._raw(dotted, key, "true or false")
        if not isinstance(value, bool):
            raise HardwareError(f"{where} = {value!r}; it must be true or false")
        return value

    def string(self, dotted: str, key: str, choices: tuple[str, ...] = ()) -> str:
        wanted = " or ".join(repr(c) for c in choices) if choices else "a string"
        where, value = self._raw(dotted, key, wanted)
        if not isinstance(value, str) or (choices and value not in choices):
            raise HardwareError(f"{where} = {value!r}; it must be {wanted}")
        return value


def _numbers(r: _Reader, section: str, cls: type, skip: Collection[str] = ()) -> dict[str, Any]:
    """Every field of `cls` but `skip`, read from `section` as a number in its range."""
    return {field.name: r.number(section, field.name) for field in attrs.fields(cls) if field.name not in skip}


def _read_assumptions(r: _Reader) -> Assumptions:
    s = "assumptions"
    algorithm = r.string(s, "allreduce_algorithm", ALLREDUCE_ALGORITHMS)
    return Assumptions(orchestration=r.string(s, "orchestration", ORCHESTRATIONS),
                       allreduce_algorithm="one-shot" if algorithm == "direct" else algorithm,
                       **_numbers(r, s, Assumptions, ("orchestration", "allreduce_algorithm")))


def _read_software(r: _Reader) -> GpuSoftware:
    """The `[gpu_software]` section: strings, a boolean, and numbers in their ranges."""
    s = "gpu_software"
    values: dict[str, Any] = {}
    for field in attrs.fields(GpuSoftware):
        if field.type in (str, "str"):
            values[field.name] = r.string(s, field.name, SOFTWARE_CHOICES.get(field.name, ()))
        elif field.type in (bool, "bool"):
            values[field.name] = r.boolean(s, field.name)
        else:
            values[field.name] = r.number(s, field.name)
    return GpuSoftware(**values)


def _sources(data: dict[str, Any]) -> dict[str, str]:
    """The `source` string of each section that has one, by section name."""
    tables = {name: data.get(name) for name in ("chip", "gpu", "node", "internode", "gpu_software")} | {
        f"memory.{name}": table for name, table in data.get("memory", {}).items()
    }
    return {
        name: table["source"]
        for name, table in tables.items()
        if isinstance(table, dict) and isinstance(table.get("source"), str)
    }


def parse_hardware(text: str, path: str) -> Hardware | GpuHardware:
    """A `Hardware` (or, for `kind = "gpu"`, a `GpuHardware`) from the text of a target file;
    `path` names it in errors. Every number is checked (`check_value`), then the relations between
    them (`check_relations`)."""
    text = files.normalize(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise HardwareError(f"{path}: not valid TOML: {err}") from err
    r = _Reader(path, text, data)
    kind = r.string("", "kind", KINDS) if "kind" in data else "rdu"
    # The chip is read first: its errors come first.
    chip: Chip | GpuChip = GpuChip(**_numbers(r, "gpu", GpuChip)) if kind == "gpu" else Chip(**_numbers(r, "chip", Chip))
    common: dict[str, Any] = {
        "name": r.string("", "name"),
        "description": data.get("description", "") if isinstance(data.get("description"), str) else "",
        "path": path,
        "hbm": MemoryTier(**_numbers(r, "memory.hbm", MemoryTier)),
        "ddr": MemoryTier(**_numbers(r, "memory.ddr", MemoryTier)),
        "sources": _sources(data),
    }
    hw: Hardware | GpuHardware
    if isinstance(chip, GpuChip):
        hw = GpuHardware(**common, chip=chip, node=GpuNode(**_numbers(r, "node", GpuNode)),
                         assumptions=GpuAssumptions(**_numbers(r, "gpu_assumptions", GpuAssumptions)),
                         host=GpuHost(**_numbers(r, "host", GpuHost)) if "host" in data else None,
                         software=_read_software(r))
    else:
        internode = InterNodeLink(**_numbers(r, "internode", InterNodeLink)) if "internode" in data else None
        hw = Hardware(**common, chip=chip, assumptions=_read_assumptions(r), internode=internode)
    check_relations(hw, path)
    return hw


def with_value(hardware: Any, path: str, value: float) -> Any:
    """A copy of `hardware` with the number at attribute path `path` (`hbm.bandwidth_bytes_per_s`)
    set to `value`, in the type the field has."""
    head, _, rest = path.partition(".")
    current = getattr(hardware, head)
    if rest:
        return attrs.evolve(hardware, **{head: with_value(current, rest, value)})
    return attrs.evolve(hardware, **{head: type(current)(value)})


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


MAX_HARDWARE_BYTES = 1024 * 1024
"""A hardware file is a few kilobytes; past this it is refused before it is parsed."""


@functools.cache
def bundled_kind(name: str) -> str | None:
    """The kind (`rdu`, `gpu`) of the bundled target `name`, None if no bundled target has that name."""
    return load_hardware(name).kind if name in bundled_targets() else None


def check_target(who: str, target: str, kind: str) -> None:
    """`target` names a bundled machine of `kind`, as the program a pass makes will say:
    `HardwareFileError` (E023) when no bundled machine has that name, `TargetMismatchError` (E022)
    when it is of another kind. `who` (a pass) begins the message."""
    found = bundled_kind(target)
    machines = ", ".join(name for name in bundled_targets() if bundled_kind(name) == kind)
    if found is None:
        raise HardwareFileError(f"{who}: no bundled target is called `{target}`; {kind} targets are {machines}")
    if found != kind:
        raise TargetMismatchError(f"{who}: `{target}` is a {found} machine, not a {kind} one; {kind} targets are "
                                  f"{machines}")


def bundled_name(text: str) -> str | None:
    """The bundled machine a `--hardware` (or `--target`) value names, by either spelling:
    `dgx-h100` (a target's name) and `dgx_h100` (its file's) are `dgx_h100`. None for a value that
    names none: a path, or anything with `/` in it or ending in `.toml`."""
    if "/" in text or text.endswith(".toml"):
        return None
    name = target_name(text)
    return name if name in bundled_targets() else None


def bundled_list() -> str:
    """The bundled machines as a user types them, for messages."""
    return ", ".join(display_name(name) for name in bundled_targets())


def hardware_text(name_or_path: str | Path) -> tuple[str, str, bool]:
    """The text of a bundled machine by name, either spelling (`dgx-h100`, `dgx_h100`), or of a
    hardware file by path; the name its errors give it; and whether it is bundled. The one
    resolver of every command's `--hardware` and of every pass's `hardware` option."""
    text_path = str(name_or_path)
    name = bundled_name(text_path)
    if name is not None:
        text = (resources.files("dfdsl.hardware") / f"{name}.toml").read_text(encoding="utf-8")
        return text, f"{name}.toml (bundled)", True
    path = Path(name_or_path)
    if not path.exists():
        stem = target_name(path.name.removesuffix(".toml"))
        guess = (f"; for the bundled one, give its name alone: {display_name(stem)}"
                 if stem in bundled_targets() else "")
        raise HardwareError(
            f"{text_path}: no such hardware file, and no bundled machine of that name: give a hardware "
            f"file's path or a bundled machine ({bundled_list()}; `-` or `_` alike){guess}"
        )
    try:
        text = files.read_text(path, MAX_HARDWARE_BYTES)
    except files.FileReadError as err:
        fix = {"not-utf8": "save it as UTF-8", "too-large": "a hardware file is a few kilobytes: is this the right file?"}
        raise HardwareError(f"{err}" + (f"; {fix[err.reason]}" if err.reason in fix else "")) from None
    return text, text_path, False


def load_hardware(name_or_path: str | Path) -> Hardware | GpuHardware:
    """A bundled target by name (`sn40l`) or a target file by path (`my_chip.toml`)."""
    return parse_hardware(*hardware_text(name_or_path)[:2])
