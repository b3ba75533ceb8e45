"""Two station processes, one PostgreSQL index, one store: a device uploading every segment
to both at once gets each segment stored exactly once and the same receipt from both."""

from __future__ import annotations

import json
import os
import threading

from tests.station.harness import StationProcess, bodycam, station_config


def test_two_stations_share_one_index_and_store(tmp_path, pki, postgres, recorder):
    """Concurrent ingestion of the same segments through two stations: the database's unique
    key decides; no double store, no lost or differing receipt."""
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS shared")
        conn.execute("CREATE DATABASE shared")
    url = postgres.rsplit("/", 1)[0] + "/shared"
    store = tmp_path / "store"
    stations = []
    for name in ("a", "b"):
        cfg = station_config(tmp_path / f"{name}.toml", pki, database=url, store=store,
                             min_free_bytes=0)
        stations.append(StationProcess(cfg, tmp_path / name).start())
    try:
        rec = recorder()
        record = rec.write_enrolment(tmp_path / "bodycam-enrol.json")
        out = bodycam("station", "enrol", "--config", str(stations[0].config), "--data-dir",
                      str(stations[0].data_dir), str(record))
        assert "enrolled" in out.stdout
        segs = [rec.seal(os.urandom(40_000 + i)) for i in range(6)]
        receipts: dict[str, dict[int, str]] = {"a": {}, "b": {}}
        errors: list[BaseException] = []

        def ingest(name: str, st: StationProcess) -> None:
            try:
                with rec.client(st.url) as c:
                    for s in segs:
                        upload = c.upload_file(rec.device_id, s.media)
                        r = c.finalise(rec.device_id, upload, manifest=s.manifest,
                                       entry=s.entry, leaf_index=s.index, log=rec.log,
                                       attempts=30)
                        receipts[name][s.device_seq] = json.dumps(r.to_json(), sort_keys=True)
            except BaseException as exc:  # handed to the main thread
                errors.append(exc)

        threads = [threading.Thread(target=ingest, args=(n, st))
                   for n, st in zip("ab", stations, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert receipts["a"] == receipts["b"]
        assert sorted(receipts["a"]) == [s.device_seq for s in segs]
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT device_seq, count(*) FROM segments GROUP BY device_seq "
                                "ORDER BY device_seq").fetchall()
            alarms = conn.execute("SELECT count(*) FROM alarms").fetchone()
        assert rows == [(s.device_seq, 1) for s in segs]
        assert alarms == (0,)
        media = sorted(p.read_bytes() for p in (store / rec.device_id).rglob("*.mp4.age"))
        assert media == sorted(s.cipher for s in segs)
        listed = json.loads(bodycam("station", "list", "--config", str(stations[1].config),
                                    "--data-dir", str(stations[1].data_dir), "--json").stdout)
        assert len(listed["segments"]) == len(segs)
    finally:
        for st in stations:
            assert st.stop() == 0, st.stderr()


