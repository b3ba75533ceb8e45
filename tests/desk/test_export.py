"""``bodycam station export``: a real recording, offloaded to a real station, exported as a
court bundle that plays as one continuous timeline, verifies offline, and betrays a flipped bit
in any of its files; every export is recorded in the station's index."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.c2pa import c2pa_status
from agent.c2pa.sidecar import ContentCredentials
from agent.c2pa.testca import ensure_sim_identity
from agent.c2pa.validity import read_credential
from agent.evidence.age import Identity
from agent.evidence.bundle import HASH_LIST, check_bundle
from agent.evidence.checkpoint import Checkpoint, sign_checkpoint
from agent.evidence.keys import DeviceKey
from agent.evidence.log import origin_for, replay_entries
from agent.evidence.manifest import parse_envelope
from agent.evidence.merkle import consistency_proof, leaf_hash, root_of
from agent.witness import WitnessClient
from tests.desk.conftest import DEVICE, Desk
from tests.station.harness import bodycam, index_rows


def _station(desk: Desk) -> tuple[str, ...]:
    return ("--config", str(desk.station.config), "--data-dir", str(desk.station.data_dir))


@pytest.fixture(scope="module")
def bundle(desk: Desk, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recording exported once, by a named person."""
    out = tmp_path_factory.mktemp("export") / "bundle"
    done = bodycam("station", "export", desk.recording_id[:8], *_station(desk), "--identity",
                   str(desk.identity), "--out", str(out), "--by", "Sgt. A. Clerk", check=False)
    assert done.returncode == 0, done.stderr
    return out


def _probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_entries",
                          "stream=codec_type,start_time,nb_read_packets:format=duration",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def _video_pts(path: Path) -> list[float]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                          "packet=pts_time", "-of", "csv=p=0", str(path)], capture_output=True,
                         text=True, check=True)
    return sorted(float(x) for x in out.stdout.split())


def test_joined_mp4_is_one_continuous_timeline_of_every_frame(bundle, desk):
    """ffprobe: the joined file's video packets are the sum of the segments' (and of the
    signed manifests' frame counts); its timeline starts at 0 and every frame sits at its
    segment's own time plus the segment's manifest start (to 1 ms), so each join is the
    recording's real time; its duration is the recording's; ffmpeg decodes it cleanly."""
    marker = json.loads((bundle / "BODYCAM-BUNDLE.json").read_text())
    assert len(marker["segments"]) == desk.segments >= 2
    seg_counts = {"video": 0, "audio": 0}
    for s in marker["segments"]:
        for st in _probe(bundle / s["decrypted"])["streams"]:
            seg_counts[st["codec_type"]] += int(st["nb_read_packets"])
    manifests = [json.loads((bundle / s["manifest"]).read_text())["manifest"]
                 for s in marker["segments"]]
    joined = bundle / marker["joined"]["file"]
    probe = _probe(joined)
    counts = {st["codec_type"]: int(st["nb_read_packets"]) for st in probe["streams"]}
    assert counts == seg_counts
    assert counts["video"] == sum(m["media"]["frames"] for m in manifests)
    pts = _video_pts(joined)
    firsts = [m["media"]["video"]["first_pts_us"] for m in manifests]
    expected: list[float] = []
    for s, first in zip(marker["segments"], firsts, strict=True):
        expected += [p + (first - firsts[0]) / 1e6 for p in _video_pts(bundle / s["decrypted"])]
    assert pts[0] == 0.0
    assert len(pts) == len(expected)
    assert max(abs(a - b) for a, b in zip(pts, expected, strict=True)) < 0.001
    interval = 1 / manifests[0]["media"]["video"]["fps"]
    total_us = manifests[-1]["end"]["mono_us"] - manifests[0]["start"]["mono_us"]
    assert abs(float(probe["format"]["duration"]) * 1e6 - total_us) < 2 * interval * 1e6
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(joined), "-f", "null", "-"],
                             capture_output=True, text=True, check=False)
    assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr


