"""Run configuration from files and the command line: TOML presets, config files, `section.key=value`
overrides, over the section dataclasses of `config_schema.py` (re-exported here, the one import point).

A bad value costs a one-line ConfigError before any tensor is made, instead of a crash minutes into
training. Old flat run folders (family options directly in [model]) migrate on read.
"""

from __future__ import annotations

import errno
import sys
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

from nexus_core.config_schema import (  # re-exported (see __all__)
    SECTIONS,
    SHARED_MODEL_OPTIONS,
    Config,
    DataConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    all_sections,
    flatten,
)
from nexus_core.errors import ConfigError
from nexus_core.families import FLAT_KEYS, migrate, new_key
from nexus_core.limits import (  # re-exported (see __all__)
    Range,
    check_fields,
    field_limits,
    subsections,
)
from nexus_core.safefile import read_text
from nexus_core.units import as_int, is_real

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def preset_folders() -> list[Path]:
    """Where presets live: nexus_core/presets (a list, so a user's own folder can join it)."""
    here = Path(str(resources.files("nexus_core")))
    return [d for d in (here / "presets",) if d.is_dir()]


def _preset_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in preset_folders():
        for p in sorted(folder.glob("*.toml")):
            found.setdefault(p.stem, p)
    return found


def preset_names() -> list[str]:
    """Names of the TOML presets shipped in nexus_core/presets."""
    return sorted(_preset_files())


def load_preset(name: str) -> Config:
    """The defaults with a shipped preset applied."""
    files = _preset_files()
    if name not in files:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(sorted(files))}")
    cfg = from_mapping(tomllib.loads(read_text(files[name])), origin=f"preset {name}")
    cfg.preset = name
    return cfg


def read_toml(path: str | Path) -> dict[str, Any]:
    """The one TOML file reader (tomllib, or tomli on Python 3.10): a mapping, or one ConfigError line.
    Bounded like every run-folder reader: a regular file of at most 4 MiB (a FIFO or /dev/zero is
    refused, not read forever), a UTF-8 BOM is dropped (editors on Windows write one), and nesting
    deep enough to exhaust the parser's stack is one ConfigError, as is anything else wrong."""
    p = Path(path)
    try:
        text = read_text(p)
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except OSError as e:
        if e.errno == errno.EISDIR:
            raise ConfigError(f"config file {p} is a folder; give a TOML file") from None
        raise ConfigError(f"config file {p} cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p} is not UTF-8 text") from None
    try:
        table: dict[str, Any] = tomllib.loads(text)
        return table
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {p} is not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"config file {p} is nested too deeply to be a config") from None


def load_toml(path: str | Path) -> Config:
    """A run folder's config.toml (or any config file): any subset of the sections, defaults for the
    rest. A folder written before the family tables migrates (families.migrate), no error."""
    return from_mapping(read_toml(path), origin=str(path), strict=False)


def from_mapping(
    data: dict[str, Any], origin: str = "config", base: Config | None = None, strict: bool = True
) -> Config:
    """Apply a nested mapping (as read from TOML) over `base` (or the defaults), checking every key.
    Old flat family keys migrate; `strict` refuses one of another family that is not its default."""
    cfg = base if base is not None else Config()
    try:
        data = migrate(data, cfg.model.family, strict=strict)
    except ConfigError as e:
        raise ConfigError(f"{origin}: {e}") from None
    for key, value in data.items():
        if key in ("name", "preset"):
            if not isinstance(value, str):
                raise ConfigError(f"{origin}: {key} must be a string")
            setattr(cfg, key, value)
        elif key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: [{key}] must be a table")
            for path, leaf in _leaves(value, [key]):
                _set_path(cfg, path, leaf, origin)
        else:
            raise ConfigError(f"{origin}: unknown section {key!r}; sections are {', '.join(SECTIONS)}")
    return cfg


