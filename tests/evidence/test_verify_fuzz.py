"""The verifier under fuzzing: no input makes it raise or hang, and tampering is never missed.

A bounded mutation-fuzzing run over a real recorded directory runs here; the seeds that
once found a defect are kept in ``verify_corpus.json`` and replayed every run. Long runs:
``scripts/fuzz_verify.py --cases 5000``.
"""

from __future__ import annotations

import contextlib
import json
import os
from functools import partial
from pathlib import Path

import pytest
from evbench import AgencyKey, open_store, write_recording
from hypothesis import given, settings
from hypothesis import strategies as st
from verify_fuzz import make_base, run_case

from agent.evidence.keys import DeviceKey
from agent.evidence.log import replay_entries
from agent.evidence.manifest import parse_envelope
from agent.evidence.shape import entry_problem, manifest_problem
from hw.errors import LogCorrupt, VerificationError

CORPUS = Path(__file__).with_name("verify_corpus.json")
CASES = int(os.environ.get("BODYCAM_FUZZ_CASES", "60"))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, agency: AgencyKey) -> tuple[Path, DeviceKey]:
    root = tmp_path_factory.mktemp("fuzzbase") / "data"
    key = make_base(root, partial(open_store, agency=agency), write_recording)
    return root, key


def test_mutation_fuzzer(base: tuple[Path, DeviceKey], tmp_path: Path) -> None:
    """A bounded run of seeded mutations: no exception, no hang, no tampering missed."""
    root, key = base
    caught = 0
    for seed in range(1000, 1000 + CASES):
        case, report = run_case(root, tmp_path / "case", seed, key, [key.public_bytes])
        caught += case.tampered and not report.ok
    assert caught > CASES // 3  # the fuzzer really tampers (a fuzzer that cannot fail is none)


def test_kept_corpus(base: tuple[Path, DeviceKey], tmp_path: Path) -> None:
    """Seeds that once broke an invariant are replayed on every run."""
    root, key = base
    seeds = json.loads(CORPUS.read_text())["seeds"]
    assert seeds
    for entry in seeds:
        run_case(root, tmp_path / "case", entry["seed"], key, [key.public_bytes])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=6),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_manifest_parser_takes_any_bytes(data: bytes) -> None:
    """Arbitrary bytes are a manifest or a VerificationError, nothing else."""
    try:
        signed = parse_envelope(data)
    except VerificationError:
        return
    manifest_problem(signed.manifest)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_shape_checks_take_any_json(value: object) -> None:
    """Any JSON value gets an answer from the shape checks, never an exception."""
    for doc in (value, {"kind": "segment", "x": value}, {"kind": "event", "type": "eviction",
                                                         "device_seq": value}):
        assert entry_problem(doc) is None or isinstance(entry_problem(doc), str)
    assert manifest_problem(value) is None or isinstance(manifest_problem(value), str)
    assert isinstance(manifest_problem({"device_id": "d", "file": value}), str)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_log_replay_takes_any_bytes(data: bytes) -> None:
    """Arbitrary bytes replay to records (maybe a torn tail) or raise LogCorrupt."""
    with contextlib.suppress(LogCorrupt):
        replay_entries(data)
