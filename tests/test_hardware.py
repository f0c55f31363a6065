"""Hardware files: the bundled SN40L numbers, user files, and errors that name the file and key."""

import functools
import re
from importlib import resources

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdsl.hardware import HardwareError, bundled_targets, check_relations, load_hardware, parse_hardware, range_of

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
    assert set(hw.sources) == {"chip", "memory.hbm", "memory.ddr", "internode"}
    section = ""
    above = ""  # the nearest line above that is not a key: a group of keys shares one comment
    for line in SN40L_TEXT.splitlines():
        if line.startswith("["):
            section = line
        if not re.match(r"\w+\s*=", line):
            above = line
        elif section in ("[assumptions]", "[internode]"):
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
    with pytest.raises(HardwareError, match=rf"my\.toml:\d+: \[{re.escape(section)}\] {key} = 'fast' has the wrong type"):
        parse_hardware(_with_line(section, key, '"fast"'), "my.toml")


def test_a_count_must_be_an_integer():
    with pytest.raises(HardwareError, match=r"my\.toml:13: \[chip\] pcus = 1040.5 has the wrong type; it must be a whole number from 1 to 1e6"):
        parse_hardware(_with_line("chip", "pcus", "1040.5"), "my.toml")


@given(st.sampled_from(NUMERIC_KEYS), st.integers(max_value=0))
def test_a_non_positive_value_is_named(where, value):
    section, key = where
    with pytest.raises(HardwareError, match=rf"\[{re.escape(section)}\] {key} = {value}; it must be"):
        parse_hardware(_with_line(section, key, str(value)), "my.toml")


def test_an_efficiency_cannot_exceed_one():
    with pytest.raises(HardwareError, match=r"stream_efficiency = 1.2; it must be a number from 0.001 to 1$"):
        parse_hardware(_with_line("assumptions", "stream_efficiency", "1.2"), "my.toml")


def test_a_choice_must_be_one_of_the_known_ones():
    with pytest.raises(HardwareError, match=r"allreduce_algorithm = 'butterfly'; it must be 'one-shot' or 'two-shot'"):
        parse_hardware(_with_line("assumptions", "allreduce_algorithm", '"butterfly"'), "my.toml")


def test_the_old_name_direct_reads_as_one_shot():
    hw = parse_hardware(_with_line("assumptions", "allreduce_algorithm", '"direct"'), "my.toml")
    assert hw.assumptions.allreduce_algorithm == "one-shot"


def test_invalid_toml_names_the_file():
    with pytest.raises(HardwareError, match=r"bad\.toml: not valid TOML"):
        parse_hardware("[chip\npcus = ", "bad.toml")


def test_host_orchestration_uses_the_host_launch_cost():
    hw = parse_hardware(_with_line("assumptions", "orchestration", '"host"'), "host.toml")
    assert hw.launch_sync_s == hw.assumptions.launch_sync_host_s > load_hardware("sn40l").launch_sync_s


# -- one validation for every source of a hardware value ------------------------------------------

FLOAT_KEYS = [(section, key) for section, key in NUMERIC_KEYS if not key.endswith("bytes") and key not in ("pcus", "pmus")]
NOT_FINITE = {"nan": "is not a number", "inf": "is infinite", "-inf": "is infinite"}


@pytest.mark.parametrize(("section", "key"), FLOAT_KEYS)
@pytest.mark.parametrize("value", NOT_FINITE)
def test_nan_and_inf_are_refused_with_the_file_line_and_key(section, key, value):
    text = _with_line(section, key, value)
    line = text.splitlines().index(f"{key} = {value}") + 1
    with pytest.raises(HardwareError, match=rf"^my\.toml:{line}: \[{re.escape(section)}\] {key} = -?(nan|inf) "
                                            rf"{NOT_FINITE[value]}; it must be a number from "):
        parse_hardware(text, "my.toml")


@pytest.mark.parametrize(("section", "key"), FLOAT_KEYS)
@pytest.mark.parametrize("value", ["5e-324", "2.2e-308", "1e308", "1e-13"])
def test_subnormal_tiny_and_huge_values_are_refused(section, key, value):
    with pytest.raises(HardwareError, match=rf"\] {key} = {re.escape(repr(float(value)))}; it must be a number from"):
        parse_hardware(_with_line(section, key, value), "my.toml")


@pytest.mark.parametrize(("section", "key"), [k for k in NUMERIC_KEYS if k not in FLOAT_KEYS])
def test_a_huge_integer_is_refused(section, key):
    with pytest.raises(HardwareError, match=rf"\] {key} = {10**30}; it must be a whole number from 1 to"):
        parse_hardware(_with_line(section, key, str(10**30)), "my.toml")


