"""The store's index of sealed segments: derived from the log, small per segment, and a
malformed entry in it matches no receipt."""

from __future__ import annotations

import hashlib
import tracemalloc

from agent.evidence.canonical import canonical_json
from agent.evidence.sealed_index import SealedIndex, digest_bytes


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def segment(seq: int, cipher: object, manifest: str) -> bytes:
    return canonical_json({"kind": "segment", "device_seq": seq, "recording_id": "r" * 32,
                           "seq": seq, "path": f"recordings/x/{seq}", "cipher_sha256": cipher,
                           "manifest_sha256": manifest})


def ack(seq: int, cipher: object, manifest: str, receipt: str) -> bytes:
    return canonical_json({"kind": "event", "type": "acknowledged", "device_seq": seq,
                           "cipher_sha256": cipher, "manifest_sha256": manifest,
                           "receipt_sha256": receipt, "utc": "2026-11-27T10:00:00.000000Z"})


def test_the_index_is_what_the_log_says() -> None:
    """Segments by device_seq with their leaf; an acknowledgement counts only when it names
    a segment logged before it with the same hashes; the first entry of a device_seq wins."""
    entries = [segment(0, h("c0"), h("m0")), ack(0, h("c0"), h("m0"), h("r0")),
               ack(1, h("c1"), h("m1"), h("r1")),              # before its segment: ignored
               segment(1, h("c1"), h("m1")),
               ack(1, h("c1"), h("other"), h("r1")),           # other hashes: ignored
               segment(1, h("c9"), h("m9"))]                   # a second entry: ignored
    index = SealedIndex.from_log(enumerate(entries))
    s0, s1 = index.get(0), index.get(1)
    assert s0 is not None and s1 is not None and index.get(2) is None
    assert (s0.cipher_sha256, s0.manifest_sha256, s0.index) == (h("c0"), h("m0"), 0)
    assert (s1.cipher_sha256, s1.manifest_sha256, s1.index) == (h("c1"), h("m1"), 3)
    a0 = index.acknowledgement(0)
    assert a0 is not None and (a0.ack_index, a0.receipt_sha256) == (1, h("r0"))
    assert index.acknowledgement(1) is None
    assert index.last_seq() == 1 and SealedIndex().last_seq() == -1


def test_digests_are_kept_as_raw_bytes() -> None:
    """32 bytes per digest, not a 64-character string: the index grows with every segment."""
    index = SealedIndex()
    index.add_segment(7, cipher_sha256=h("c"), manifest_sha256=h("m"), index=3)
    sealed = index.get(7)
    assert sealed is not None
    assert sealed.cipher == bytes.fromhex(h("c")) and len(sealed.manifest) == 32
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        big = SealedIndex()
        for i in range(2000):
            big.add_segment(1000 + i, cipher_sha256=h(f"c{i}"), manifest_sha256=h(f"m{i}"),
                            index=5000 + i)
        per_segment = (tracemalloc.get_traced_memory()[0] - before) / 2000
    finally:
        tracemalloc.stop()
    assert per_segment < 330, per_segment  # two hex strings alone took 226 bytes; ~280 now


def test_a_malformed_hash_matches_nothing() -> None:
    """A segment entry whose hashes are not lowercase SHA-256 hex is indexed (its device_seq
    is used) but no acknowledgement, receipt or eviction can ever name it."""
    for bad in (None, "", "ab", h("x").upper(), "zz" * 32, 7):
        assert digest_bytes(bad) == b""
        index = SealedIndex.from_log(enumerate([segment(0, bad, h("m")),
                                                ack(0, bad, h("m"), h("r"))]))
        sealed = index.get(0)
        assert sealed is not None and not sealed.names(bad, h("m"))
        assert index.acknowledgement(0) is None and index.last_seq() == 0
