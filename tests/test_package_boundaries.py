"""Which part of the product may lean on which: the boundaries the layout promises.

The station is back-office software an agency runs on its own server: it shares the evidence
code (the format, verification, proofs) with the recorder, and must not carry the recorder's
machinery (a station importing the pipeline would start depending on camera timing, GPIO or
the agent's state). The recording pipeline, for its part, must not know how its segments are
shipped (MQTT, uploads): those hear about sealed segments through the side channel. Read from
the source with the same graph as tests/test_import_graph.py.
"""

from __future__ import annotations

from tests.test_import_graph import import_graph

DEVICE_ONLY = ("agent.app", "agent.recording", "agent.command", "agent.upkeep", "agent.clock",
               "agent.power", "agent.triggers", "agent.night", "agent.sync.fleet_sync",
               "agent.sync.link", "agent.offload")
SHIPPING = ("agent.sync", "agent.offload", "agent.station", "agent.witness")


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _reached(graph: dict[str, set[str]], module: str) -> set[str]:
    """Everything ``module`` imports, directly or through other modules."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for dep in graph.get(todo.pop(), set()) - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_the_station_imports_nothing_of_the_recorder() -> None:
    """Not even through the evidence code it shares."""
    graph = import_graph()
    station = {m for m in graph if _under(m, ("agent.station",))}
    assert len(station) > 20  # the package was really read
    leaks = {m: sorted(d for d in _reached(graph, m) if _under(d, DEVICE_ONLY)) for m in station}
    assert not {m: d for m, d in leaks.items() if d}, leaks


def test_the_evidence_code_imports_nothing_of_the_recorder() -> None:
    """The format, the store, verify and proofs are what the station, a defence expert's
    ``bodycam verify`` and the device share: the recorder's machinery is none of theirs."""
    graph = import_graph()
    evidence = {m for m in graph if _under(m, ("agent.evidence",))}
    assert "agent.evidence.store" in evidence
    leaks = {m: sorted(d for d in graph[m] if _under(d, DEVICE_ONLY)) for m in evidence}
    assert not {m: d for m, d in leaks.items() if d}, leaks


def test_the_recording_pipeline_does_not_know_how_segments_leave_the_device() -> None:
    graph = import_graph()
    pipeline = {m for m in graph if _under(m, ("agent.recording",))}
    assert "agent.recording.recorder" in pipeline
    leaks = {m: sorted(d for d in graph[m] if _under(d, SHIPPING)) for m in pipeline}
    assert not {m: d for m, d in leaks.items() if d}, leaks
