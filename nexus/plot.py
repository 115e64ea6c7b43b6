"""`wandb.plot.*`: each chart is kept as the table it draws (a table record whose `chart` says which),
so the data survive offline and the dashboard's table view shows them by step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nexus.media import Sink, Table, WBValue, as_array


class Chart(WBValue):
    """What wandb.plot.* returns; logging it files its table with the chart's kind and title."""

    def __init__(self, kind: str, table: Table, fields: dict[str, Any], title: str | None = None) -> None:
        self.kind, self.table, self.fields, self.title = kind, table, fields, title or ""

    def _records(self, sink: Sink, key: str, step: int) -> list[dict[str, Any]]:
        records = self.table._records(sink, key, step)
        records[0]["chart"] = self.kind
        return records


def line(
    table: Table,
    x: str,
    y: str,
    stroke: str | None = None,
    title: str | None = None,
    split_table: bool = False,
) -> Chart:
    return Chart("line", table, {"x": x, "y": y}, title)


def scatter(table: Table, x: str, y: str, title: str | None = None, split_table: bool = False) -> Chart:
    return Chart("scatter", table, {"x": x, "y": y}, title)


def bar(table: Table, label: str, value: str, title: str | None = None, split_table: bool = False) -> Chart:
    return Chart("bar", table, {"label": label, "value": value}, title)


def histogram(table: Table, value: str, title: str | None = None, split_table: bool = False) -> Chart:
    return Chart("histogram", table, {"value": value}, title)


def line_series(
    xs: Sequence[Any],
    ys: Sequence[Sequence[Any]],
    keys: Sequence[str] | None = None,
    title: str | None = None,
    xname: str | None = None,
    split_table: bool = False,
) -> Chart:
    """Several lines over shared (or per-line) xs, as one long table: line name, x, y."""
    import numpy as np

    keys = list(keys) if keys is not None else [f"line_{i}" for i in range(len(ys))]
    per_line = len(xs) > 0 and isinstance(xs[0], (list, tuple, np.ndarray))
    rows = []
    for i, series in enumerate(ys):
        line_xs = xs[i] if per_line else xs
        rows += [
            [keys[i] if i < len(keys) else f"line_{i}", x, y] for x, y in zip(line_xs, series, strict=False)
        ]
    return Chart("line_series", Table(columns=["lineKey", xname or "x", "y"], data=rows), {}, title)


def confusion_matrix(
    probs: Any = None,
    y_true: Any = None,
    preds: Any = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    split_table: bool = False,
) -> Chart:
    """Counts per (actual, predicted) pair, as wandb computes them."""
    import numpy as np

    truth = as_array(y_true).astype(int).ravel()
    guess = (
        as_array(preds).astype(int).ravel() if preds is not None else as_array(probs).argmax(axis=-1).ravel()
    )
    n = int(max(truth.max(initial=-1), guess.max(initial=-1)) + 1)
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    counts = np.zeros((max(n, len(names)), max(n, len(names))), dtype=int)
    np.add.at(counts, (truth, guess), 1)
    rows = [
        [names[a] if a < len(names) else str(a), names[p] if p < len(names) else str(p), int(counts[a, p])]
        for a in range(counts.shape[0])
        for p in range(counts.shape[1])
    ]
    return Chart(
        "confusion_matrix", Table(columns=["Actual", "Predicted", "nPredictions"], data=rows), {}, title
    )


def _curve(kind: str, y_true: Any, y_probas: Any, labels: Sequence[str] | None, title: str | None) -> Chart:
    import numpy as np

    truth = as_array(y_true).ravel()
    probas = as_array(y_probas)
    probas = probas.reshape(len(truth), -1)
    rows = []
    for c in range(probas.shape[1]):
        name = labels[c] if labels is not None and c < len(labels) else str(c)
        positive = truth == c
        order = np.argsort(-probas[:, c])
        tp = np.cumsum(positive[order])
        fp = np.cumsum(~positive[order])
        total_p, total_n = max(int(positive.sum()), 1), max(int((~positive).sum()), 1)
        for i in range(0, len(order), max(1, len(order) // 100)):
            if kind == "roc":
                rows.append([name, fp[i] / total_n, tp[i] / total_p])
            else:
                rows.append([name, tp[i] / total_p, tp[i] / (tp[i] + fp[i])])
    columns = ["class", "fpr", "tpr"] if kind == "roc" else ["class", "recall", "precision"]
    return Chart(f"{kind}_curve", Table(columns=columns, data=rows), {}, title)


def roc_curve(
    y_true: Any = None,
    y_probas: Any = None,
    labels: Sequence[str] | None = None,
    classes_to_plot: Any = None,
    title: str | None = None,
    split_table: bool = False,
) -> Chart:
    return _curve("roc", y_true, y_probas, labels, title)


def pr_curve(
    y_true: Any = None,
    y_probas: Any = None,
    labels: Sequence[str] | None = None,
    classes_to_plot: Any = None,
    interp_size: int = 21,
    title: str | None = None,
    split_table: bool = False,
) -> Chart:
    return _curve("pr", y_true, y_probas, labels, title)
