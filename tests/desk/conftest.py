"""The evidence desk's bench: a real recording made by the agent on simulated hardware
(libx264 camera, AAC microphone), offloaded segment by segment to a real station process
(mutual TLS, the reference client) — the way a device hands its evidence over."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.evidence.checkpoint import Checkpoint, sign_checkpoint
from agent.evidence.keys import DeviceKey
from agent.evidence.log import EvidenceLog, origin_for
from agent.evidence.merkle import leaf_hash, root_of
from agent.testing import running_agent, small_config, wait_for
from tests.station.conftest import enrol_direct
from tests.station.harness import SimRecorder, StationProcess, make_pki, station_config

DEVICE = "BC-SIM-0001"  # the simulated agent's default id
OTHER = "BC-DESK-02"
OFFICER = "PC-4521"


@dataclass
class Desk:
    """A station holding one real recording (and a synthetic one of another device)."""

    station: StationProcess
    device_data: Path
    identity: Path
    recording_id: str
    other_recording_id: str
    segments: int


class LogAsItWas:
    """The device's log as it stood when it held ``size`` entries, checkpoint signed by the
    device key: what a device that offloads each segment as it is sealed presents."""

    def __init__(self, log: EvidenceLog, key: DeviceKey, size: int) -> None:
        self.log, self.key, self.size = log, key, size

    def checkpoint(self) -> bytes:
        leaves = [leaf_hash(self.log.entry(i)) for i in range(self.size)]
        return sign_checkpoint(Checkpoint(origin_for(DEVICE), self.size, root_of(leaves)),
                               self.key)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return self.log.inclusion_proof(index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        return self.log.consistency_proof(old_size, new_size)


def offload(rec: SimRecorder, url: str) -> int:
    """Upload and finalise every segment of the agent's log in turn, each against the log as
    it was right after that segment was logged (so the station keeps consistency proofs)."""
    done = 0
    with rec.client(url) as c:
        for index, data in list(rec.log.entries()):
            entry = json.loads(data)
            if entry.get("kind") != "segment":
                continue
            media = rec.root / entry["path"]
            manifest = media.with_name(media.name.removesuffix(".mp4.age") + ".manifest.json")
            c.finalise(rec.device_id, c.upload_file(rec.device_id, media),
                       manifest=manifest.read_bytes(), entry=data, leaf_index=index,
                       log=LogAsItWas(rec.log, rec.key, index + 1))
            done += 1
    return done


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """Record ~4 s under matter XCJC, stop, offload to a fresh station; plus two synthetic
    segments of another device."""
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    root = tmp_path_factory.mktemp("desk")
    data = root / "device"
    cfg = small_config(recording={"prerecord_s": 1, "segment_s": 2},
                       device={"officer_id": OFFICER})
    with running_agent(cfg, data) as agent:
        wait_for(lambda: agent.recorder.preroll.span_s >= 1.0)
        agent.controller.call("matter", code="XCJC")
        agent.controller.call("start")
        wait_for(lambda: len(agent.recorder.sealed) >= 2, timeout=30)
        agent.controller.call("stop")
        wait_for(lambda: agent.recorder.state == "standby", timeout=10)
    pki = make_pki(root / "pki", [DEVICE, OTHER])
    cfg_path = station_config(root / "station.toml", pki, min_free_bytes=0)
    station = StationProcess(cfg_path, root / "station").start()
    rec = SimRecorder(data, DEVICE, pki, key=DeviceKey.load(data / "keys" / "device.key"))
    other = SimRecorder(root / "other", OTHER, pki)
    try:
        enrol_direct(station.data_dir, rec)
        enrol_direct(station.data_dir, other)
        n = offload(rec, station.url)
        with other.client(station.url) as c:  # synthetic: bytes, not media
            for seg in [other.seal(b"not media, only bytes " * 100) for _ in range(2)]:
                c.finalise(OTHER, c.upload_file(OTHER, seg.media), manifest=seg.manifest,
                           entry=seg.entry, leaf_index=seg.index, log=other.log)
        yield Desk(station, data, data / "sim-agency.key", _recording_id(data),
                   other.recording_id, n)
    finally:
        rec.close()
        other.close()
        assert station.stop() == 0, station.stderr()


def _recording_id(data: Path) -> str:
    """The id of the one recording the agent made."""
    ids = {json.loads(m.read_text())["manifest"]["recording_id"]
           for m in (data / "recordings").rglob("*.manifest.json")}
    assert len(ids) == 1, ids
    return str(ids.pop())


def station_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``bodycam station …`` in this process (the CLI's own subprocess tests cover argv
    handling): exit status, stdout, stderr."""
    from agent.station.station_cli import station_main
    from hw.errors import ConfigError

    capsys.readouterr()
    try:
        code = station_main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        code = 2
    out, err = capsys.readouterr()
    return code, out, err
