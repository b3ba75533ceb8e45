"""The station's parts wired together: key, index, store, partial uploads, limits.

One :class:`StationService` per process. It is the composition root of the station: the HTTP
handlers (:mod:`.tus`, :mod:`.finalise`) receive it and use only its parts. Index calls block
(SQLite, PostgreSQL), so handlers run them through :meth:`StationService.db` in worker threads;
the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agent.evidence.keys import DeviceKey
from agent.evidence.utc import utc_now

from .custodywitness import CustodyWitnessing
from .index import Index, open_index
from .refusal import Refused
from .station_config import StationConfig
from .stationlog import StationLog
from .uploads import Incoming
from .write_once import WriteOnceStore

# ``utc_now`` (microseconds: the receipt's format) is the evidence one, named here because the
# station's modules take it from their composition root.
__all__ = ["StationService", "load_station_key", "utc_now"]

log = logging.getLogger("bodycam.station")
T = TypeVar("T")

KEY_FILE = "station.key"


def load_station_key(data_dir: Path) -> DeviceKey:
    """The station's Ed25519 receipt key, made (0600) on first use."""
    path = data_dir / "keys" / KEY_FILE
    if not path.exists():
        key = DeviceKey.generate(path)
        log.info("station receipt key created at %s (fingerprint %s)", path, key.fingerprint)
        return key
    return DeviceKey.load(path)


@dataclass
class StationService:
    """Everything a request handler may use."""

    cfg: StationConfig
    data_dir: Path
    key: DeviceKey
    index: Index
    store: WriteOnceStore
    incoming: Incoming
    custody_witnessing: CustodyWitnessing | None = field(default=None, init=False)
    _custody_log: StationLog | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, cfg: StationConfig, data_dir: Path) -> StationService:
        """Open (creating if needed) the data dir, key, index and store."""
        data_dir.mkdir(parents=True, exist_ok=True)
        key = load_station_key(data_dir)
        store_dir = Path(cfg.station.store) if cfg.station.store else data_dir / "store"
        store = WriteOnceStore(store_dir)
        return cls(cfg, data_dir, key, open_index(cfg.station.database, data_dir), store,
                   Incoming(store_dir))

    @property
    def station_id(self) -> str:
        """The id receipts carry."""
        return self.cfg.station.id or f"st-{self.key.fingerprint_short}"

    @property
    def receipt_key(self) -> str:
        """The receipt key, base64 of the raw Ed25519 public key."""
        return base64.b64encode(self.key.public_bytes).decode()

    @property
    def custody_log(self) -> StationLog:
        """The station's signed custody log (:mod:`.stationlog`); its appends are queued for
        the witnesses once :meth:`start_witnessing` ran."""
        if self._custody_log is None:
            self._custody_log = StationLog(self.data_dir, self.station_id, self.key)
            self._custody_log.subscribe(self._appended)
        return self._custody_log

    def _appended(self, checkpoint: bytes) -> None:
        if self.custody_witnessing is not None:
            self.custody_witnessing.notify(checkpoint)

    def start_witnessing(self) -> CustodyWitnessing | None:
        """Start submitting the custody log to the ``[[witnesses]]`` (a long-running process:
        ``station run``); None when none is configured."""
        if self.cfg.witnesses and self.custody_witnessing is None:
            w = self.cfg.witnessing
            self.custody_witnessing = CustodyWitnessing(
                self.cfg.witnesses, self.data_dir, retry_s=w.retry_s, max_retry_s=w.max_retry_s,
                watch_s=w.watch_s)
            self.custody_witnessing.start()
        return self.custody_witnessing

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking index (or file) call in a worker thread."""
        return await asyncio.to_thread(fn, *args)

    async def refused(self, device_id: str | None, exc: Refused) -> None:
        """Record a refusal: an event always, an alarm (and an error log line) for tampering."""
        utc = utc_now()
        if exc.alarm:
            log.error("ALARM %s device %s: %s", exc.code, device_id, exc.message)
        else:
            log.warning("refused %s (%d) device %s: %s", exc.code, exc.status, device_id,
                        exc.message)
        try:
            if exc.alarm:
                await self.db(self.index.alarm, utc, device_id, exc.code, exc.message)
            await self.db(self.index.event, utc, device_id, exc.code,
                          f"{exc.status} {exc.message}")
        except Exception:  # the refusal is still answered; the log line above keeps the record
            log.exception("could not record refusal %s of device %s in the index", exc.code,
                          device_id)

    def close(self) -> None:
        """Stop witnessing (the submitter's lock passes on) and close the index."""
        if self.custody_witnessing is not None:
            self.custody_witnessing.close()
            self.custody_witnessing = None
        self.index.close()
