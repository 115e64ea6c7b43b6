"""The Nexus core: what the dashboard and the engine share. Torch-free and textual-free.

Records and commands (`records`, `commands`, `schema`, `control`, re-exported by `protocol`), the run
folder (`runfolder`), the run-state reducer (`state`), the config schema and presets (`config`), the LR
schedule (`schedule`), name rules (`names`), and user-facing errors (`errors`).
"""
