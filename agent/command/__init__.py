"""Driving the recorder: what each command does (:mod:`.command_set`), how it is logged
(:mod:`.audit`), station receipts and live configuration that arrive as commands
(:mod:`.receipts`, :mod:`.overrides`), the local control socket (:mod:`.ctl_server`, and the
deliberately light :mod:`.ctl_client` that ``bodycam ctl`` runs) and the simulator's stimuli
(:mod:`.sim_stimuli`).

Kept import-free: ``bodycam ctl`` imports this package and must start fast.
"""
