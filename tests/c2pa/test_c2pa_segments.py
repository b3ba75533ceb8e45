"""Every sealed segment carries a C2PA credential that the reference library validates after a
stock ``age -d``; tampering with media or credential, or a foreign CA, is reported."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import pytest
from c2pabench import Bench
from cryptography.hazmat.primitives import serialization

from agent.c2pa import TestCA, c2pa_status, credential_path
from agent.c2pa.validity import read_credential
from agent.evidence.canonical import parse_canonical
from agent.evidence.manifest import ClockInfo, MediaInfo, SegmentInfo, Timestamp, parse_envelope


def _decrypted_with_credential(bench: Bench, media: Path, out: Path) -> Path:
    plain = bench.decrypt(media, out)
    shutil.copy(credential_path(media), credential_path(plain))
    return plain


def _assertion(manifest: dict, label: str) -> dict | None:  # type: ignore[type-arg]
    for a in manifest["assertions"]:
        if a["label"] == label:
            return a["data"]  # type: ignore[no-any-return]
    return None


def test_every_segment_credential_is_trusted_and_bound(bench: Bench, clip: Path,
                                                       tmp_path: Path) -> None:
    """The reference Reader finds signature, test-CA chain and hash binding valid for each
    decrypted segment, and the credential names the logged evidence manifest."""
    store = bench.store()
    bench.seal(store, clip.read_bytes(), seq=0, fix=True)
    bench.seal(store, clip.read_bytes()[: len(clip.read_bytes()) // 2], seq=1, fix=False)
    logged = [parse_canonical(d)["manifest_sha256"] for _, d in store.log.entries()
              if parse_canonical(d).get("kind") == "segment"]
    store.close()
    assert len(bench.sealed) == 2
    for (media, signed), leaf_sha in zip(bench.sealed, logged, strict=True):
        assert signed.sha256 == leaf_sha
        plain = _decrypted_with_credential(bench, media, tmp_path / "out")
        assert c2pa_status(plain, bench.anchor, evidence_manifest_sha256=leaf_sha) == (
            "valid", "signature, certificate chain and hash binding verified")
        manifest = read_credential(plain, bench.anchor)
        assert manifest is not None
        assert manifest["signature_info"]["common_name"] == "BC-0001"
        assert manifest["signature_info"]["alg"] == "Ed25519"
        evidence = _assertion(manifest, "org.bodycam_agent.evidence")
        assert evidence is not None
        assert evidence["evidence_manifest_sha256"] == leaf_sha
        assert evidence["file"]["plain_sha256"] == hashlib.sha256(plain.read_bytes()).hexdigest()
        assert evidence["matter"] == {"id": "M-2026-117", "kind": "traffic stop"}
        assert evidence["clock"] == {"source": "gps", "est_error_ms": 20}
        on_disk = parse_envelope((media.parent / media.name.replace(".mp4.age",
                                                                    ".manifest.json")).read_bytes())
        assert on_disk.sha256 == leaf_sha
    first = read_credential(tmp_path / "out" / bench.sealed[0][0].name[:-4], bench.anchor)
    second = read_credential(tmp_path / "out" / bench.sealed[1][0].name[:-4], bench.anchor)
    assert first and second
    assert _assertion(first, "c2pa.metadata")["exif:GPSLatitude"] == "52,24.7407360N"  # type: ignore[index]
    assert _assertion(second, "c2pa.metadata") is None  # no fix, no location claimed


def test_bit_flip_in_media_is_invalid(bench: Bench, clip: Path, tmp_path: Path) -> None:
    """One flipped bit anywhere in the decrypted media breaks the hard binding."""
    store = bench.store()
    media, _ = bench.seal(store, clip.read_bytes())
    store.close()
    plain = _decrypted_with_credential(bench, media, tmp_path / "out")
    data = plain.read_bytes()
    for where in (0, len(data) // 3, len(data) - 1):  # ftyp, inside a fragment, the tail
        damaged = bytearray(data)
        damaged[where] ^= 0x10
        plain.write_bytes(bytes(damaged))
        state, reason = c2pa_status(plain, bench.anchor)
        assert state == "invalid"
        assert "assertion.dataHash.mismatch" in reason
    plain.write_bytes(data + b"\0")
    assert c2pa_status(plain, bench.anchor)[0] == "invalid"  # appended bytes too


def test_bit_flip_in_credential_is_invalid(bench: Bench, clip: Path, tmp_path: Path) -> None:
    """Flips in every signed part of the credential -- claim, an assertion, the certificate,
    the signature -- and truncation are reported invalid, never valid, never a traceback."""
    store = bench.store()
    media, signed = bench.seal(store, clip.read_bytes())
    store.close()
    plain = _decrypted_with_credential(bench, media, tmp_path / "out")
    cred = credential_path(plain).read_bytes()
    cert_der = bench.identity.certificate().public_bytes(serialization.Encoding.DER)
    places = {
        "evidence assertion": cred.index(signed.sha256.encode()) + 5,
        "claim": cred.index(b"c2pa.claim.v2") + 120,
        "certificate": cred.index(cert_der) + len(cert_der) // 2,
        "signature": len(cred) - 10,
    }
    for what, where in places.items():
        damaged = bytearray(cred)
        damaged[where] ^= 0x01
        state, reason = c2pa_status(plain, bench.anchor, credential=bytes(damaged))
        assert state == "invalid", f"flip in {what} not detected: {reason}"
    for cut in (0, 8, len(cred) // 2, len(cred) - 1):
        assert c2pa_status(plain, bench.anchor, credential=cred[:cut])[0] == "invalid"
    assert c2pa_status(plain, bench.anchor, credential=os.urandom(4000))[0] == "invalid"


def test_certificate_from_another_ca_is_untrusted(bench: Bench, clip: Path,
                                                  tmp_path: Path) -> None:
    """A reader that trusts another agency's CA reports the credential untrusted."""
    store = bench.store()
    media, _ = bench.seal(store, clip.read_bytes())
    store.close()
    plain = _decrypted_with_credential(bench, media, tmp_path / "out")
    other = TestCA.create(tmp_path / "other-ca", name="another agency")
    state, reason = c2pa_status(plain, other.pem)
    assert (state, "signingCredential.untrusted" in reason) == ("invalid", True)
    assert c2pa_status(plain, b"")[0] == "invalid"  # no anchors: nothing can be trusted