def _leaves(table: dict[str, Any], path: list[str]) -> list[tuple[list[str], Any]]:
    """(key path, value) of every non-table value; no config field takes a table as its value."""
    out = []
    for key, value in table.items():
        if isinstance(value, dict):
            out += _leaves(value, [*path, key])
        else:
            out.append(([*path, key], value))
    return out


def apply_override(cfg: Config, text: str) -> Config:
    """Apply one `section.key=value` (or `model.<family>.key=value`) override; the value is parsed as a
    TOML value, or taken as a string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. optim.lr=1e-3")
    path, raw = text.split("=", 1)
    parts = [p.strip() for p in path.split(".")]
    if parts[0] not in SECTIONS:
        raise ConfigError(
            f"override {text!r}: unknown section {parts[0]!r}; sections are {', '.join(SECTIONS)}"
        )
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    except ValueError:  # e.g. an integer past Python's 4300-digit conversion limit
        raise ConfigError(f"override {path.strip()!r}: the value is too large") from None
    shown = text if len(text) <= 80 else text[:60] + "…"
    _set_path(cfg, parts, value, f"override {shown!r}")
    return cfg


def _set_path(cfg: Config, path: list[str], value: Any, origin: str) -> None:
    """Set one value by its key path (['model', 'hybrid', 'ssm_state']). An old flat family key
    (`model.ssm_state`) still works: it names its new place, which the check then holds to the family."""
    if len(path) == 2 and path[0] == "model" and path[1] in FLAT_KEYS:
        path = new_key(path[1]).split(".")
    section, name = getattr(cfg, path[0]), path[0]
    for key in path[1:-1]:
        subs = subsections(section)
        if key not in subs:
            if key in field_limits(section):
                raise ConfigError(f"{origin}: {name}.{key} is a value, not a table")
            raise ConfigError(
                f"{origin}: unknown table {name}.{key}; tables: {', '.join(sorted(subs)) or 'none'}"
            )
        section, name = subs[key], f"{name}.{key}"
    _set_field(section, name, path[-1], value, origin)
    if len(path) == 3 and path[0] == "model":
        cfg.model.mark_given(path[1], path[2])


def _set_field(section: Any, section_name: str, key: str, value: Any, origin: str) -> None:
    subs = subsections(section)
    if key in subs:
        raise ConfigError(
            f"{origin}: {section_name}.{key} is a table: set {section_name}.{key}.KEY, e.g. "
            f"{section_name}.{key}.{fields(subs[key])[0].name}"
        )
    types = {f.name: f.type for f in fields(section) if f.name not in subs}
    if key not in types:
        tables = f"; tables: {', '.join(sorted(subs))}" if subs else ""
        raise ConfigError(
            f"{origin}: unknown key {section_name}.{key}; known keys: {', '.join(sorted(types))}{tables}"
        )
    current = getattr(section, key)
    want = type(current)
    if want is float and as_int(value) is not None:
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"{origin}: {section_name}.{key} is far too large for a number") from None
    elif want is str and is_real(value):
        value = str(value)
    if want is list and isinstance(value, list):
        if not all(as_int(x) is not None for x in value):
            raise ConfigError(f"{origin}: {section_name}.{key} must be a list of integers")
    elif not isinstance(value, want) or (want is int and isinstance(value, bool)):
        raise ConfigError(
            f"{origin}: {section_name}.{key} must be {want.__name__}, got {type(value).__name__} {value!r}"
        )
    setattr(section, key, value)


# The config's one import point: its own functions and the schema's classes it re-exports.
__all__ = [
    "ConfigError",
    "SECTIONS",
    "SHARED_MODEL_OPTIONS",
    "Config",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "all_sections",
    "flatten",
    "Range",
    "check_fields",
    "field_limits",
    "subsections",
    "preset_folders",
    "preset_names",
    "load_preset",
    "read_toml",
    "load_toml",
    "from_mapping",
    "apply_override",
]
