"""The station's Content Credential on an exported recording's joined MP4.

The joined MP4 (:mod:`.joined`) is derived material the station made: no device signed it. So
the station signs it, with its own C2PA identity (``<station data>/keys/c2pa.key`` and
``c2pa.crt``, the same profile as a device's, agent/c2pa/credentials.py), as a C2PA manifest
embedded in the file (BMFF hash: the file exists whole at the station, unlike on a device). Its
ingredients are the segments, ``componentOf``, in order; a segment that has a device-signed
credential (its ``.c2pa`` sidecar) carries that manifest store as the ingredient's manifest,
so a C2PA reader walks station → device. The station records the ingredient's validation
results as it saw them (signature and hash binding; whether the device's CA is trusted is the
reader's call).

No station identity, no credential: the export is unchanged and the bundle says so.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import c2pa

from agent import __version__
from agent.c2pa.credentials import CERT_NAME, SigningIdentity

__all__ = ["Part", "load_station_identity", "sign_joined"]

COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeCapture"


@dataclass(frozen=True, slots=True)
class Part:
    """One segment of the joined MP4: its decrypted file and its device credential, if any."""

    title: str
    plain: Path
    credential: bytes | None


def load_station_identity(data_dir: Path) -> SigningIdentity | None:
    """The station's C2PA identity, or None when it has none (``keys/c2pa.crt`` absent);
    :class:`~agent.c2pa.credential_error.ContentCredentialError` for an unusable key or certificate."""
    keys = Path(data_dir) / "keys"
    return SigningIdentity.load(keys) if (keys / CERT_NAME).exists() else None


def _validation_results(part: Part) -> object:
    assert part.credential is not None
    with open(part.plain, "rb") as f, c2pa.Reader("video/mp4", f,
                                                  manifest_data=part.credential) as reader:
        return json.loads(reader.json()).get("validation_results")


def sign_joined(joined: Path, identity: SigningIdentity, station_id: str,
                parts: Sequence[Part]) -> dict[str, int]:
    """Embed the station's signed manifest in ``joined`` (replaced atomically, fsynced); how
    many ingredients it names and how many carry a device credential."""
    labels = [f"segment-{i:05d}" for i in range(len(parts))]
    builder = c2pa.Builder({
        "claim_generator_info": [{"name": "bodycam-station", "version": __version__}],
        "title": joined.name, "format": "video/mp4",
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
            {"action": "c2pa.created", "digitalSourceType": COMPOSITE,
             "softwareAgent": {"name": "bodycam-station", "version": __version__},
             "description": f"the segments joined by stream copy at station {station_id}"},
            {"action": "c2pa.placed", "parameters": {"ingredientIds": labels}}]}}]})
    with builder:
        for label, part in zip(labels, parts, strict=True):
            ingredient: dict[str, object] = {"title": part.title, "format": "video/mp4",
                                             "relationship": "componentOf", "label": label}
            if part.credential is not None:
                builder.add_resource(f"{label}.c2pa", io.BytesIO(part.credential))
                ingredient["manifest_data"] = {"format": "application/c2pa",
                                               "identifier": f"{label}.c2pa"}
                ingredient["validation_results"] = _validation_results(part)
            with open(part.plain, "rb") as f:
                builder.add_ingredient(ingredient, "video/mp4", f)
        tmp = joined.with_name(joined.name + ".signing")
        with open(joined, "rb") as src, open(tmp, "w+b") as dst:
            builder.sign(identity.signer(), "video/mp4", src, dst)
            dst.flush()
            os.fsync(dst.fileno())
    os.replace(tmp, joined)
    return {"ingredients": len(parts),
            "with_credentials": sum(p.credential is not None for p in parts)}
