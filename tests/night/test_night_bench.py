"""The bench's night-vision figures: with the shipped thresholds the rule switches once at
dusk and once at dawn through the simulator's noisy light, ignores torch sweeps, and reports
how late each switch came."""

from __future__ import annotations

from agent.bench.figures import Figures
from agent.bench.night_figures import NIGHT_FIGURES, night_figures
from agent.config import NightConfig


def test_night_figures_with_the_shipped_thresholds() -> None:
    """Two switches a day, no flaps, no switch from torch sweeps; each latency is at least the
    1 s settle time and below a minute."""
    fig = Figures()
    n = NightConfig()
    night_figures(fig, {"on_lux": n.on_lux, "off_lux": n.off_lux, "min_dwell_s": n.min_dwell_s})
    v = {k: fig.values[k].value for k in NIGHT_FIGURES}
    assert (v["night_switches_per_day"], v["night_flaps"], v["night_torch_switches"]) == (2, 0, 0)
    for key in ("night_dusk_latency_s", "night_dawn_latency_s"):
        assert isinstance(v[key], float) and 1.0 <= v[key] < 60.0
    assert [s["night"] for s in fig.series["night_switches"]] == [True, False]
