"""Following live runs: starting them (launch_args, spawn), watching their folders and pipes (watcher,
prebuild, engine_io), following the processes (supervisor, attach) and steering them (run_control).
Headless: no textual (an import-linter contract).
"""
