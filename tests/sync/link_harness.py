"""A minimal device process for crash tests: Outbox + MqttLink, driven from the command line.

    python link_harness.py DB URL DEVICE_ID COUNT [CAFILE CERTFILE KEYFILE]

Starts the link, enqueues COUNT events (printing each seq once ``enqueue`` returned), prints
``ready`` and then runs until killed. The tests SIGKILL it at chosen moments.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.sync.link import MqttLink, TlsSettings
from agent.sync.outbox import Outbox


def main() -> None:
    db, url, device_id, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    tls = TlsSettings(*(Path(p) for p in sys.argv[5:8])) if len(sys.argv) == 8 else None
    outbox = Outbox(db)
    link = MqttLink(device_id=device_id, outbox=outbox, url=url, tls=tls, allow_plaintext=True,
                    on_command=lambda c: c.succeed(), keepalive=5, reconnect=(0.1, 0.5),
                    birth={"software": "harness", "public_key": "A" * 43 + "="})
    link.start()
    for n in range(count):
        print(link.enqueue_event({"type": "warning", "n": n}), flush=True)
    print("ready", flush=True)
    while True:
        stats = link.stats()
        print(f"stats connected={stats.connected} depth={stats.outbox_depth} "
              f"session={stats.session}", flush=True)
        time.sleep(0.2)


if __name__ == "__main__":
    main()
