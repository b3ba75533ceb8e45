"""The AsyncAPI document and JSON Schemas, and the broker address / backoff rules."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator

from agent.sync.transport import Backoff, BrokerAddress, TlsSettings, parse_broker_url
from hw.errors import ConfigError

SYNC = Path(__file__).resolve().parents[2] / "agent" / "sync"
SCHEMAS = sorted((SYNC / "schemas").glob("*.json"))


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
def test_every_schema_is_valid_2020_12_and_draft_07(path: Path) -> None:
    """Each schema checks under 2020-12 (what it declares) and draft-07 (what AsyncAPI reads)."""
    schema = json.loads(path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    Draft7Validator.check_schema({k: v for k, v in schema.items() if k != "$schema"})


def test_asyncapi_documents_every_topic_with_an_existing_schema() -> None:
    """Every channel has a message whose payload schema file exists, and every schema is used."""
    doc = yaml.safe_load((SYNC / "asyncapi.yaml").read_text())
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"].split("{device_id}/")[1] for c in doc["channels"].values()}
    assert addresses == {"status", "birth", "telemetry", "state", "segment", "checkpoint",
                         "event", "alarm", "cmd/{name}", "cmd/{name}/ack"}
    used = set()
    for message in doc["components"]["messages"].values():
        ref = message["payload"]["schema"]["$ref"]
        assert (SYNC / ref).is_file(), ref
        used.add((SYNC / ref).resolve())
    assert used == {p.resolve() for p in SCHEMAS}
    for op in doc["operations"].values():
        channel = op["channel"]["$ref"].rsplit("/", 1)[1]
        assert channel in doc["channels"]


def test_broker_urls(tmp_path: Path) -> None:
    """Default ports per scheme; plaintext only on request; TLS files must exist."""
    files = []
    for name in ("ca", "cert", "key"):
        (tmp_path / name).write_text("x")
        files.append(tmp_path / name)
    tls = TlsSettings(*files)
    assert parse_broker_url("mqtts://broker", tls=tls) == BrokerAddress("broker", 8883, True)
    assert parse_broker_url("mqtts://broker:9999", tls=tls).port == 9999
    plain = parse_broker_url("mqtt://[::1]", tls=None, allow_plaintext=True)
    assert plain == BrokerAddress("::1", 1883, False)
    for bad, match in [("mqtt://b", "plaintext"), ("ws://b", "scheme"), ("mqtts://", "host"),
                       ("mqtts://b/path", "only"), ("mqtts://u:pw@b", "credentials"),
                       ("mqtts://:pw@b", "credentials"),
                       ("mqtts://b:99999", "port")]:
        with pytest.raises(ConfigError, match=match) as err:
            parse_broker_url(bad, tls=tls)
        assert "pw" not in str(err.value)  # a password in the URL is never echoed


def test_backoff_grows_with_jitter_and_resets() -> None:
    """Delays double up to the cap, each drawn from the upper half; reset starts over."""
    backoff = Backoff(1.0, 60.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(10)]
    ceilings = [min(60.0, 2.0**n) for n in range(10)]
    assert all(max(1.0, c / 2) <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len({round(d, 6) for d in delays[6:]}) > 1  # capped, yet not in lockstep
    backoff.reset()
    assert backoff.next_delay() == 1.0
    with pytest.raises(ConfigError):
        Backoff(0, 1)