def test_bundle_verifies_offline_with_our_tool_and_stock_tools(bundle, desk):
    """bodycam verify BUNDLE passes (self-contained keys are named as such; with the
    registered device key, the station's receipt key and its witness key given, they are
    not), sha256sum -c passes, and the bundle holds what a court needs."""
    done = bodycam("verify", str(bundle), "--json", check=False)
    assert done.returncode == 0, done.stdout
    codes = [f["code"] for f in json.loads(done.stdout)["findings"]]
    assert "self_trusted_keys" in codes
    assert codes.count("segment") == desk.segments
    assert {"hash_list", "history", "joined", "witness"} <= set(codes)
    info = json.loads(bodycam("station", "info", *_station(desk), "--json").stdout)
    station_pub = bundle.parent / "station.b64"
    station_pub.write_text(info["receipt_key"])
    done = bodycam("verify", str(bundle), "--json", "--pubkey",
                   str(desk.device_data / "keys" / "device.pub"), "--station-key",
                   str(station_pub), "--witness", info["witness_vkey"], check=False)
    assert done.returncode == 0, done.stdout
    assert "self_trusted_keys" not in done.stdout
    assert subprocess.run(["sha256sum", "--quiet", "-c", HASH_LIST], cwd=bundle,
                          check=False).returncode == 0
    for name in ("report.html", "report.json", "EVIDENCE-FORMAT.md", "track.gpx",
                 "coverage.json", "coverage.txt", "keys/device.pub", "proofs/checkpoint.txt"):
        assert (bundle / name).is_file(), name
    assert len(list(bundle.glob("proofs/inclusion-*.json"))) == desk.segments
    assert list(bundle.glob("proofs/consistency-*.json")), "no consistency proof"
    assert len(list(bundle.glob("receipts/*.json"))) == desk.segments
    report = (bundle / "report.html").read_text()
    assert "Every check passed" in report and "witness" in report
    coverage = json.loads((bundle / "coverage.json").read_text())
    assert [m["code"] for m in coverage["matters"]] == ["XCJC"]


def test_a_flipped_bit_in_any_file_is_caught(bundle, tmp_path):
    """One byte changed (seeded position) in each file of the bundle in turn: the check fails
    and names that file; restored, it passes again."""
    work = tmp_path / "b"
    shutil.copytree(bundle, work)
    rng = random.Random(20261130)
    files = sorted(p for p in work.rglob("*") if p.is_file())
    assert len(files) >= 20
    for path in files:
        data = path.read_bytes()
        at = rng.randrange(len(data))
        path.write_bytes(data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:])
        report = check_bundle(work)
        rel = path.relative_to(work).as_posix()
        assert not report.ok, rel
        named = {f[2] for f in report.findings if f[0] == "fail"}
        assert rel in named or (rel == HASH_LIST and named), (rel, report.render())
        path.write_bytes(data)
    assert check_bundle(work).ok


def _rehash(root: Path) -> None:
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}"
             for p in sorted(root.rglob("*")) if p.is_file() and p.name != HASH_LIST]
    (root / HASH_LIST).write_text("\n".join(lines) + "\n")


