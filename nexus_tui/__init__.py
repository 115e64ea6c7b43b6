"""The Nexus dashboard. Never imports torch: it starts in a fraction of a second and talks to engines
only through the shared `nexus_core`."""
