"""The Nexus training engine: torch lives here, textual never does.

The torch-free parts both sides share (config, schedule, errors, the protocol) live in `nexus_core`.
"""
