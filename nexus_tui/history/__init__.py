"""A run's history: reading records from a run folder (reader, the columnar decoder and its cache),
folding them into the RunState each run has in the store (store, bulk, runview, changes, series_keys).
Headless: no textual (an import-linter contract).
"""