def test_a_rewritten_bundle_with_a_fresh_hash_list_is_still_caught(bundle, tmp_path):
    """An adversary who also rewrites MANIFEST.sha256: an altered decrypted segment, a joined
    MP4 missing a segment, the witness's cosignature moved onto another checkpoint, or an
    extra file are each still caught by what the signatures and frame counts prove."""
    marker = json.loads((bundle / "BODYCAM-BUNDLE.json").read_text())
    cases = {"plaintext_altered": marker["segments"][1]["decrypted"],
             "joined_frames": marker["joined"]["file"],
             "cosignature_invalid": marker["witness"]["note"]}
    for code, rel in cases.items():
        work = tmp_path / code
        shutil.copytree(bundle, work)
        if code == "joined_frames":
            shutil.copyfile(work / marker["segments"][0]["decrypted"], work / rel)
        elif code == "cosignature_invalid":  # the cosigned note of an older checkpoint
            older = json.loads((work / marker["segments"][0]["inclusion"]).read_text())
            line = (work / rel).read_text().splitlines()[-1]
            (work / rel).write_text(older["checkpoint"] + line + "\n")
        else:
            data = bytearray((work / rel).read_bytes())
            data[len(data) // 2] ^= 0x40
            (work / rel).write_bytes(bytes(data))
        _rehash(work)
        report = check_bundle(work)
        assert not report.ok
        assert code in {f[1] for f in report.findings if f[0] == "fail"}, report.render()
    work = tmp_path / "extra"
    shutil.copytree(bundle, work)
    (work / "note.txt").write_text("added later")
    assert "unlisted_file" in {f[1] for f in check_bundle(work).findings}


def test_every_export_is_recorded_in_the_index(bundle, desk):
    """The export event names who, which recording, and the bundle's hash (of its
    MANIFEST.sha256), so custody continues past the device."""
    rows = [json.loads(r[4]) for r in index_rows(desk.station.data_dir, "events")
            if r[3] == "export"]
    mine = [r for r in rows if r["path"] == str(bundle.resolve())]
    assert len(mine) == 1
    assert mine[0]["by"] == "Sgt. A. Clerk"
    assert mine[0]["recording_id"] == desk.recording_id
    assert mine[0]["checked_ok"] is True
    assert mine[0]["bundle_sha256"] == hashlib.sha256(
        (bundle / HASH_LIST).read_bytes()).hexdigest()
    logged = [json.loads(r) for r in replay_entries(
        (desk.station.data_dir / "log" / "entries.bin").read_bytes()).records]
    exports = [e for e in logged if e["kind"] == "export"
               and e["bundle_sha256"] == mine[0]["bundle_sha256"]]
    assert len(exports) == 1, "the station's signed log witnesses the export"
    assert exports[0]["by"] == "Sgt. A. Clerk" and exports[0]["recording_id"] == desk.recording_id


def test_export_refuses_bad_requests_clearly(desk, tmp_path):
    """An existing --out, an unreadable identity: usage (2); an unknown recording, or an
    identity that cannot decrypt: failure (1); nothing is recorded as exported."""
    before = len([r for r in index_rows(desk.station.data_dir, "events") if r[3] == "export"])
    args = ("station", "export", desk.recording_id, *_station(desk))
    taken = tmp_path / "taken"
    taken.mkdir()
    assert bodycam(*args, "--identity", str(desk.identity), "--out", str(taken),
                   check=False).returncode == 2
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("not an identity\n")
    assert bodycam(*args, "--identity", str(bad_key), "--out", str(tmp_path / "o1"),
                   check=False).returncode == 2
    done = bodycam("station", "export", "deadbeefdeadbeef", *_station(desk), "--identity",
                   str(desk.identity), "--out", str(tmp_path / "o2"), check=False)
    assert done.returncode == 1 and "no recording" in done.stderr
    other = tmp_path / "other.key"
    other.write_text(str(Identity.generate()) + "\n")
    done = bodycam(*args, "--identity", str(other), "--out", str(tmp_path / "o3"), check=False)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    after = len([r for r in index_rows(desk.station.data_dir, "events") if r[3] == "export"])
    assert after == before
    assert not (tmp_path / "o3").exists(), "a failed export leaves no half bundle"


def test_a_checkpoint_advanced_by_the_witness_still_chains_every_segment(desk, tmp_path):
    """The device's witness client advances the station's held checkpoint past the last
    upload (a log entry after the recording); the station keeps the consistency proof it
    verified, so a bundle exported afterwards chains every segment to that newer checkpoint
    with no ``history_unlinked`` warning. Runs last: it moves the held checkpoint."""
    key = DeviceKey.load(desk.device_data / "keys" / "device.key")
    leaves = [leaf_hash(r) for r in replay_entries(
        (desk.device_data / "log" / "entries.bin").read_bytes()).records]
    leaves.append(leaf_hash(b'{"kind":"note","text":"after the recording"}'))
    note = sign_checkpoint(Checkpoint(origin_for(DEVICE), len(leaves), root_of(leaves)), key)
    held = [r for r in index_rows(desk.station.data_dir, "checkpoints") if r[0] == DEVICE]
    assert held and int(held[0][1]) < len(leaves)
    pki = desk.station.config.parent / "pki"
    info = json.loads(bodycam("station", "info", *_station(desk), "--json").stdout)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / f"{DEVICE}.crt"), str(pki / f"{DEVICE}.key"))
    client = WitnessClient(desk.station.url + "/witness", info["witness_vkey"], ssl_context=ctx)
    client.add_checkpoint(note, lambda old: consistency_proof(leaves, old) if old else [])
    out = tmp_path / "bundle"
    done = bodycam("station", "export", desk.recording_id, *_station(desk), "--identity",
                   str(desk.identity), "--out", str(out), "--by", "Sgt. A. Clerk", check=False)
    assert done.returncode == 0, done.stderr
    assert (out / "proofs/checkpoint.txt").read_bytes() == note
    assert list(out.glob(f"proofs/consistency-*-{len(leaves):06d}.json"))
    done = bodycam("verify", str(out), "--json", check=False)
    assert done.returncode == 0, done.stdout
    codes = [f["code"] for f in json.loads(done.stdout)["findings"]]
    assert "history_unlinked" not in codes and "history" in codes


