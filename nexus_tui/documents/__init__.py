"""Documents made from run folders, for the CLI and the dashboard's keys alike: compare, the runs
index, export, the markdown report and TensorBoard import. Textual-free readers of run folders.
"""
