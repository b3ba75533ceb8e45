"""The collection station: receives sealed segments, verifies them, stores them write-once.

An agency runs the station on a PC or server (DESIGN §7). Devices upload each segment's
ciphertext over HTTPS with their client certificate (tus 1.0, resumable), then hand over the
signed manifest, the log entry and Merkle proofs; the station checks all of it against the key
registered at enrolment, or a successor the device's endorsed key rotations introduced
(:mod:`.devicekeys`, :mod:`.rotation_endpoint`) — never the agency's decryption key — stores
the bytes once, and
answers with a signed receipt, the only thing that lets a device free the space.

Modules, one job each: :mod:`.station_config` (schema), :mod:`.enrolment` (registration
records), :mod:`.index` (SQLite / PostgreSQL), :mod:`.uploads` (partial files), :mod:`.ingest`
(the verification rules, pure), :mod:`.write_once` (write-once placement), :mod:`.service` (the
parts wired together), :mod:`.tus` (upload endpoints), :mod:`.finalise` (verify, store,
receipt), :mod:`.server` (identity, errors, serving), :mod:`.api_client` (the reference client),
:mod:`.station_cli` (``bodycam station``), :mod:`.refusal` (what it refuses). The rest of the
back office lives here too: the evidence desk (:mod:`.desk`, :mod:`.exporter`), the console
(:mod:`.console`) and the MQTT fleet watcher (:mod:`.fleetwatch`). docs/STATION-API.md is the
protocol.

This package imports :mod:`agent.evidence` and nothing of the recorder.
"""
