"""The dashboard's headless part: everything that holds logic and is tested without a screen.

Runs in (store, runview, bulk ingest, curves, forecast), processes out (supervisor, launch
arguments, engine_io, watcher), telemetry, settings, the CLI's compare/export/import/report. Nothing
here imports textual (an import-linter contract); widgets and screens draw what these return.
"""
