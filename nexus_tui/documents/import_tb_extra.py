"""What a TensorBoard log folder holds beyond scalars, for `nexus import-tb`: which folders are runs,
hparams, histograms, images and text.

- Runs: every folder with event files belongs to the run named by its path under LOGDIR with its
  trailing Keras section folders (`train/`, `validation/`...) and torch's add_hparams folders (a
  unix-time name such as `1796687623.93/`) taken off; LOGDIR/a/... and LOGDIR/b/... are two runs.
- hparams (the hparams plugin's session start info, wherever it is written) become the run's config;
  the scalars of an add_hparams folder (`hparam/final`) its summary, not series.
- histograms (legacy HistogramProto and TF2 tensors), images (PNG/JPEG bytes) and text become the
  protocol's histogram, media and text records at their steps (docs/PROTOCOL.md).
TensorBoard's own readers parse everything (EventAccumulator, EventFileLoader, the plugins' protos).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from nexus_core import protocol as P
from nexus_core.recordtypes import MAX_HISTOGRAM_BINS

SECTIONS = frozenset({"train", "training", "validation", "val", "valid", "eval", "test"})
HPARAMS_FOLDER = re.compile(r"^\d{6,}(\.\d+)?$")
"""torch's SummaryWriter.add_hparams writes into a sub-folder named by the time: `1796687623.93`."""
MAX_IMAGES = 2000
MAX_TEXT = 100_000


@dataclass
class Extra:
    """A run's non-scalar content: config (hparams), summary, and records with their files."""

    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    """Path under the run folder -> bytes (the images), written with the run."""


def run_key(rel: str) -> tuple[str, str, bool]:
    """A folder's path under LOGDIR -> (run key, tag prefix, is an add_hparams folder)."""
    parts = [] if rel == "." else rel.replace(os.sep, "/").split("/")
    tail: list[str] = []
    hparams = False
    while parts and (parts[-1].lower() in SECTIONS or HPARAMS_FOLDER.match(parts[-1])):
        last = parts.pop()
        if HPARAMS_FOLDER.match(last):
            hparams = True
        else:
            tail.insert(0, last)
    prefix = "/".join(tail) + "/" if tail else ""
    return "/".join(parts), prefix, hparams


def read_hparams(folder: str, files: list[str], extra: Extra) -> None:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2

    for name in files:
        for event in EventFileLoader(os.path.join(folder, name)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "hparams":
                    continue
                try:
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                except Exception:  # noqa: BLE001 - a damaged proto: no hparams, not a failed import
                    continue
                if data.HasField("session_start_info"):
                    for key, v in data.session_start_info.hparams.items():
                        kind = v.WhichOneof("kind")
                        if kind is not None:
                            extra.config[str(key)[:200]] = getattr(v, kind)


def read_media(acc: Any, prefix: str, extra: Extra) -> None:
    """Histograms, images and text of one folder's EventAccumulator into `extra`."""
    from tensorboard.util import tensor_util

    tags = acc.Tags()
    for tag in tags.get("histograms", []):
        for ev in acc.Histograms(tag):
            h = ev.histogram_value
            edges, counts = histogram(h.min, h.max, list(h.bucket_limit), list(h.bucket))
            extra.records.append(
                {
                    "type": P.HISTOGRAM,
                    "key": prefix + tag,
                    "step": ev.step,
                    "time": ev.wall_time,
                    "edges": edges,
                    "counts": counts,
                }
            )
    for tag in tags.get("images", []):
        for n, ev in enumerate(acc.Images(tag)):
            if len(extra.files) >= MAX_IMAGES:
                break
            suffix = ".png" if ev.encoded_image_string[:4] == b"\x89PNG" else ".jpg"
            stem = re.sub(r"[^A-Za-z0-9._-]+", "_", prefix + tag).strip("._")[:80] or "image"
            path = f"{P.MEDIA_DIR}/{stem}_{ev.step}_{len(extra.files) + n}{suffix}"
            extra.files[path] = ev.encoded_image_string
            extra.records.append(
                {
                    "type": P.MEDIA,
                    "key": prefix + tag,
                    "kind": "image",
                    "path": path,
                    "width": ev.width,
                    "height": ev.height,
                    "step": ev.step,
                    "time": ev.wall_time,
                }
            )
    for tag in tags.get("tensors", []):
        plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        if plugin not in ("text", "histograms"):
            continue
        key = prefix + (tag[: -len("/text_summary")] if tag.endswith("/text_summary") else tag)
        for ev in acc.Tensors(tag):
            arr = tensor_util.make_ndarray(ev.tensor_proto)
            if plugin == "text":
                text = "\n".join(
                    x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in arr.ravel()
                )
                extra.records.append(
                    {
                        "type": P.TEXT,
                        "key": key,
                        "text": text[:MAX_TEXT],
                        "step": ev.step,
                        "time": ev.wall_time,
                    }
                )
            elif arr.ndim == 2 and arr.shape[1] == 3 and len(arr):  # TF2: [left, right, count] rows
                edges = [float(arr[0, 0])] + [float(r) for r in arr[:, 1]]
                edges, counts = _capped(edges, [float(c) for c in arr[:, 2]])
                extra.records.append(
                    {
                        "type": P.HISTOGRAM,
                        "key": key,
                        "step": ev.step,
                        "time": ev.wall_time,
                        "edges": edges,
                        "counts": counts,
                    }
                )


def histogram(
    lo: float, hi: float, limits: list[float], buckets: list[float]
) -> tuple[list[float], list[float]]:
    """A legacy HistogramProto as (edges, counts): bucket i holds (limit[i-1], limit[i]]; the empty
    buckets at both ends dropped, the ends clamped to the data's min and max."""
    used = [i for i, c in enumerate(buckets) if c]
    if not used or len(limits) != len(buckets):
        return [float(lo), float(hi if hi > lo else lo + 1)], [float(sum(buckets))]
    first, last = used[0], used[-1]
    edges = [float(lo)] + [min(float(limits[i]), float(hi)) for i in range(first, last + 1)]
    edges[-1] = float(hi)
    return _capped(edges, [float(c) for c in buckets[first : last + 1]])


def _capped(edges: list[float], counts: list[float]) -> tuple[list[float], list[float]]:
    """At most MAX_HISTOGRAM_BINS bins: adjacent ones merged in pairs until it fits."""
    while len(counts) > MAX_HISTOGRAM_BINS:
        counts = [sum(counts[i : i + 2]) for i in range(0, len(counts), 2)]
        edges = edges[::2] + ([edges[-1]] if (len(edges) - 1) % 2 else [])
    return edges, counts
