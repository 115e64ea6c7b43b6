"""The Nexus training engine: torch lives here, textual never does."""
