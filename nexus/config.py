"""`run.config` and `run.summary`: dicts with attribute access, shaped like wandb's.

Config changes after `init()` are allowed (`run.config.update(...)`, `run.config.lr = 3e-4`): each
one tells the run, which files a fresh hello and config.toml at the writer's next flush.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any


class Config:
    """Key/attribute access over a plain dict; `on_change` is called after every change."""

    def __init__(
        self, data: Mapping[str, Any] | None = None, on_change: Callable[[], None] | None = None
    ) -> None:
        object.__setattr__(self, "_data", dict(_as_dict(data)))
        object.__setattr__(self, "_on_change", on_change or (lambda: None))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        del self[key]

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[str(key)] = value
        self._on_change()

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._on_change()

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Config({self._data!r})"

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def keys(self) -> Any:
        return self._data.keys()

    def items(self) -> Any:
        return self._data.items()

    def values(self) -> Any:
        return self._data.values()

    def update(self, data: Any = None, allow_val_change: bool = True, **more: Any) -> None:
        """Like dict.update; accepts a dict, an argparse.Namespace or any object with __dict__."""
        self._data.update(_as_dict(data))
        self._data.update(more)
        self._on_change()

    def setdefaults(self, data: Mapping[str, Any]) -> None:
        for k, v in _as_dict(data).items():
            self._data.setdefault(k, v)
        self._on_change()

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)


def _as_dict(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if isinstance(data, Config):
        return data.as_dict()
    if isinstance(data, Mapping):
        return {str(k): v for k, v in data.items()}
    if hasattr(data, "__dict__"):  # argparse.Namespace, a dataclass instance, absl flags...
        return {k: v for k, v in vars(data).items() if not k.startswith("_")}
    raise TypeError(f"config must be a mapping or an object with attributes, not {type(data).__name__}")


class Summary(dict[str, Any]):
    """The run's final numbers: by default the last value of every logged key (filled in by the
    writer), plus whatever the script sets. Written to summary.json at finish()."""

    def __init__(
        self, last_values: Callable[[], Mapping[str, Any]], previous: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        self._last = last_values
        self._previous = dict(previous or {})
        """A resumed run's summary.json: kept under what this process logs and sets."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("_"):
            object.__setattr__(self, key, value)
        else:
            self[key] = value

    def __missing__(self, key: str) -> Any:
        last = self._last()
        return last[key] if key in last else self._previous[key]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._last() or key in self._previous

    def as_dict(self) -> dict[str, Any]:
        return {**self._previous, **self._last(), **self}
