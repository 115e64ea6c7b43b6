"""The wandb calls people use, run in order against one library: `python wandb_calls.py wandb|nexus DIR`.

Prints one JSON line per call: {"call": name, "ok": bool, "error": "..."}; never stops at a failure,
so a side-by-side test sees every call. With "wandb" it is the real wandb (offline, WANDB_MODE set by
the caller); with "nexus" it is `import nexus as wandb`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

which, folder = sys.argv[1], Path(sys.argv[2])
os.chdir(folder)
if which == "wandb":
    import wandb
else:
    import nexus as wandb

Path("notes.txt").write_text("kept\n")
Path("model.bin").write_bytes(b"\0" * 64)
model = torch.nn.Linear(4, 2)
ctx: dict = {}


def first_init():
    ctx["run"] = wandb.init(
        project="drop-in",
        name="calls",
        config={"lr": 0.1, "layers": 2},
        tags=["a", "b"],
        notes="side by side",
        group="g1",
        job_type="train",
        dir=".",
    )


def log_tensor():
    out = model(torch.randn(8, 4)).pow(2).mean()
    out.backward()
    wandb.log({"loss": out.detach(), "weights": torch.randn(100)})


def artifact():
    a = wandb.Artifact("data", type="dataset", metadata={"rows": 3})
    a.add_file("notes.txt")
    ctx["artifact"] = a


CALLS = [
    ("init", first_init),
    ("config.update", lambda: wandb.config.update({"batch": 32})),
    ("config attribute", lambda: setattr(wandb.config, "dropout", 0.1)),
    ("run.config read", lambda: ctx["run"].config["lr"]),
    ("log numbers", lambda: wandb.log({"loss": 1.0, "acc": 0.5})),
    ("log step=", lambda: wandb.log({"loss": 0.9}, step=5)),
    ("log commit=False", lambda: wandb.log({"extra": 1.0}, commit=False)),
    ("log nested dict", lambda: wandb.log({"train": {"loss": 0.8, "acc": 0.6}})),
    ("log string", lambda: wandb.log({"note": "hello"})),
    ("log tensor 100 elements", log_tensor),
    ("log numpy array", lambda: wandb.log({"arr": np.arange(50, dtype=float)})),
    ("run.log", lambda: ctx["run"].log({"loss": 0.7})),
    ("summary set", lambda: wandb.run.summary.__setitem__("best", 0.1)),
    ("summary.update", lambda: ctx["run"].summary.update({"final": 0.2})),
    ("define_metric step", lambda: wandb.define_metric("iter")),
    (
        "define_metric step_metric summary",
        lambda: wandb.define_metric("loss", step_metric="iter", summary="min"),
    ),
    ("define_metric glob", lambda: wandb.define_metric("val/*", step_metric="iter")),
    ("Table", lambda: wandb.log({"table": wandb.Table(columns=["a", "b"], data=[[1, "x"], [2, "y"]])})),
    ("Table.add_data", lambda: wandb.Table(columns=["p", "q"]).add_data(1, 2)),
    ("Image", lambda: wandb.log({"img": wandb.Image(np.random.rand(8, 8, 3), caption="noise")})),
    ("Histogram", lambda: wandb.log({"hist": wandb.Histogram(np.random.randn(200))})),
    ("Html", lambda: wandb.log({"html": wandb.Html("<b>hi</b>")})),
    (
        "plot.line",
        lambda: wandb.log(
            {
                "pl": wandb.plot.line(
                    wandb.Table(columns=["x", "y"], data=[[1, 2], [2, 3]]), "x", "y", title="t"
                )
            }
        ),
    ),
    (
        "plot.scatter",
        lambda: wandb.log(
            {"ps": wandb.plot.scatter(wandb.Table(columns=["x", "y"], data=[[1, 2], [2, 3]]), "x", "y")}
        ),
    ),
    (
        "plot.bar",
        lambda: wandb.log(
            {"pb": wandb.plot.bar(wandb.Table(columns=["l", "v"], data=[["a", 2], ["b", 3]]), "l", "v")}
        ),
    ),
    (
        "plot.histogram",
        lambda: wandb.log({"ph": wandb.plot.histogram(wandb.Table(columns=["v"], data=[[1.0], [2.0]]), "v")}),
    ),
    (
        "plot.line_series",
        lambda: wandb.log(
            {
                "pls": wandb.plot.line_series(
                    xs=[0, 1, 2], ys=[[1, 2, 3], [3, 2, 1]], keys=["up", "down"], title="two"
                )
            }
        ),
    ),
    (
        "plot.confusion_matrix",
        lambda: wandb.log(
            {"cm": wandb.plot.confusion_matrix(y_true=[0, 1, 1], preds=[0, 1, 0], class_names=["n", "p"])}
        ),
    ),
    ("save", lambda: wandb.save("notes.txt")),
    ("Settings", lambda: wandb.Settings(mode="offline")),
    ("login", lambda: wandb.login(anonymous="never", key="x" * 40, verify=False)),
    ("Api", lambda: wandb.Api()),
    ("Artifact", artifact),
    ("log_artifact", lambda: ctx["run"].log_artifact(ctx["artifact"])),
    ("use_artifact", lambda: ctx["run"].use_artifact("data:latest")),
    ("log_code", lambda: ctx["run"].log_code(".")),
    ("watch", lambda: wandb.watch(model, log="all", log_freq=1)),
    ("unwatch", lambda: wandb.unwatch(model)),
    ("mark_preempting", lambda: ctx["run"].mark_preempting()),
    ("run.project", lambda: ctx["run"].project),
    ("run.tags", lambda: ctx["run"].tags),
    ("run.group", lambda: ctx["run"].group),
    ("run.notes", lambda: ctx["run"].notes),
    ("run.url", lambda: ctx["run"].url),
    ("run.name/id/dir", lambda: (ctx["run"].name, ctx["run"].id, ctx["run"].dir)),
    ("alert", lambda: wandb.alert(title="t", text="x")),
    ("finish", lambda: wandb.finish()),
    ("init(mode=disabled)", lambda: wandb.init(mode="disabled").log({"x": 1.0})),
    ("init(sweep_id=)", lambda: wandb.init(project="drop-in", sweep_id="abc123", dir=".").finish()),
]

for name, call in CALLS:
    try:
        call()
        result = {"call": name, "ok": True}
    except BaseException as e:  # noqa: BLE001 - the point is to see every failure
        result = {"call": name, "ok": False, "error": f"{type(e).__name__}: {str(e)[:200]}"}
    print(json.dumps(result), flush=True)