def test_ddr_faster_than_hbm_is_refused():
    text = _with_line("memory.ddr", "bandwidth_bytes_per_s", "2e12")
    with pytest.raises(HardwareError, match=r"^my\.toml: memory\.ddr\.bandwidth_bytes_per_s = 2e12 is more than "
                                            r"memory\.hbm\.bandwidth_bytes_per_s = 1\.6e12: DDR cannot be faster"):
        parse_hardware(text, "my.toml")
    parse_hardware(_with_line("memory.ddr", "bandwidth_bytes_per_s", "1.6e12"), "my.toml")  # as fast is allowed


def test_a_usable_fraction_that_leaves_no_unit_is_refused():
    one_pcu = _with_line("chip", "pcus", "1")
    parse_hardware(one_pcu, "my.toml")  # 0.9 of one PCU rounds to one
    with pytest.raises(HardwareError, match=r"chip\.usable_fraction = 0\.4 of chip\.pcus = 1 leaves no usable unit"):
        parse_hardware(one_pcu.replace("usable_fraction = 0.9", "usable_fraction = 0.4"), "my.toml")


def test_a_gpu_collective_cannot_beat_its_links():
    text = (resources.files("dfdsl.hardware") / "dgx_h100.toml").read_text(encoding="utf-8")
    nccl = text.replace("nccl_bus_bandwidth_bytes_per_s = 190e9", "nccl_bus_bandwidth_bytes_per_s = 500e9")
    with pytest.raises(HardwareError, match=r"nccl_bus_bandwidth_bytes_per_s = 5e11 is more than "
                                            r"node\.link_bandwidth_bytes_per_s = 4\.5e11"):
        parse_hardware(nccl, "gpu.toml")
    custom = re.sub(r"custom_allreduce_bandwidth_bytes_per_s = \S+", "custom_allreduce_bandwidth_bytes_per_s = 460e9", text)
    with pytest.raises(HardwareError, match=r"custom_allreduce_bandwidth_bytes_per_s = 4\.6e11 is more than"):
        parse_hardware(custom, "gpu.toml")


def test_the_gpu_software_section_is_checked():
    text = (resources.files("dfdsl.hardware") / "dgx_h100.toml").read_text(encoding="utf-8")
    with pytest.raises(HardwareError, match=r"gpu\.toml:\d+: \[gpu_software\] all_reduce = 'mpi'; it must be 'nccl-ring' or "):
        parse_hardware(text.replace('all_reduce = "custom"', 'all_reduce = "mpi"'), "gpu.toml")
    with pytest.raises(HardwareError, match=r"\[gpu_software\] cuda_graphs = 'yes'; it must be true or false"):
        parse_hardware(text.replace("cuda_graphs = true", 'cuda_graphs = "yes"'), "gpu.toml")
    with pytest.raises(HardwareError, match=r"\[gpu_software\] gemm_half_efficiency_columns = 0; it must be a number from 1"):
        parse_hardware(re.sub(r"gemm_half_efficiency_columns = \S+", "gemm_half_efficiency_columns = 0", text), "gpu.toml")
    with pytest.raises(HardwareError, match=r"gpu\.toml: missing section \[gpu_software\]"):
        parse_hardware(text[:text.index("\n[gpu_software]\n")], "gpu.toml")


SWEEP_SETS = {
    "launch_sync=-1": "--set launch_sync = -1.0; it must be a number from 1e-12 to 1 s [E023]",
    "stream_efficiency=5": "--set stream_efficiency = 5.0; it must be a number from 0.001 to 1 [E023]",
    "chip.pcus=-3": "--set chip.pcus = -3.0; it must be a whole number from 1 to 1e6 [E023]",
    "chip.pcus=1040.5": "--set chip.pcus = 1040.5 is not a whole number; it must be a whole number from 1 to 1e6",
    "hbm_bandwidth=nan": "--set hbm_bandwidth = nan is not a number; it must be a number from 1e6 to 1e15 bytes/s",
    "hbm_bandwidth=1.6e12,inf": "--set hbm_bandwidth = inf is infinite",
    "peak_flops=5e-324": "--set peak_flops = 5e-324; it must be a number from 1e9 to 1e18 FLOP/s",
    "hbm_bandwidth=1e308": "--set hbm_bandwidth = 1e+308; it must be",
    "ddr_bandwidth=1e11,2e12": "--set ddr_bandwidth=2e12: memory.ddr.bandwidth_bytes_per_s = 2e12 is more than "
                               "memory.hbm.bandwidth_bytes_per_s = 1.6e12",
}


