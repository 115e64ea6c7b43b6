"""`nexus report`: the markdown report people used to write by hand at the end of a training session.

Torch-free and textual-free, like `nexus compare`: it reads run folders and writes text. Split by job:
`safe` (untrusted text made printable), `facts` (one run folder read into plain data), `textchart`
(plotext charts as plain text), `backtest` (the val-loss forecast and how it fared), `sections` and
`health` (one run's sections), `multi` (several runs side by side, reusing `nexus_tui.documents.comparison`),
`document` (assembly, the CLI's and the dashboard's entry points).

This file imports nothing, so `nexus_tui.documents.comparison` can use `report.safe` without a cycle.
"""
