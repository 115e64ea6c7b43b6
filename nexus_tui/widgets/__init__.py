"""Dashboard widgets, one per module; they draw from plain data (RunViews, snapshots, records)."""
