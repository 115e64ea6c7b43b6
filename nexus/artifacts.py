"""Files a run keeps: `wandb.save`, `run.log_code`, `Artifact` / `log_artifact` / `use_artifact`.

Everything is copied under the run folder's files/ (so moving the folder moves them), one folder per
call, each with a manifest.json that lists every file with its size and sha256, so a reader can tell
what was kept and that it is intact. Copies go through nexus_core/safefile.py: never over, or through
a symlink to, something already in the folder. Artifacts are versioned per name: v0, v1, ...
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nexus.compat import skipped
from nexus_core import protocol as P
from nexus_core.safefile import copy_in, open_regular, write_new

MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path) as f:  # the run folder's own copy, just written by copy_in
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def keep_files(folder: Path, files: list[tuple[Path, str]], about: dict[str, Any]) -> dict[str, Any]:
    """Copy (source, name inside folder) pairs into a new `folder` and write its manifest; returns it."""
    folder.mkdir(parents=True, exist_ok=False)
    entries = []
    for source, name in files:
        target = folder / name
        if target.resolve().parent != folder.resolve() and folder.resolve() not in target.resolve().parents:
            continue  # a name with .. in it: never outside the folder
        target.parent.mkdir(parents=True, exist_ok=True)
        size = copy_in(source, target)
        entries.append({"path": name, "size": size, "sha256": _sha256(target)})
    manifest = {**about, "files": entries}
    manifest["digest"] = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
    write_new(folder / MANIFEST, json.dumps(manifest, indent=1, default=str).encode())
    return manifest


def free_folder(base: Path, stem: str) -> Path:
    """base/stem, or base/stem-2, -3... the first that does not exist."""
    folder, n = base / stem, 1
    while folder.exists():
        n += 1
        folder = base / f"{stem}-{n}"
    return folder


class Artifact:
    """wandb.Artifact(name, type): files and directories added, then `run.log_artifact(artifact)`."""

    def __init__(
        self,
        name: str,
        type: str = "dataset",
        description: str | None = None,  # noqa: A002
        metadata: dict[str, Any] | None = None,
        incremental: bool = False,
        use_as: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.name = str(name)
        self.type = str(type)
        self.description = description
        self.metadata = dict(metadata or {})
        self.aliases: list[str] = []
        self.version: str | None = None
        self.digest: str | None = None
        self._files: list[tuple[Path, str]] = []
        self._references: list[str] = []
        self._local: Path | None = None
        """The folder it is kept in, once logged (or found by use_artifact)."""
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    def add_file(
        self, local_path: str | os.PathLike[str], name: str | None = None, is_tmp: bool = False, **kwargs: Any
    ) -> None:
        self._files.append((Path(local_path), name or Path(local_path).name))

    def add_dir(self, local_path: str | os.PathLike[str], name: str | None = None, **kwargs: Any) -> None:
        root = Path(local_path)
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                inside = path.relative_to(root).as_posix()
                self._files.append((path, f"{name}/{inside}" if name else inside))

    def add_reference(self, uri: str, name: str | None = None, **kwargs: Any) -> None:
        """Kept as a line in the manifest (the file behind a URI is not fetched offline)."""
        self._references.append(str(uri))

    def add(self, obj: Any, name: str) -> None:
        skipped("Artifact.add()", "W&B objects inside artifacts are not kept; add_file works")

    @contextlib.contextmanager
    def new_file(self, name: str, mode: str = "x", encoding: str | None = None) -> Iterator[Any]:
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="nexus-artifact-")
        path = Path(self._scratch.name) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, mode.replace("x", "w"), encoding=encoding) as f:  # a scratch file of our own
            yield f
        self._files.append((path, name))

    def download(self, root: str | None = None, **kwargs: Any) -> str:
        """The folder the files are kept in (a logged or found artifact), else an empty one."""
        if self._local is not None:
            return str(self._local)
        skipped("Artifact.download()", f"artifact {self.name!r} was not found in any local run folder")
        return tempfile.mkdtemp(prefix="nexus-artifact-")

    def get_path(self, name: str) -> Any:
        return _Entry(Path(self.download()) / name)

    def get_entry(self, name: str) -> Any:
        return self.get_path(name)

    def file(self, root: str | None = None) -> str:
        folder = Path(self.download(root))
        found = [p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST]
        return str(found[0]) if found else str(folder)

    def wait(self, timeout: int | None = None) -> Artifact:
        return self

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Kept when the run logs it (run.log_artifact)."""

    def link(self, *args: Any, **kwargs: Any) -> None:
        skipped("Artifact.link()", "the model registry needs W&B's server")

    def __repr__(self) -> str:
        return f"Artifact({self.name!r}, type={self.type!r}, version={self.version})"


class _Entry:
    def __init__(self, path: Path) -> None:
        self.path = path

    def download(self, root: str | None = None) -> str:
        return str(self.path)


