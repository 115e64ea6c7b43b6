"""What `import nexus as wandb` does where wandb's meaning is more than "do not raise": disabled mode,
several live runs, resume keeping config and summary, watch's per-layer norms, define_metric's
summaries, and the reading side (`nexus.Api`) in W&B's wide shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import nexus
from nexus_core import protocol as P


def _records(run_dir: Path, kind: str) -> list[dict]:
    return [r.to_dict() for r in P.read_records(run_dir / P.METRICS_FILE).records if r.type == kind]


@pytest.mark.parametrize("how", ["argument", "env", "settings"])
def test_disabled_writes_nothing_and_takes_every_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.chdir(tmp_path)
    if how == "env":
        monkeypatch.setenv("WANDB_MODE", "disabled")
    kwargs = {"argument": {"mode": "disabled"}, "settings": {"settings": nexus.Settings(mode="disabled")}}
    run = nexus.init(project="p", config={"lr": 0.1}, **kwargs.get(how, {}))
    run.log({"loss": 1.0})
    nexus.log({"loss": 0.5, "img": nexus.Image(torch.rand(3, 4, 4))})
    run.config.batch = 8
    run.summary["best"] = 0.5
    run.watch(torch.nn.Linear(2, 2))
    run.define_metric("loss", summary="min")
    run.log_artifact(nexus.Artifact("x", "dataset"))
    run.finish()
    assert run.config["lr"] == 0.1 and run.config.batch == 8 and run.summary["best"] == 0.5
    assert list(tmp_path.iterdir()) == [] and nexus.run is None


def test_reinit_create_new_keeps_both_runs_live(tmp_path: Path) -> None:
    first = nexus.init(root=tmp_path, name="first")
    second = nexus.init(root=tmp_path, name="second", reinit="create_new")
    assert nexus.run is second and not first._ended
    first.log({"loss": 1.0})
    second.log({"loss": 2.0})
    first.log({"loss": 0.9})
    first.finish()
    second.finish()
    assert [m["loss"] for m in _records(first.dir, P.METRIC)] == [1.0, 0.9]
    assert [m["loss"] for m in _records(second.dir, P.METRIC)] == [2.0]
    again = nexus.init(root=tmp_path, name="third")
    assert nexus.init(root=tmp_path, name="fourth", reinit="return_previous") is again
    nexus.init(root=tmp_path, name="fifth")  # the default finishes the previous one, as in a script
    assert again._ended
    nexus.finish()


@pytest.mark.parametrize("resume", ["allow", "must"])
def test_resume_keeps_config_and_summary_and_continues_steps(tmp_path: Path, resume: str) -> None:
    run = nexus.init(root=tmp_path, name="r", config={"lr": 0.1, "layers": 4})
    for loss in (3.0, 2.0):
        run.log({"loss": loss, "acc": 0.5})
    run.summary["best_acc"] = 0.7
    run.finish()
    again = nexus.init(root=tmp_path, name="r", resume=resume, config={"lr": 0.05})
    again.log({"loss": 1.0})
    again.finish()
    config = P.read_text(again.dir / P.CONFIG_FILE)
    assert "layers = 4" in config and "lr = 0.05" in config
    summary = json.loads((again.dir / "summary.json").read_text())
    assert summary["best_acc"] == 0.7 and summary["acc"] == 0.5 and summary["loss"] == 1.0
    assert [m["step"] for m in _records(again.dir, P.METRIC)] == [1, 2, 3]


def test_watch_records_per_layer_norms_every_log_freq(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = nexus.init(root=tmp_path, name="watched")
    nexus.watch(model, log="all", log_freq=3)
    for _ in range(7):
        loss = model(torch.randn(16, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        grads = {n: float(p.grad.norm()) for n, p in model.named_parameters()}
        opt.step()
        run.log({"loss": loss.detach()})
        if run.step == 2:
            first_grads = grads
    run.finish()
    metrics = _records(run.dir, P.METRIC)
    logged = [m["step"] for m in metrics if "grad_norm/0.weight" in m]
    assert logged == [1, 4, 7]
    names = {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert {k for k in metrics[0] if k.startswith("grad_norm/")} == {f"grad_norm/{n}" for n in names}
    assert {k for k in metrics[0] if k.startswith("param_norm/")} == {f"param_norm/{n}" for n in names}
    assert metrics[0]["grad_norm/2.weight"] == pytest.approx(first_grads["2.weight"], rel=1e-5)
    hists = {(h["key"], h["step"]) for h in _records(run.dir, P.HISTOGRAM)}
    assert ("gradients/0.weight", 1) in hists and ("parameters/2.bias", 7) in hists


def test_define_metric_summary_and_step_metric(tmp_path: Path) -> None:
    run = nexus.init(root=tmp_path, name="defined")
    run.define_metric("iter")
    run.define_metric("val/*", step_metric="iter", summary="min,max")
    run.define_metric("train/acc", summary="max,mean", goal="maximize")
    for i, (val, acc) in enumerate([(3.0, 0.2), (1.0, 0.6), (2.0, 0.4)]):
        run.log({"iter": i * 100, "val/loss": val, "val/bleu": 10 * acc, "train/acc": acc})
    run.finish()
    summary = json.loads((run.dir / "summary.json").read_text())
    assert summary["val/loss"] == {"min": 1.0, "max": 3.0} and summary["val/bleu"] == {"min": 2.0, "max": 6.0}
    assert summary["train/acc"] == {"max": 0.6, "mean": pytest.approx(0.4)}
    hello = [r for r in P.read_records(run.dir / P.METRICS_FILE).records if r.type == P.HELLO][-1]
    assert hello.meta["metrics"]["val/*"] == {"step_metric": "iter", "summary": ["min", "max"]}


def test_api_reads_runs_in_wandbs_wide_shape(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    run = nexus.init(root=tmp_path, name="read", config={"lr": 0.1})
    for step in range(1, 4):
        run.log({"train/loss": 1.0 / step, "acc": step / 10}, step=step)
        if step == 2:
            run.log({"val/loss": 0.7}, step=step)
    run.finish()
    api = nexus.Api(tmp_path)
    (found,) = api.runs()
    assert found.name == "read" and found.state == P.FINISHED and found.config == {"lr": 0.1}
    assert found.summary["acc"] == pytest.approx(0.3)
    frame = found.history()
    assert isinstance(frame, pd.DataFrame) and list(frame["_step"]) == [1, 2, 3]
    assert list(frame["loss"]) == pytest.approx([1.0, 0.5, 1 / 3])
    assert frame["val_loss"].isna().tolist() == [True, False, True]
    rows = list(found.scan_history(keys=["val_loss"]))
    assert [(r["_step"], r["val_loss"]) for r in rows] == [(2, 0.7)]


def test_a_huge_table_is_cut_to_what_readers_decode(tmp_path: Path) -> None:
    run = nexus.init(root=tmp_path, name="huge")
    rows = [[i, "x" * 50] for i in range(200_000)]
    run.log({"big": nexus.Table(columns=["i", "text"], data=rows), "loss": 1.0})
    run.log({"after": nexus.Table(columns=["a"], data=[[1]])})
    run.finish()
    decoded = P.read_records(run.dir / P.METRICS_FILE)
    tables = {r.key: r for r in decoded.records if r.type == P.TABLE}
    assert not decoded.warnings and set(tables) == {"big", "after"}
    assert 1000 <= len(tables["big"].rows) <= 30_000 and tables["big"].rows[0] == [0, "x" * 50]


def test_a_logged_tensor_becomes_a_histogram_without_a_read_on_the_training_thread(tmp_path: Path) -> None:
    import threading

    calls: list[tuple[str, bool]] = []

    class Spy(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            calls.append(
                (getattr(func, "__name__", str(func)), threading.current_thread() is threading.main_thread())
            )
            return super().__torch_function__(func, types, args, kwargs or {})

    run = nexus.init(root=tmp_path, name="lazy-hist")
    weights = torch.arange(100, dtype=torch.float32)
    for step in range(3):
        run.log({"weights": (weights + step).as_subclass(Spy)})
    weights += 1000  # changed in place after log(): the histogram is of what was logged
    on_main = {name for name, main in calls if main}
    run.finish()
    assert not on_main & {"cpu", "numpy", "item", "tolist", "__array__", "histc", "min", "max"}, on_main
    hists = _records(run.dir, P.HISTOGRAM)
    assert [h["step"] for h in hists] == [1, 2, 3] and all(sum(h["counts"]) == 100 for h in hists)
    assert [(h["edges"][0], h["edges"][-1]) for h in hists] == [(0.0, 99.0), (1.0, 100.0), (2.0, 101.0)]
