"""The lab bench: drive a recorder through scripted scenarios, measure its evidence, judge it.

``bodycam bench`` (:func:`agent.bench.bench_cli.bench_main`) runs :func:`agent.bench.run.run_bench`
against a simulated unit or one running as a service, measures every figure from the recorded
evidence itself, judges the figures against spec files (``config/spec/*.toml``) and writes
``report.html``, ``report.json`` and ``summary.md``.
"""

from agent.bench.run import FAULTS, BenchOptions, run_bench
from agent.bench.spec import Check, Measurement, Spec, Verdict, judge, load_spec

__all__ = ["FAULTS", "BenchOptions", "Check", "Measurement", "Spec", "Verdict", "judge",
           "load_spec", "run_bench"]
