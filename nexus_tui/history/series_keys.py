"""The names of the series every run has, and of the x axes they are drawn against.

Apart from runview.py (the series themselves, numpy columns) so the widgets of the first frame can
know the names without importing numpy: the data path is imported after the first frame. The names
come from the record types' one table (`nexus_core.recordtypes.METRIC_VALUES`).
"""

from nexus_core.recordtypes import EVAL_VALUES, METRIC_VALUES

NOT_SERIES = ("step_s",)
"""Standard numbers with no series of their own: step_s is tok_s seen upside down (its chart would say
the same); the blocks, export and the report keep it."""
METRIC_KEYS = tuple(k for k in METRIC_VALUES if k not in NOT_SERIES)
EVAL_KEYS = EVAL_VALUES
SERIES_KEYS = (*METRIC_KEYS, *EVAL_KEYS)
X_AXES = ("step", "tokens", "time")
