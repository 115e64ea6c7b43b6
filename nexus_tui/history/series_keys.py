"""The names of the series every run has, and of the x axes they are drawn against.

Apart from runview.py (the series themselves, numpy columns) so the widgets of the first frame can
know the names without importing numpy: the data path is imported after the first frame.
"""

SERIES_KEYS = ("loss", "ce", "lr", "gnorm", "tok_s", "mem", "val_loss", "val_ppl")
METRIC_KEYS = ("loss", "ce", "lr", "gnorm", "tok_s", "mem")
EVAL_KEYS = ("val_loss", "val_ppl")
X_AXES = ("step", "tokens", "time")
