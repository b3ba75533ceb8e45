"""The uploader's rules as instant tests: rate cap, back-off, yielding to the camera, the
upload book across a restart. No threads, no sleeps."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from hypothesis import given
from hypothesis import strategies as st

from agent.offload.book import BOOK_FILE, UploadBook, UploadRef
from agent.offload.pacing import Backoff, PressureGauge, RateLimiter
from agent.offload.uploader import OffloadStatus


@given(st.integers(1_000, 10_000_000), st.lists(st.integers(1, 1 << 20), min_size=1,
                                                 max_size=50))
def test_the_rate_cap_holds_over_any_sequence_of_chunks(rate: int, chunks: list[int]) -> None:
    """Sending each chunk after the wait the limiter names never beats ``rate`` by more than
    the one-second burst it allows."""
    lim = RateLimiter(rate)
    now = 0.0
    for n in chunks:
        now += lim.delay(n, now)
    assert sum(chunks) <= rate * now + rate + 1e-6 * rate


def test_no_cap_means_no_wait_and_the_chunk_shrinks_under_a_cap() -> None:
    """``max_rate = 0`` never waits; a cap makes PATCHes about a quarter second of it."""
    assert RateLimiter(0).delay(1 << 30, 0.0) == 0.0
    assert RateLimiter(0).chunk(1 << 20) == 1 << 20
    assert RateLimiter(400_000).chunk(1 << 20) == 100_000
    assert RateLimiter(1_000).chunk(1 << 20) == 16 << 10


def test_backoff_doubles_to_its_cap_and_a_success_starts_it_again() -> None:
    b = Backoff(5.0)
    assert [b.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    b.reset()
    assert b.next() == 0.5


def test_the_uploader_yields_while_the_queue_is_deep_or_a_frame_was_dropped() -> None:
    """A queue deeper than the limit is strain while it lasts; a dropped frame is strain once,
    at the first look after it."""
    g = PressureGauge(max_depth=30)
    assert not g.strained(0, 0)
    assert g.strained(31, 0) and not g.strained(30, 0)
    assert g.strained(0, 1) and not g.strained(0, 1)


def test_the_upload_book_survives_a_restart_and_ignores_other_stations_and_bytes(
        tmp_path: Path) -> None:
    """An upload recorded before a crash is found by the next process for the same station
    and ciphertext only; a damaged book costs a re-upload, never an error."""
    book = UploadBook(tmp_path)
    ref = UploadRef("https://st:8443", "/v1/devices/BC-1/uploads/" + "a" * 32, "c" * 64)
    book.put(3, ref)
    again = UploadBook(tmp_path)
    assert again.get(3, "https://st:8443", "c" * 64) == ref
    assert again.get(3, "https://other:8443", "c" * 64) is None
    assert again.get(3, "https://st:8443", "d" * 64) is None
    again.drop(3)
    assert UploadBook(tmp_path).get(3, "https://st:8443", None) is None
    (tmp_path / BOOK_FILE).write_bytes(b"\x00{not json")
    assert len(UploadBook(tmp_path)) == 0


def test_offload_fields_are_valid_telemetry_and_unknowns_are_omitted() -> None:
    """What status adds is valid MQTT telemetry (agent/sync/schemas/telemetry.json): no
    nulls -- an empty backlog has no oldest age and a clean run no last error."""
    schema = json.loads((Path(__file__).resolve().parents[2] / "agent" / "sync" / "schemas"
                         / "telemetry.json").read_text())
    base = {"device_id": "BC-1", "at": "2026-11-30T00:00:00Z", "outbox_depth": 0}
    busy = OffloadStatus("unreachable", 3, 3_000_000, 125.7, "GET /v1/station: refused" * 20,
                         1_000, 2).fields()
    calm = OffloadStatus("idle", 0, 0, None, None, 0, 0).fields()
    for fields in (busy, calm):
        jsonschema.validate({**base, **fields}, schema)
    assert busy["offload_oldest_s"] == 125 and len(busy["offload_last_error"]) == 200
    assert "offload_oldest_s" not in calm and "offload_last_error" not in calm
