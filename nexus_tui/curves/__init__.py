"""What the charts draw, computed without a screen: curves from the store's columns, downsampling,
the chart grid, the val-loss forecast and the charts' summary line. Headless: no textual.
"""
