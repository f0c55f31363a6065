"""Hardware files: the bundled SN40L numbers, user files, and errors that name the file and key."""

import re
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dfdsl.hardware import HardwareError, bundled_targets, load_hardware, parse_hardware

SN40L_TEXT = (resources.files("dfdsl.hardware") / "sn40l.toml").read_text(encoding="utf-8")

NUMERIC_KEYS = [
    ("chip", "pcus"), ("chip", "pmus"), ("chip", "pmu_bytes"), ("chip", "sram_bytes"),
    ("chip", "peak_flops_per_s"), ("chip", "usable_fraction"),
    ("memory.hbm", "capacity_bytes"), ("memory.hbm", "bandwidth_bytes_per_s"),
    ("memory.ddr", "capacity_bytes"), ("memory.ddr", "bandwidth_bytes_per_s"),
    ("assumptions", "launch_sync_hardware_s"), ("assumptions", "stage_latency_s"),
    ("assumptions", "stream_efficiency"), ("assumptions", "p2p_latency_s"),
    ("assumptions", "host_per_token_s"), ("assumptions", "prefill_compute_efficiency"),
    ("assumptions", "prefill_half_efficiency_tokens"),
]


def _with_line(section: str, key: str, replacement: str | None) -> str:
    """The SN40L file with `key` of `[section]` replaced by `replacement` (or removed)."""
    lines = SN40L_TEXT.splitlines()
    current = ""
    for i, line in enumerate(lines):
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and re.match(rf"{key}\s*=", line):
            lines[i] = "" if replacement is None else f"{key} = {replacement}"
            return "\n".join(lines)
    raise AssertionError(f"no {key} in [{section}]")


def test_bundled_sn40l_has_the_published_numbers():
    hw = load_hardware("sn40l")
    assert (hw.chip.pcus, hw.chip.pmus) == (1040, 1040)
    assert hw.chip.sram_bytes == 520_000_000 == hw.chip.pmus * hw.chip.pmu_bytes
    assert hw.chip.usable_fraction == 0.9
    assert hw.chip.peak_flops_per_s == 638e12
    assert (hw.hbm.capacity_bytes, hw.hbm.bandwidth_bytes_per_s) == (64 * 10**9, 1.6e12)
    assert (hw.ddr.capacity_bytes, hw.ddr.bandwidth_bytes_per_s) == (1_500 * 10**9, 100e9)
    assert hw.capacity_bytes("sram") == 520_000_000
    assert hw.launch_sync_s == hw.assumptions.launch_sync_hardware_s
    assert "sn40l" in bundled_targets()


def test_every_published_section_names_its_source_and_every_assumption_its_reasoning():
    hw = load_hardware("sn40l")
    assert set(hw.sources) == {"chip", "memory.hbm", "memory.ddr"}
    section = ""
    above = ""  # the nearest line above that is not a key: a group of keys shares one comment
    for line in SN40L_TEXT.splitlines():
        if line.startswith("["):
            section = line
        if not re.match(r"\w+\s*=", line):
            above = line
        elif section == "[assumptions]":
            assert above.startswith("#"), f"assumption without a reason: {line}"


def test_a_user_file_by_path(tmp_path):
    path = tmp_path / "faster.toml"
    path.write_text(SN40L_TEXT.replace("bandwidth_bytes_per_s = 1.6e12", "bandwidth_bytes_per_s = 1.8e12"))
    hw = load_hardware(path)
    assert hw.hbm.bandwidth_bytes_per_s == 1.8e12
    assert hw.path == str(path)


def test_a_missing_file_says_what_exists():
    with pytest.raises(HardwareError, match=r"no-such-chip: no such hardware file.*sn40l"):
        load_hardware("no-such-chip")


@pytest.mark.parametrize(("section", "key"), NUMERIC_KEYS)
def test_a_missing_key_is_named(section, key):
    with pytest.raises(HardwareError, match=rf"my\.toml: \[{re.escape(section)}\] {key} is missing"):
        parse_hardware(_with_line(section, key, None), "my.toml")


@pytest.mark.parametrize(("section", "key"), NUMERIC_KEYS)
def test_a_mistyped_key_is_named(section, key):
    with pytest.raises(HardwareError, match=rf"my\.toml: \[{re.escape(section)}\] {key} = 'fast' has the wrong type"):
        parse_hardware(_with_line(section, key, '"fast"'), "my.toml")


def test_a_count_must_be_an_integer():
    with pytest.raises(HardwareError, match=r"\[chip\] pcus = 1040.5 has the wrong type; it must be a positive integer"):
        parse_hardware(_with_line("chip", "pcus", "1040.5"), "my.toml")


@given(st.sampled_from(NUMERIC_KEYS), st.integers(max_value=0))
def test_a_non_positive_value_is_named(where, value):
    section, key = where
    with pytest.raises(HardwareError, match=rf"\[{re.escape(section)}\] {key} = {value}; it must be"):
        parse_hardware(_with_line(section, key, str(value)), "my.toml")


def test_an_efficiency_cannot_exceed_one():
    with pytest.raises(HardwareError, match=r"stream_efficiency = 1.2; it must be a number in \(0, 1\]"):
        parse_hardware(_with_line("assumptions", "stream_efficiency", "1.2"), "my.toml")


def test_a_choice_must_be_one_of_the_known_ones():
    with pytest.raises(HardwareError, match=r"allreduce_algorithm = 'tree'; it must be 'direct' or 'ring'"):
        parse_hardware(_with_line("assumptions", "allreduce_algorithm", '"tree"'), "my.toml")


def test_invalid_toml_names_the_file():
    with pytest.raises(HardwareError, match=r"bad\.toml: not valid TOML"):
        parse_hardware("[chip\npcus = ", "bad.toml")


def test_host_orchestration_uses_the_host_launch_cost():
    hw = parse_hardware(_with_line("assumptions", "orchestration", '"host"'), "host.toml")
    assert hw.launch_sync_s == hw.assumptions.launch_sync_host_s > load_hardware("sn40l").launch_sync_s