def test_the_joined_mp4_carries_a_station_signed_content_credential(desk, tmp_path):
    """With a station C2PA identity (test CA), the export embeds a manifest signed by the
    station in the joined MP4 whose ingredients are the segments, each with the device-signed
    credential (.c2pa sidecar) the store holds: the reference reader validates it against the
    test CA and lists them, the bundle verifier reports it, and a flipped bit is caught."""
    _, station_ca = ensure_sim_identity(desk.station.data_dir, "station")
    device_identity, _ = ensure_sim_identity(desk.device_data, DEVICE)
    issuer = ContentCredentials(device_identity)
    store = desk.station.data_dir / "store"
    for manifest in sorted((desk.device_data / "recordings").rglob("*.manifest.json")):
        stored = next(store.rglob(manifest.name))
        media = stored.with_name(manifest.name.removesuffix(".manifest.json") + ".mp4.age")
        # what the device's store writes beside each segment, here beside the station's copy
        assert issuer.issue(media, parse_envelope(manifest.read_bytes())).is_file()
    out = tmp_path / "bundle"
    done = bodycam("station", "export", desk.recording_id, *_station(desk), "--identity",
                   str(desk.identity), "--out", str(out), check=False)
    assert done.returncode == 0, done.stderr
    marker = json.loads((out / "BODYCAM-BUNDLE.json").read_text())
    assert marker["joined"]["c2pa"] == {"ingredients": desk.segments,
                                        "with_credentials": desk.segments}
    joined = out / marker["joined"]["file"]
    assert c2pa_status(joined, station_ca) == ("valid", "signature, certificate chain and hash "
                                               "binding verified")
    manifest = read_credential(joined, station_ca)
    assert manifest is not None
    assert [i["title"] for i in manifest["ingredients"]] == [
        Path(s["decrypted"]).name for s in marker["segments"]]
    assert all(i["relationship"] == "componentOf" and i.get("active_manifest")
               for i in manifest["ingredients"])
    assert c2pa_status(joined, b"")[0] == "invalid"  # no trust anchor, no trust
    done = bodycam("verify", str(out), "--json", check=False)
    assert done.returncode == 0, done.stdout
    assert "joined_c2pa" in [f["code"] for f in json.loads(done.stdout)["findings"]]
    flipped = tmp_path / "flipped.mp4"
    data = bytearray(joined.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    assert c2pa_status(flipped, station_ca)[0] == "invalid"