class RunFiles:
    """A run's files/ folder: what save, log_code and log_artifact put there."""

    def __init__(self, run_dir: Path, say: Callable[[str], None]) -> None:
        self.base = run_dir / P.FILES_DIR
        self.say = say

    def save(
        self,
        glob_str: str | os.PathLike[str] | None = None,
        base_path: str | None = None,
        policy: str = "live",
    ) -> list[str]:
        if glob_str is None:
            return []
        pattern = str(glob_str)
        base = (
            Path(base_path)
            if base_path
            else Path(pattern).parent
            if not any(c in str(Path(pattern).parent) for c in "*?[")
            else Path(".")
        )
        found = sorted(Path(p) for p in _glob(pattern) if Path(p).is_file())
        if not found:
            self.say(f"wandb.save({pattern!r}): no file matched; nothing kept")
            return []
        pairs = [(p, _inside(p, base)) for p in found]
        folder = free_folder(self.base, "saved")
        manifest = keep_files(folder, pairs, {"kind": "save", "glob": pattern, "policy": policy})
        self.say(f"kept {len(manifest['files'])} file(s) in {folder.relative_to(self.base.parent)}")
        return [str(folder / name) for _, name in pairs]

    def log_code(
        self,
        root: str | os.PathLike[str] | None = ".",
        name: str | None = None,
        include_fn: Callable[..., bool] | None = None,
        exclude_fn: Callable[..., bool] | None = None,
    ) -> Artifact | None:
        source = Path(root or ".")
        files = []
        for path in sorted(source.rglob("*")):
            if not path.is_file() or path.is_symlink() or any(part.startswith(".") for part in path.parts):
                continue
            keep = include_fn(str(path), str(source)) if include_fn else path.suffix == ".py"
            if keep and not (exclude_fn and exclude_fn(str(path), str(source))):
                files.append((path, path.relative_to(source).as_posix()))
            if len(files) >= 10_000:
                break
        artifact = Artifact(name or "source", type="code")
        artifact._files = files
        return self.log_artifact(artifact)

    def log_artifact(
        self,
        artifact_or_path: Any,
        name: str | None = None,
        type: str | None = None,  # noqa: A002
        aliases: list[str] | None = None,
        tags: list[str] | None = None,
    ) -> Artifact:
        artifact = artifact_or_path
        if not isinstance(artifact, Artifact):
            path = Path(artifact_or_path)
            artifact = Artifact(name or path.name, type or "unspecified")
            (artifact.add_dir if path.is_dir() else artifact.add_file)(path)
        stem = (
            "".join(c if c.isalnum() or c in "._-" else "_" for c in artifact.name).strip("._") or "artifact"
        )
        versions = self.base / "artifacts" / stem
        n = 0
        while (versions / f"v{n}").exists():
            n += 1
        artifact.aliases = list(aliases or ["latest"])
        manifest = keep_files(
            versions / f"v{n}",
            artifact._files,
            {
                "kind": "artifact",
                "name": artifact.name,
                "type": artifact.type,
                "version": f"v{n}",
                "description": artifact.description,
                "metadata": artifact.metadata,
                "aliases": artifact.aliases,
                "references": artifact._references,
            },
        )
        artifact.version, artifact.digest, artifact._local = f"v{n}", manifest["digest"], versions / f"v{n}"
        self.say(
            f"artifact {artifact.name}:v{n} kept ({len(manifest['files'])} files, digest "
            f"{manifest['digest'][:12]})"
        )
        return artifact

    def use_artifact(
        self,
        artifact_or_name: Any,
        type: str | None = None,  # noqa: A002
        aliases: list[str] | None = None,
        use_as: str | None = None,
    ) -> Artifact:
        if isinstance(artifact_or_name, Artifact):
            return artifact_or_name
        text = str(artifact_or_name).rsplit("/", 1)[-1]
        name, _, alias = text.partition(":")
        artifact = Artifact(name, type or "unspecified")
        found = _find(self.base.parent.parent, name, alias)
        if found is not None:
            artifact._local, artifact.version = found, found.name
        return artifact


def _find(root: Path, name: str, alias: str) -> Path | None:
    """The newest local copy of artifact `name` (or its version `alias`, e.g. v1) among the runs in root."""
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._")
    best: tuple[float, Path] | None = None
    with contextlib.suppress(OSError):
        for run in root.iterdir():
            versions = run / P.FILES_DIR / "artifacts" / stem
            if not versions.is_dir():
                continue
            for v in versions.iterdir():
                if alias.startswith("v") and alias[1:].isdigit() and v.name != alias:
                    continue
                at = (v / MANIFEST).stat().st_mtime if (v / MANIFEST).exists() else 0.0
                if best is None or at > best[0]:
                    best = (at, v)
    return best[1] if best else None


def _glob(pattern: str) -> list[str]:
    import glob

    return glob.glob(pattern, recursive=True) if any(c in pattern for c in "*?[") else [pattern]


def _inside(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.name
