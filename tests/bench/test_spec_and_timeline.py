"""Spec files, judging and the timeline arithmetic, on hand-built inputs (no unit needed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from agent.bench.bench_cli import DEFAULT_SPECS, bench_main
from agent.bench.readback import Recording, SegmentMedia
from agent.bench.spec import Measurement, judge, load_spec
from agent.bench.svg import histogram, line_chart
from agent.bench.timeline import av_pairs, cadence, segment_gaps
from hw.errors import ConfigError

F = 40_000  # 25 fps


def seg(seq: int, pts: list[int], *, luma: list[float] | None = None,
        beeps: list[int] | None = None) -> SegmentMedia:
    m: dict[str, Any] = {"seq": seq, "media": {"video": {"fps": 25}}, "start": {"mono_us": pts[0]}}
    return SegmentMedia(m, Path(f"s{seq}.mp4.age"), video_pts_us=pts,
                        luma=luma or [16.0] * len(pts), beeps_us=beeps or [])


def test_shipped_specs_load_and_name_their_sources() -> None:
    """Both shipped specs parse; every check cites a clause and a source."""
    for path in DEFAULT_SPECS:
        spec = load_spec(path)
        assert spec.checks
        assert all(c.clause and c.source for c in spec.checks)
    gat = load_spec(DEFAULT_SPECS[1])
    assert not any(c.confirmed for c in gat.checks)  # nothing in it checked against the text


@pytest.mark.parametrize(("body", "needle"), [
    ("", "has no"),
    ('[[check]]\nid="a"\nclause="c"\nmetric="m"\nop=">"\nthreshold=1\nunit="u"\n', "op must"),
    ('[[check]]\nid="a"\nclause="c"\nmetric="m"\nop=">="\nunit="u"\n', "threshold"),
    ('[[check]]\nid="a"\nclause="c"\nmetric="m"\nop=">="\nthreshold="x"\nunit="u"\n', "text"),
])
def test_bad_spec_is_refused_with_the_reason(tmp_path: Path, body: str, needle: str) -> None:
    """A malformed spec names the file and the problem."""
    p = tmp_path / "s.toml"
    p.write_text(body)
    with pytest.raises(ConfigError, match=needle):
        load_spec(p)


def test_judge_pass_fail_and_not_measured(tmp_path: Path) -> None:
    """A missing figure is 'not measured' with the reason, never a pass."""
    p = tmp_path / "s.toml"
    p.write_text("".join(
        f'[[check]]\nid="{i}"\nclause="C{i}"\nmetric="{m}"\nop="{op}"\nthreshold={t}\nunit="u"\n'
        for i, m, op, t in (("a", "x", ">=", 10), ("b", "x", "<=", 5), ("c", "y", "==", 0),
                            ("d", "z", "==", 1))))
    v = judge(load_spec(p), {"x": Measurement(7.0, "u"), "y": Measurement(0, "u"),
                             "z": Measurement(None, "u", "needs the simulator")})
    assert [x.outcome for x in v] == ["fail", "fail", "pass", "not measured"]
    assert v[3].detail == "needs the simulator"


def test_cadence_counts_drops_duplicates_and_jitter_across_a_boundary() -> None:
    """Two frames lost at a roll, one repeated timestamp, one late frame by 3 ms."""
    a = seg(0, [0, F, 2 * F, 3 * F + 3000])
    b = seg(1, [6 * F, 7 * F, 7 * F, 8 * F])  # 4F and 5F never arrived; 7F twice
    rec = Recording("r", [a, b])
    cad = cadence(rec)
    assert (cad.frames, cad.dropped, cad.duplicated) == (8, 2, 1)
    assert cad.jitter_max_ms == 3.0
    assert segment_gaps(rec) == [(1, 77.0)]  # 6F - (3F+3ms + F) = 2F - 3 ms
    rounding = Recording("r", [seg(0, [0, F]), seg(1, [2 * F + 11, 3 * F])])
    assert segment_gaps(rounding) == [(1, 0.0)]  # 11 µs of 90 kHz rounding is no gap


def test_av_pairs_place_the_flash_mid_frame_and_pair_the_nearest_beep() -> None:
    """A flash lit at frame 50 and a beep 100 ms later: offset 100 + half a frame."""
    pts = [i * F for i in range(100)]
    luma = [16.0] * 100
    luma[50] = 235.0
    rec = Recording("r", [seg(0, pts, luma=luma, beeps=[50 * F + 100_000, 90 * F])])
    pairs = av_pairs(rec)
    assert len(pairs) == 1
    assert pairs[0].offset_ms == pytest.approx(120.0)
    assert pairs[0].t_s == 2.0


def test_no_flash_no_pairs() -> None:
    """A picture that never flashes yields no pairs rather than a made-up offset."""
    rec = Recording("r", [seg(0, [i * F for i in range(50)], beeps=[F])])
    assert av_pairs(rec) == []


def test_plots_are_well_formed_svg() -> None:
    """Both chart kinds parse as XML, with or without data."""
    for svg in (histogram([40.0] * 50 + [80.0], title="t <&>", xlabel="ms", marker=40.0),
                histogram([], title="t", xlabel="x"),
                line_chart([("a", [(0, 1), (1, 2)]), ("b", [(0, 5), (1, 3)])], title="t",
                           xlabel="x", ylabel="y", y2label="z", hlines=((1.5, "lim"),)),
                line_chart([("a", [])], title="t", xlabel="x", ylabel="y")):
        ET.fromstring(svg)


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad spec or a fault on a real unit is a usage error (exit 2), nothing is run."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[spec]\n")
    assert bench_main(["--spec", str(bad), "--report", str(tmp_path / "r")]) == 2
    assert "no [[check]]" in capsys.readouterr().err
    assert bench_main(["--hw", "pi", "--fault", "gap-1s", "--report", str(tmp_path / "r")]) == 2
    assert "simulated unit" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_main(["--fault", "no-such-fault"])
