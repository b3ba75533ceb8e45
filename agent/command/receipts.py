"""Station receipts arriving by command (``ack``): each is verified, then logged by the store.

A receipt is a collection station's signature over a segment it holds; only a receipt that
verifies and that the store accepts (:meth:`EvidenceStore.accept_receipt`, which logs it as
``acknowledged``) makes its segment evictable. Acknowledging by bare ``device_seq`` is refused:
a station's word has to be signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.evidence.receipt import parse_receipt
from agent.ports import EvidenceOps
from agent.sync.command_messages import MAX_ACK_RECEIPTS
from hw.errors import CommandRejected, ReceiptRejected, VerificationError

__all__ = ["accept_receipts"]


def accept_receipts(store: EvidenceOps, args: Mapping[str, Any],
                    origin: Mapping[str, Any]) -> dict[str, Any]:
    """Accept every receipt in ``args["receipts"]`` that verifies; says, per receipt, whether it
    was accepted (with its log index) or refused and why. Raises :class:`CommandRejected` when
    none was accepted (the command is then logged as refused)."""
    if "device_seq" in args:
        raise CommandRejected("acknowledging by device_seq is not accepted: a station's "
                              "signed receipt is required")
    docs = args.get("receipts")
    if not isinstance(docs, list) or not 1 <= len(docs) <= MAX_ACK_RECEIPTS:
        raise CommandRejected(f"ack needs receipts: a list of 1-{MAX_ACK_RECEIPTS} signed "
                              "receipt envelopes")
    accepted: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for i, doc in enumerate(docs):
        try:
            receipt = parse_receipt(doc)
        except VerificationError as exc:
            refused.append({"index": i, "reason": str(exc)})
            continue
        try:
            index = store.accept_receipt(receipt, origin=origin)
        except ReceiptRejected as exc:
            refused.append({"index": i, "device_seq": receipt.device_seq, "reason": str(exc)})
            continue
        accepted.append({"index": i, "device_seq": receipt.device_seq, "ack_index": index})
    if not accepted:
        raise CommandRejected("no receipt accepted: " + "; ".join(
            f"[{r['index']}] {r['reason']}" for r in refused)[:1000])
    return {"accepted": accepted, "refused": refused}
