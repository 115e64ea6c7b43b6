"""wandb's data types, shaped like wandb's: `Table`, `Histogram`, `Image`, `Audio`, `Video`, `Html`...

`run.log({"samples": nexus.Table(columns=[...], data=[...])})` files a typed record (nexus_core/
recordtypes.py: table, histogram, media); a picture or sound is saved under the run folder's media/
through nexus_core/safefile.py (never over or through an existing file). Each type turns itself into
records with `_records(sink, key, step)`; `richlog.py` decides which values need that.
numpy (imported when a value needs it: `import nexus` stays light) is the only library used directly;
torch tensors and PIL images are read through their methods.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nexus_core import protocol as P
from nexus_core.recordtypes import MAX_HISTOGRAM_BINS, MAX_TABLE_CELLS

if TYPE_CHECKING:
    import numpy as np

MAX_TABLE_COLUMNS = 1000


class Sink(Protocol):
    """Where media records go: the run (its folder and its record queue)."""

    dir: Path

    def _put_media(self, record: dict[str, Any]) -> None: ...

    def _media_name(self, key: str, step: int, suffix: str) -> Path: ...


class WBValue:
    """What every wandb data type is (wandb.sdk.data_types.base_types.WBValue)."""

    def _records(self, sink: Sink, key: str, step: int) -> list[dict[str, Any]]:
        raise NotImplementedError


def as_array(value: Any) -> np.ndarray:
    """A tensor (any device), a list or an array as a numpy array (the one device read is here)."""
    import numpy as np

    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = (
            value.detach().float().cpu().numpy()
            if value.dtype.is_floating_point
            else value.detach().cpu().numpy()
        )
    return np.asarray(value)


def cell(value: Any) -> Any:
    """A table cell as msgpack holds it: numbers and text as they are, media by their kind."""
    import numpy as np

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "numel") and value.numel() == 1:
        return float(value.item())
    if isinstance(value, WBValue):
        return f"<{type(value).__name__}>"
    return str(value)[:1000]


class Table(WBValue):
    """wandb.Table: columns and rows; add_data/add_column/get_column as in wandb."""

    def __init__(
        self,
        columns: Sequence[Any] | None = None,
        data: Any = None,
        rows: Any = None,
        dataframe: Any = None,
        dtype: Any = None,
        optional: Any = True,
        allow_mixed_types: bool = False,
        log_mode: str | None = None,
    ) -> None:
        if dataframe is not None:
            columns = [str(c) for c in dataframe.columns]
            data = dataframe.values.tolist()
        data = data if data is not None else rows
        if data is not None and hasattr(data, "tolist"):
            data = data.tolist()
        self.data: list[list[Any]] = [list(r) for r in (data or [])]
        width = len(self.data[0]) if self.data else 0
        self.columns: list[str] = (
            [str(c) for c in columns] if columns is not None else [f"c{i}" for i in range(width)]
        )

    def add_data(self, *row: Any) -> None:
        self.data.append(list(row))

    def add_column(self, name: str, data: Sequence[Any], optional: bool = False) -> None:
        self.columns.append(str(name))
        if not self.data:
            self.data = [[v] for v in data]
        else:
            for r, v in zip(self.data, data, strict=False):
                r.append(v)

    def get_column(self, name: str, convert_to: str | None = None) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.data]

    def get_index(self) -> list[int]:
        return list(range(len(self.data)))

    def _records(self, sink: Sink, key: str, step: int) -> list[dict[str, Any]]:
        """One table record, cut to what every reader decodes (MAX_TABLE_CELLS cells, half the
        protocol's record size): a longer table keeps its first rows."""
        import msgpack

        columns = [str(c)[:200] for c in self.columns[:MAX_TABLE_COLUMNS]]
        width = max(len(columns), 1)
        rows = [[cell(v) for v in r[:MAX_TABLE_COLUMNS]] for r in self.data[: MAX_TABLE_CELLS // width]]
        while rows and len(msgpack.packb(rows, use_bin_type=True)) > P.MAX_RECORD_BYTES // 2:
            rows = rows[: len(rows) // 2]
        return [{"type": P.TABLE, "key": key, "columns": columns, "rows": rows, "step": step}]


class Histogram(WBValue):
    """wandb.Histogram(sequence, num_bins=64) or Histogram(np_histogram=(counts, edges))."""

    def __init__(self, sequence: Any = None, np_histogram: Any = None, num_bins: int = 64) -> None:
        import numpy as np

        if np_histogram is not None:
            counts, edges = np_histogram
        else:
            values = as_array(sequence if sequence is not None else []).astype(float).ravel()
            values = values[np.isfinite(values)]
            bins = max(1, min(int(num_bins), MAX_HISTOGRAM_BINS))
            counts, edges = (
                np.histogram(values, bins=bins) if values.size else (np.zeros(1), np.array([0.0, 1.0]))
            )
        self.histogram = [float(c) for c in np.asarray(counts).ravel()[:MAX_HISTOGRAM_BINS]]
        self.bins = [float(e) for e in np.asarray(edges).ravel()[: len(self.histogram) + 1]]

    def _records(self, sink: Sink, key: str, step: int) -> list[dict[str, Any]]:
        return [{"type": P.HISTOGRAM, "key": key, "edges": self.bins, "counts": self.histogram, "step": step}]


class _File(WBValue):
    """A media value kept as a file under the run folder: a path copied in, or data encoded here."""

    kind = "file"
    suffix = ".bin"
    text_is_data = False
    """A str is the content (Html), not a path to the file (Image, Audio...)."""

    def __init__(self, data_or_path: Any = None, caption: str | None = None, **kwargs: Any) -> None:
        self.data = data_or_path
        self.caption = "" if caption is None else str(caption)
        self.width: int | None = None
        self.height: int | None = None

    def _encode(self) -> tuple[bytes, str]:
        """(bytes, suffix) for in-memory data."""
        import numpy as np

        data = self.data
        if isinstance(data, bytes):
            return data, self.suffix
        if isinstance(data, str):
            return data.encode(), self.suffix
        if hasattr(data, "read"):
            return data.read(), self.suffix
        return np.asarray(data).tobytes(), ".bin"

    def _records(self, sink: Sink, key: str, step: int) -> list[dict[str, Any]]:
        from nexus_core.safefile import copy_in, write_new

        data = self.data
        if isinstance(data, Path) or (isinstance(data, str) and not self.text_is_data):
            if not Path(data).is_file():
                raise FileNotFoundError(2, f"no file {str(data)[:200]!r} to keep as {self.kind}")
            target = sink._media_name(key, step, Path(data).suffix or self.suffix)
            copy_in(data, target)
        else:
            raw, suffix = self._encode()
            target = sink._media_name(key, step, suffix)
            write_new(target, raw)
        return [
            {
                "type": P.MEDIA,
                "key": key,
                "kind": self.kind,
                "path": str(target.relative_to(sink.dir)),
                "caption": self.caption,
                "width": self.width,
                "height": self.height,
                "step": step,
            }
        ]


class Image(_File):
    """wandb.Image(array | tensor | PIL image | path, caption=...): saved as PNG (with Pillow) or as
    the array itself (.npy) where Pillow is not installed."""

    kind = "image"
    suffix = ".png"

    def __init__(
        self,
        data_or_path: Any = None,
        mode: str | None = None,
        caption: str | None = None,
        grouping: Any = None,
        classes: Any = None,
        boxes: Any = None,
        masks: Any = None,
        file_type: str | None = None,
        normalize: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_or_path, caption)
        self.mode = mode
        self.normalize = normalize
        if not isinstance(data_or_path, (str, Path, bytes)) and data_or_path is not None:
            if (
                hasattr(data_or_path, "size")
                and hasattr(data_or_path, "mode")
                and hasattr(data_or_path, "save")
            ):
                self.width, self.height = data_or_path.size  # a PIL image
            else:
                array = self._pixels()
                self.height, self.width = int(array.shape[0]), int(array.shape[1]) if array.ndim > 1 else 1

    def _pixels(self) -> np.ndarray:
        import numpy as np

        array = as_array(self.data)
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
            array = np.transpose(array, (1, 2, 0))  # CHW (torch) -> HWC
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.dtype != np.uint8:
            array = array.astype(float)
            if self.normalize and array.size and array.max() <= 1.0 and array.min() >= 0.0:
                array = array * 255.0
            array = np.clip(array, 0, 255).astype(np.uint8)
        return array

    def _encode(self) -> tuple[bytes, str]:
        import io

        import numpy as np

        data = self.data
        try:
            from PIL import Image as PILImage
        except ImportError:
            buffer = io.BytesIO()
            np.save(buffer, self._pixels())
            return buffer.getvalue(), ".npy"
        picture = (
            data if hasattr(data, "save") and hasattr(data, "mode") else PILImage.fromarray(self._pixels())
        )
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        return buffer.getvalue(), ".png"


class Audio(_File):
    """wandb.Audio(data_or_path, sample_rate=..., caption=...): a path copied, an array saved as WAV."""

    kind = "audio"
    suffix = ".wav"

    def __init__(
        self, data_or_path: Any = None, sample_rate: int | None = None, caption: str | None = None
    ) -> None:
        super().__init__(data_or_path, caption)
        self.sample_rate = int(sample_rate or 16000)

    def _encode(self) -> tuple[bytes, str]:
        import io
        import wave

        import numpy as np

        if isinstance(self.data, bytes):
            return self.data, self.suffix
        samples = np.clip(as_array(self.data).astype(float), -1.0, 1.0)
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as w:
            w.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes((samples * 32767).astype("<i2").tobytes())
        return buffer.getvalue(), ".wav"


class Video(_File):
    kind = "video"
    suffix = ".mp4"

    def __init__(
        self,
        data_or_path: Any = None,
        caption: str | None = None,
        fps: int | None = None,
        format: str | None = None,
        **kwargs: Any,
    ) -> None:  # noqa: A002 - wandb's name
        super().__init__(data_or_path, caption)
        if format:
            self.suffix = f".{format}"


class Html(_File):
    kind = "html"
    suffix = ".html"
    text_is_data = True

    def __init__(self, data: Any = None, inject: bool = True, **kwargs: Any) -> None:
        super().__init__(data)


class Object3D(_File):
    kind = "object3d"
    suffix = ".json"

    def _encode(self) -> tuple[bytes, str]:
        import numpy as np

        if isinstance(self.data, (bytes, str)) or hasattr(self.data, "read"):
            return super()._encode()
        import io

        buffer = io.BytesIO()
        np.save(buffer, as_array(self.data))
        return buffer.getvalue(), ".npy"


class Molecule(_File):
    kind = "molecule"
    suffix = ".pdb"


class Plotly(_File):
    """A plotly figure, kept as its JSON."""

    kind = "plotly"
    suffix = ".json"
    text_is_data = True

    def _encode(self) -> tuple[bytes, str]:
        to_json = getattr(self.data, "to_json", None)
        return (to_json().encode() if to_json else str(self.data).encode()), ".json"


_NAME_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_stem(key: str) -> str:
    """A logged key as a file name part (never a path: no slashes, no dots in front)."""
    return _NAME_SAFE.sub("_", key).strip("._")[:80] or "media"
