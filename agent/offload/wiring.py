"""Build the uploader from ``[offload]`` (the composition root calls this, nothing else)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from agent.config import OffloadConfig, station_public_keys
from agent.station.api_client import StationClient

from .pacing import PressureGauge
from .uploader import Offloader, ReceiptTaker

__all__ = ["build_offloader", "pipeline_strain"]

log = logging.getLogger(__name__)


def build_offloader(cfg: OffloadConfig, store: ReceiptTaker, *, device_id: str,
                    data_dir: Path, strained: Callable[[], bool],
                    chunk_bytes: int = 1 << 20, timeout_s: float = 30.0) -> Offloader:
    """An :class:`Offloader` for the configured station (not started); ``chunk_bytes`` per
    checksummed PATCH (what a cut link can cost again); ``timeout_s`` per request (how long a
    silently dead link holds the uploader before it backs off)."""
    if cfg.url.startswith("http://"):
        log.warning("OFFLOAD OVER PLAIN HTTP to %s: NO ENCRYPTION IN TRANSIT, NO DEVICE "
                    "IDENTITY (offload.insecure_http is for lab benches only)", cfg.url)
    keys = station_public_keys(cfg)
    if not keys:
        log.warning("offload: no [offload] station_keys: segments are uploaded but no receipt "
                    "is accepted, so nothing becomes evictable")

    def client() -> StationClient:
        return StationClient(cfg.url, cafile=cfg.cafile or None, certfile=cfg.certfile or None,
                             keyfile=cfg.keyfile or None, timeout=timeout_s, trusted_keys=keys)

    return Offloader(store, device_id=device_id, data_dir=data_dir, client=client,
                     station=cfg.url, max_rate=cfg.max_rate, retry_s=cfg.retry_s,
                     strained=strained, chunk_bytes=chunk_bytes, live=cfg.live)


def pipeline_strain(queue_depth: Callable[[], int], frames_dropped: Callable[[], int], *,
                    max_depth: int) -> Callable[[], bool]:
    """A ``strained()`` for the uploader from the controller's queue and the camera's drops."""
    gauge = PressureGauge(max_depth=max_depth)
    return lambda: gauge.strained(queue_depth(), frames_dropped())
