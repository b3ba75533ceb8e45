"""The station index's tables, in the SQL both SQLite and PostgreSQL accept (the logs table
differs only in its key column). Kept apart from :mod:`.index` so the rules read without the DDL.
"""

__all__ = ["CREDENTIAL_TABLE", "DESK_TABLES", "DEVICE_KEYS_TABLE", "PG_LOGS", "PG_WIDEN_TIMES",
           "SQLITE_LOGS", "TABLES"]

# Times are seconds since the epoch: DOUBLE PRECISION. PostgreSQL's REAL is a 4-byte float,
# 128 s apart at today's epoch -- a session or an upload would expire up to a minute off.
# Tables made with REAL are widened in place (a no-op once done).
PG_WIDEN_TIMES = """
ALTER TABLE console_sessions ALTER COLUMN created TYPE DOUBLE PRECISION;
ALTER TABLE console_sessions ALTER COLUMN expires TYPE DOUBLE PRECISION;
ALTER TABLE uploads ALTER COLUMN created TYPE DOUBLE PRECISION;
ALTER TABLE uploads ALTER COLUMN updated TYPE DOUBLE PRECISION;
"""

TABLES = """
CREATE TABLE IF NOT EXISTS console_users (
    username TEXT PRIMARY KEY, password TEXT NOT NULL, role TEXT NOT NULL,
    created_utc TEXT NOT NULL, updated_utc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS console_sessions (
    token_sha256 TEXT PRIMARY KEY, username TEXT NOT NULL, csrf TEXT NOT NULL,
    address TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, public_key TEXT NOT NULL, tls_key_sha256 TEXT,
    record TEXT NOT NULL, enrolled_utc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, length BIGINT, metadata TEXT NOT NULL,
    state TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS uploads_open ON uploads (device_id, state);
CREATE TABLE IF NOT EXISTS segments (
    device_id TEXT NOT NULL, device_seq BIGINT NOT NULL, recording_id TEXT NOT NULL,
    seq BIGINT NOT NULL, path TEXT NOT NULL, cipher_sha256 TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL, cipher_bytes BIGINT NOT NULL, manifest_bytes BIGINT NOT NULL,
    leaf_index BIGINT NOT NULL, checkpoint_size BIGINT NOT NULL, stored_utc TEXT NOT NULL,
    receipt TEXT NOT NULL, PRIMARY KEY (device_id, device_seq));
CREATE TABLE IF NOT EXISTS checkpoints (
    device_id TEXT PRIMARY KEY, size BIGINT NOT NULL, root TEXT NOT NULL, note TEXT NOT NULL,
    updated_utc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log_forks (
    device_id TEXT NOT NULL, held_size BIGINT NOT NULL, held_root TEXT NOT NULL,
    kind TEXT NOT NULL, detail TEXT NOT NULL, utc TEXT NOT NULL,
    PRIMARY KEY (device_id, held_size, held_root));
"""
SQLITE_LOGS = """
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, utc TEXT NOT NULL,
    device_id TEXT, kind TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alarms (id INTEGER PRIMARY KEY AUTOINCREMENT, utc TEXT NOT NULL,
    device_id TEXT, kind TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS console_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, utc TEXT NOT NULL,
    username TEXT NOT NULL, address TEXT NOT NULL, action TEXT NOT NULL, device_id TEXT,
    detail TEXT NOT NULL, outcome TEXT NOT NULL);
"""
PG_LOGS = """
CREATE TABLE IF NOT EXISTS events (id BIGSERIAL PRIMARY KEY, utc TEXT NOT NULL,
    device_id TEXT, kind TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alarms (id BIGSERIAL PRIMARY KEY, utc TEXT NOT NULL,
    device_id TEXT, kind TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS console_audit (id BIGSERIAL PRIMARY KEY, utc TEXT NOT NULL,
    username TEXT NOT NULL, address TEXT NOT NULL, action TEXT NOT NULL, device_id TEXT,
    detail TEXT NOT NULL, outcome TEXT NOT NULL);
"""
# The evidence desk's tables (agent/station/desk.py): the proofs a device handed over at
# finalise (kept so that an exported bundle proves every segment without the device), legal
# holds, and deletions at the end of retention. Exports, holds, releases and deletions are also
# events (kind ``export``, ``hold``, ``release``, ``retention-delete``): the custody record.
DESK_TABLES = """
CREATE TABLE IF NOT EXISTS segment_proofs (
    device_id TEXT NOT NULL, device_seq BIGINT NOT NULL, entry TEXT NOT NULL,
    leaf_index BIGINT NOT NULL, inclusion TEXT NOT NULL, checkpoint TEXT NOT NULL,
    PRIMARY KEY (device_id, device_seq));
CREATE TABLE IF NOT EXISTS consistency_proofs (
    device_id TEXT NOT NULL, old_size BIGINT NOT NULL, old_root TEXT NOT NULL,
    new_size BIGINT NOT NULL, new_root TEXT NOT NULL, hashes TEXT NOT NULL,
    old_note TEXT NOT NULL, new_note TEXT NOT NULL,
    PRIMARY KEY (device_id, old_size, old_root, new_size, new_root));
CREATE TABLE IF NOT EXISTS holds (
    recording_id TEXT PRIMARY KEY, reason TEXT NOT NULL, by_whom TEXT NOT NULL,
    utc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deletions (
    device_id TEXT NOT NULL, device_seq BIGINT NOT NULL, utc TEXT NOT NULL,
    reason TEXT NOT NULL, by_whom TEXT NOT NULL, PRIMARY KEY (device_id, device_seq));
"""
# A stored segment's device-signed C2PA credential (docs/STATION-API.md §4a): ``valid`` once a
# checked sidecar is linked beside the segment (final), or ``invalid`` with the reason the last
# refused one got (a later valid one replaces it). No row: ``absent``.
CREDENTIAL_TABLE = """
CREATE TABLE IF NOT EXISTS segment_credentials (
    device_id TEXT NOT NULL, device_seq BIGINT NOT NULL, state TEXT NOT NULL,
    reason TEXT NOT NULL, sha256 TEXT NOT NULL, bytes BIGINT NOT NULL, utc TEXT NOT NULL,
    PRIMARY KEY (device_id, device_seq));
"""
# The keys a device signs with after rotating its enrolled one (agent/station/devicekeys.py):
# one row per successor key, with the key_rotation entry (its exact canonical bytes) whose
# endorsement by an earlier key of the device introduced it. ``devices.public_key`` stays the
# enrolled key. An index made before key rotations gains the table when it is opened.
# ``rotation_positions``: the log index of the rotation entry that introduced a successor
# (keyed by the successor's fingerprint), stored once the device proved it (§4b); it ends the
# old key's span (agent/station/keyspans.py). Its own table, so an older index gains it too.
DEVICE_KEYS_TABLE = """
CREATE TABLE IF NOT EXISTS device_keys (
    device_id TEXT NOT NULL, fingerprint TEXT NOT NULL, public_key TEXT NOT NULL,
    endorsed_by TEXT NOT NULL, entry TEXT NOT NULL, utc TEXT NOT NULL,
    PRIMARY KEY (device_id, fingerprint));
CREATE TABLE IF NOT EXISTS rotation_positions (
    device_id TEXT NOT NULL, fingerprint TEXT NOT NULL, log_index BIGINT NOT NULL,
    utc TEXT NOT NULL, PRIMARY KEY (device_id, fingerprint));
"""
