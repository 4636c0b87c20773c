"""The keep rule and the measurement that feeds it (``gotune numa-measure`` in the agent)."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest

from gotune.agent.cli import main as agent_main
from gotune.agent.numa_measure import read_record, verdict
from gotune.agent.stats import MIN_RUNS_FOR_VERDICT, NOISE_FRACTION
from gotune.facts.state import parse_measured


def test_clear_gain_is_kept() -> None:
    plain = [1.00, 1.02, 0.99, 1.01, 1.00]
    wrapped = [0.90, 0.91, 0.89, 0.92, 0.90]
    v = verdict(plain, wrapped)
    assert v["keep"] is True and v["verdict"] == "faster"
    assert v["gain"] == pytest.approx(0.1, abs=0.01)
    assert v["plain_median_s"] == 1.00 and v["wrapped_median_s"] == 0.90
    assert v["plain_range_s"] == [0.99, 1.02] and v["wrapped_range_s"] == [0.89, 0.92]


def test_steady_gain_below_verify_noise_fraction_is_not_kept() -> None:
    plain = [1.0] * 5
    wrapped = [1.0 - NOISE_FRACTION / 2] * 5
    v = verdict(plain, wrapped)
    assert v["threshold"] == NOISE_FRACTION and v["keep"] is False


def test_gain_within_the_noise_is_not_kept() -> None:
    # Median 8% faster, but one wrapped run is as slow as the plain ones: the ranges overlap.
    plain = [1.0, 1.01, 0.99, 1.0, 1.02, 1.0, 0.98]
    wrapped = [0.92, 1.0, 0.92, 0.91, 0.93, 0.92, 0.92]
    v = verdict(plain, wrapped)
    assert v["gain"] == pytest.approx(0.08, abs=0.005)
    assert v["keep"] is False and v["verdict"] == "no measurable difference"


def test_too_few_pairs_never_keep_a_wrapper() -> None:
    few = MIN_RUNS_FOR_VERDICT - 1
    v = verdict([1.0] * few, [0.5] * few)
    assert v["keep"] is False


def test_slower_wrapper_is_not_kept() -> None:
    v = verdict([0.4, 0.41, 0.4, 0.4, 0.41], [0.44, 0.45, 0.43, 0.44, 0.45])
    assert v["gain"] < 0 and v["keep"] is False and v["verdict"] == "slower"


def test_unpaired_runs_are_refused() -> None:
    with pytest.raises(ValueError):
        verdict([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        verdict([], [])


@pytest.mark.parametrize("text", ["", "{", "[]", '{"tools": 3}', "\x00\xff"])
def test_garbled_record_reads_as_empty(tmp_path: Path, text: str) -> None:
    path = tmp_path / "numa.json"
    path.write_text(text, errors="surrogateescape")
    assert read_record(str(path))["tools"] == {}
    assert parse_measured(text) == {}


def main(argv: list[str]) -> int:
    """``python3 gotune.pyz numa-measure ARGV...`` in this process."""
    return agent_main(["numa-measure", *argv])


def _exe(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def test_measurement_removes_a_slower_wrapper_and_records_interleaved_figures(
    tmp_path: Path,
) -> None:
    me = pwd.getpwuid(os.geteuid()).pw_name
    log = tmp_path / "order"
    real = _exe(tmp_path / "tool", f"#!/bin/sh\necho plain >> {log}\n")
    wrapper = _exe(
        tmp_path / "wrapper", f"#!/bin/sh\necho wrapped >> {log}\nsleep 0.05\n"
    )  # only slower
    record = tmp_path / "state" / "numa.json"
    rc = main(
        [
            "--tool",
            "tool",
            "--wrapper",
            wrapper,
            "--real",
            real,
            "--user",
            me,
            "--pairs",
            "2",
            "--numactl-args=--interleave=0,1",
            "--record",
            str(record),
            "--cwd",
            str(tmp_path),
            "--remove-unhelpful",
            "--",
            "arg",
        ]
    )
    assert rc == 0
    entry = json.loads(record.read_text())["tools"]["tool"]
    assert entry["keep"] is False and entry["removed"] is True
    assert entry["numactl_args"] == ["--interleave=0,1"] and entry["workload"] == ["arg"]
    assert len(entry["plain_s"]) == 2 and entry["wrapped_median_s"] > entry["plain_median_s"]
    assert not Path(wrapper).exists()
    # Warm-up pair, then ABBA: plain/wrapped, wrapped/plain, plain/wrapped.
    assert log.read_text().split() == ["plain", "wrapped", "wrapped", "plain", "plain", "wrapped"]
    assert oct(record.stat().st_mode & 0o777) == "0o644"


def test_failing_workload_is_recorded_and_not_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    me = pwd.getpwuid(os.geteuid()).pw_name
    real = _exe(tmp_path / "tool", "#!/bin/sh\necho 'disk full' >&2\nexit 3\n")
    wrapper = _exe(tmp_path / "wrapper", f'#!/bin/sh\nexec {real} "$@"\n')
    record = tmp_path / "numa.json"
    record.write_text(json.dumps({"version": 1, "tools": {"other": {"keep": True}}}))
    main(
        [
            "--tool",
            "tool",
            "--wrapper",
            wrapper,
            "--real",
            real,
            "--user",
            me,
            "--record",
            str(record),
            "--",
            "x",
        ]
    )
    tools = json.loads(record.read_text())["tools"]
    assert tools["other"] == {"keep": True}  # other tools' figures are kept
    assert tools["tool"]["keep"] is False and "exited 3: disk full" in tools["tool"]["error"]
    assert Path(wrapper).exists()  # without --remove-unhelpful nothing is deleted
    assert json.loads(capsys.readouterr().out)["tool"] == "tool"