def test_missing_credential_is_absent(bench: Bench, clip: Path, tmp_path: Path) -> None:
    """A plain MP4 with no sidecar and nothing embedded reports absent."""
    state, _ = c2pa_status(clip, bench.anchor)
    assert state == "absent"


def test_credential_failure_never_fails_the_seal(bench: Bench, clip: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """If the credential cannot be written the segment is still sealed and logged."""
    store = bench.store()
    seg = store.open_segment(SegmentInfo("ab" * 16, 0, Timestamp("2026-11-27T10:00:00.000000Z",
                                                                   0), ClockInfo("gps", 20)))
    credential_path(seg.media_path).mkdir()  # a directory where the credential would go
    seg.sink.write(clip.read_bytes())
    with caplog.at_level(logging.WARNING, logger="agent.c2pa.sidecar"):
        signed = store.seal(seg, end=Timestamp("2026-11-27T10:00:02.000000Z", 2_000_000),
                            media=MediaInfo())
    assert any("no Content Credentials" in r.getMessage() for r in caplog.records)
    entries = [parse_canonical(d) for _, d in store.log.entries()]
    assert entries[-1]["manifest_sha256"] == signed.sha256
    store.close()


def test_still_picture_credential_is_trusted(bench: Bench, tmp_path: Path) -> None:
    """A still (``.jpg.age``) gets the same sidecar; readers see it as image/jpeg."""
    import subprocess
    jpeg = tmp_path / "still.jpg"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240",
                    "-frames:v", "1", str(jpeg)], check=True, capture_output=True, timeout=60)
    store = bench.store()
    info = SegmentInfo("cd" * 16, 0, Timestamp("2026-11-27T10:00:00.000000Z", 0),
                       ClockInfo("ntp", 50), extension="jpg")
    seg = store.open_segment(info)
    seg.sink.write(jpeg.read_bytes())
    signed = store.seal(seg, end=Timestamp("2026-11-27T10:00:00.000000Z", 0),
                        media=MediaInfo(video={"codec": "mjpeg"}, frames=1))
    store.close()
    assert seg.media_path.name.endswith(".jpg.age")
    plain = _decrypted_with_credential(bench, seg.media_path, tmp_path / "out")
    assert c2pa_status(plain, bench.anchor, evidence_manifest_sha256=signed.sha256)[0] == "valid"
    manifest = read_credential(plain, bench.anchor)
    assert manifest is not None and manifest["title"].endswith(".jpg")