@pytest.mark.parametrize(("option", "message"), SWEEP_SETS.items(), ids=SWEEP_SETS)
def test_sweep_values_get_the_checks_of_a_file(option, message, tmp_path):
    from fuzz.mutations import run_cli
    from test_input_files import TINY

    (tmp_path / "tiny.dfl").write_text(TINY, encoding="utf-8")
    outcome = run_cli(["sweep", str(tmp_path / "tiny.dfl"), "-q", "--workers", "1", "--set", option,
                       "-o", str(tmp_path / "out.csv")])
    assert outcome.code == 2 and outcome.stderr.startswith(f"dfdsl: error: {message}"), outcome.stderr
    assert not (tmp_path / "out.csv").exists()


def test_a_relation_is_checked_for_each_combination_of_sweep_values(tmp_path):
    """HBM down to 1e11 is fine with DDR at 1e11, not with DDR at 2e11: the combination is named."""
    from fuzz.mutations import run_cli
    from test_input_files import TINY

    (tmp_path / "tiny.dfl").write_text(TINY, encoding="utf-8")
    outcome = run_cli(["sweep", str(tmp_path / "tiny.dfl"), "-q", "--workers", "1", "--set", "hbm_bandwidth=1e11,1.6e12",
                       "--set", "ddr_bandwidth=1e11,2e11"])
    assert outcome.code == 2
    assert outcome.stderr.startswith("dfdsl: error: --set hbm_bandwidth=1e11 --set ddr_bandwidth=2e11: "), outcome.stderr


def test_the_errors_page_shows_the_message_sweep_prints():
    from pathlib import Path

    page = " ".join((Path(__file__).parent.parent / "docs" / "errors.md").read_text(encoding="utf-8").split())
    assert f"`dfdsl: error: {SWEEP_SETS['hbm_bandwidth=nan']} [E023]`" in page


@functools.cache
def _tiny_run() -> tuple:
    """The tiny model compiled once, for many simulations (compiling is the slow part)."""
    import tempfile
    from pathlib import Path

    from dfdsl.driver import CompileOptions, Compiler, load_model
    from test_input_files import TINY

    path = Path(tempfile.mkdtemp()) / "tiny.dfl"
    path.write_text(TINY, encoding="utf-8")
    model = load_model(path)
    return Compiler(), model, model.settings, CompileOptions()


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_hardware_in_range_gives_a_finite_report(data):
    """The ranges are tight enough: any values inside them (their ends included) that keep the
    relations give a report whose figures are finite and not negative (`make_report` checks)."""
    hw = load_hardware("sn40l")
    fields = [("chip", "peak_flops_per_s"), ("chip", "usable_fraction"), ("hbm", "bandwidth_bytes_per_s"),
              ("ddr", "bandwidth_bytes_per_s"),
              *(("assumptions", f.name) for f in attrs.fields(type(hw.assumptions)) if f.type == "float")]
    for section, field in fields:
        rule = range_of(field)
        value = data.draw(st.one_of(st.just(rule.low), st.just(rule.high), st.floats(rule.low, rule.high)),
                          label=f"{section}.{field}")
        hw = attrs.evolve(hw, **{section: attrs.evolve(getattr(hw, section), **{field: value})})
    try:
        check_relations(hw, "drawn")
    except HardwareError:
        return
    compiler, model, run, options = _tiny_run()
    report = compiler.simulate(model, run, options, hardware=hw).report
    assert 0 < report["ms_per_token"] < float("inf")


def test_a_figure_that_comes_out_nan_is_an_internal_error_not_a_number(monkeypatch, tmp_path):
    """The last line of defence: were the simulator to produce NaN, the report refuses to print it."""
    from fuzz.mutations import run_cli
    from test_input_files import TINY

    from dfdsl.report import make_report

    def poisoned(result, *args, **kwargs):
        result = attrs.evolve(result, breakdown_ms={**result.breakdown_ms, "stream": float("nan")})
        return make_report(result, *args, **kwargs)

    monkeypatch.setattr("dfdsl.driver.make_report", poisoned)
    (tmp_path / "tiny.dfl").write_text(TINY, encoding="utf-8")
    outcome = run_cli(["run", str(tmp_path / "tiny.dfl")])
    assert outcome.code == 1 and "nan" not in outcome.stdout
    assert "internal error: ReportError: the report's breakdown_ms.stream came out nan" in outcome.stderr


def test_the_errors_page_states_the_ranges_of_the_code():
    from pathlib import Path

    from dfdsl.hardware import COUNT_KEYS, format_value

    section = (Path(__file__).parent.parent / "docs" / "errors.md").read_text(encoding="utf-8").split(
        "## E023")[1].split("\n## ")[0]
    rows = {cells[0]: cells[1] for cells in (
        [c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| `"))}
    for names, rule in rows.items():
        example = re.findall(r"`(\w+)`", names)[0]
        key = example if example in COUNT_KEYS else f"x{example}"
        expected = range_of(key)
        assert rule == f"{format_value(expected.low)} to {format_value(expected.high)}{expected.unit}", names
    assert len(rows) == 6
