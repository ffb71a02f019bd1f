"""The audit log service: what keeps the audit log in the store, on top of the pure audit/ parts.

Services import the store (and the workflow's roles and errors); nothing here imports mitmproxy
or the console: the addons (addons/audit.py) and the console call these modules.

- writer        the recorder's background writer: seal, number, spool, batch into the store
- cases         cases (zaken): the one way to open sealed events
- ledger        the access ledger of every decision and look
- checkpointer  signs checkpoints of the logs and keeps them in an outbox; its thread
- exporters     take the signed notes off the box: a directory, syslog, mail
- retention     erases old events, leaving signed tombstones
- keys          the key ceremony (escrow key, shares, checkpoint signing key)
- verify        `audit verify`: the store against the exported checkpoints
"""
