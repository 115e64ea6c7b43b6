"""The columnar data path: bytes of metrics.msgpack become numpy columns without a dict a record.

`fastdecode` decodes blocks of metric records (a fixed-layout fast path in `fixedlayout`, msgspec for
the rest), `columns` holds the block types, `colcache` keeps a checked `.nexus-cache` of the columns
beside the records (derived, never required), `growable` is the append-only array the store keeps.
The lowest layer of the dashboard: it imports nothing else from nexus_tui.
"""
