"""The comparison's tables from the store alone (no runs trained): which value is bold, and which
config keys count when runs of different model families are compared."""

from __future__ import annotations

from pathlib import Path

from support import ROOT
from support.markdown import table_after

from nexus_core.config import SHARED_MODEL_OPTIONS
from nexus_tui.documents.comparison import comparison_markdown, config_differences
from nexus_tui.history.store import MetricStore


def test_bold_marks_the_best_shown_value_and_missing_values_are_dashes() -> None:
    """Through the real store: a run without evals reads as a dash and takes no part in the bold;
    two runs whose best val loss rounds to the same text are both bold."""
    from nexus_tui.documents.comparison import results, results_markdown
    from nexus_tui.history.store import MetricStore

    store = MetricStore()
    for seq_base, (name, val) in enumerate((("x", 2.00001), ("y", 2.00002), ("z", None), ("w", 3.5))):
        recs = [
            {"type": "hello", "seq": 0, "time": 1.0, "config": {"optim": {"lr": 1e-3}}},
            {
                "type": "metric",
                "seq": 1,
                "time": 2.0,
                "step": 1,
                "tokens": 64,
                "ce": 4.0 + seq_base,
                "tok_s": 100.0,
            },
        ]
        if val is not None:
            recs.append({"type": "eval", "seq": 2, "time": 3.0, "step": 1, "tokens": 64, "val_loss": val})
        store.ingest(name, None, recs)
    rows = table_after("#\n" + results_markdown(results(store, ["x", "y", "z", "w"])), "#")
    col = rows[0].index("best val loss (nats)")
    assert [r[col] for r in rows[1:]] == ["**2.0000**", "**2.0000**", "–", "3.5000"]
    h = rows[0].index("final H (nats)")
    assert [r[h] for r in rows[1:]] == ["**4.0000**", "5.0000", "6.0000", "7.0000"]
    tok = rows[0].index("tok/s (median)")
    assert all(not r[tok].startswith("**") for r in rows[1:]), "all equal: nothing wins"


# -- family options: a key only counts among the runs whose model family reads it ----------------


def preset_store(runs: dict[str, tuple[str, list[str]]]) -> MetricStore:
    """A store of runs whose hello records carry real validated configs (preset + overrides), the
    same dicts an engine writes, so the diff sees every default a real run would have."""
    from nexus_core.config import apply_override, load_preset

    store = MetricStore()
    for name, (preset, overrides) in runs.items():
        cfg = load_preset(preset)
        cfg.name = name
        for text in overrides:
            apply_override(cfg, text)
        hello = {"type": "hello", "seq": 0, "time": 1.0, "config": cfg.validate().to_dict()}
        store.ingest(name, None, [hello])
    return store


def diff_rows(store: MetricStore, names: list[str]) -> dict[str, list[str]]:
    rows = table_after(comparison_markdown(store, names), "### Config differences")
    assert rows[0] == ["config key", *names]
    return {r[0].strip("`"): r[1:] for r in rows[1:]}


def test_which_family_reads_a_key_comes_from_the_config_structure() -> None:
    """No table of its own: every key of a run's [model.<family>] counts for that family alone, and a
    new family option is classified the moment it is declared in nexus_core/families.py."""
    from nexus_core.config import Config, ModelConfig, flatten
    from nexus_core.families import FAMILY_OPTIONS, option_family

    for family in FAMILY_OPTIONS:
        keys = flatten(Config(model=ModelConfig(family=family)).validate().to_dict())
        model_keys = {k for k in keys if k.startswith("model.")}
        assert {k for k in model_keys if option_family(k) is None} == {
            f"model.{k}" for k in SHARED_MODEL_OPTIONS
        }
        assert {k.rsplit(".", 1)[1] for k in model_keys if option_family(k)} == set(FAMILY_OPTIONS[family])
        assert all(option_family(k) in (None, family) for k in keys), "only its own table is written"


def test_an_old_flat_run_lines_up_with_a_new_one() -> None:
    """A run folder from before the family tables (every option flat in [model]) compares key for key
    with a new run of the same preset: nothing but the name and options added since differ, and a
    real difference shows under its new key."""
    from nexus_core.config import read_toml

    old = read_toml(ROOT / "tests/fixtures/flat_config/hybrid-tiny.toml")
    store = preset_store(
        {
            "new": ("hybrid-tiny", ["model.vocab_size=256"]),
            "new16": ("hybrid-tiny", ["model.vocab_size=256", "model.hybrid.ssm_state=16"]),
        }
    )
    configs = {"old": old, "new": store.get("new").config}
    added = ("train.signals_every", ["–", "1"])  # an option added since: the old run had none
    assert config_differences(configs) == [added]
    configs["new16"] = store.get("new16").config
    assert config_differences(configs) == [
        ("model.hybrid.ssm_state", ["8", "8", "16"]),
        ("train.signals_every", ["–", "1", "1"]),
    ]


def test_transformer_vs_hybrid_lists_family_not_the_options_only_one_reads() -> None:
    store = preset_store({"t": ("tiny", []), "h": ("hybrid-tiny", [])})
    rows = diff_rows(store, ["t", "h"])
    assert rows["model.family"] == ["`'transformer'`", "`'hybrid'`"]
    assert rows["preset"] == ["`'tiny'`", "`'hybrid-tiny'`"]
    family_keys = {k for k in rows if k.startswith("model.") and k[6:] not in SHARED_MODEL_OPTIONS}
    assert not any(k.startswith(("model.hybrid.", "model.transformer.")) for k in rows)
    assert not family_keys, f"options only one of the runs reads: {sorted(family_keys)}"
    assert "model.d_model" not in rows or len(set(rows["model.d_model"])) == 2, "shared keys still compare"


def test_hybrids_with_different_ssm_state_show_it_and_a_transformer_reads_dash() -> None:
    store = preset_store(
        {
            "h8": ("hybrid-tiny", []),
            "h16": ("hybrid-tiny", ["model.hybrid.ssm_state=16"]),
            "t": ("tiny", ["model.transformer.mtp_heads=2"]),
        }
    )
    rows = diff_rows(store, ["h8", "h16"])
    assert rows == {"model.hybrid.ssm_state": ["`8`", "`16`"]}, "the one key that differs, nothing else"
    rows = diff_rows(store, ["h8", "h16", "t"])
    assert rows["model.hybrid.ssm_state"] == ["`8`", "`16`", "–"], "not applicable to the transformer"
    assert "model.hybrid.ssm_chunk" not in rows, "the same in both hybrids; the transformer has none"
    assert "model.transformer.mtp_heads" not in rows, "only the transformer reads it"
    assert rows["model.family"] == ["`'hybrid'`", "`'hybrid'`", "`'transformer'`"]


def test_the_report_reads_an_old_flat_run_and_a_new_one_alike() -> None:
    """`nexus report`'s config row and loss note read a run from before the family tables (its hello
    config flat) the same as a new one: the hybrid's own options, the MTP heads that explain a loss gap."""
    from nexus_core.config import load_preset, read_toml
    from nexus_tui.documents.report.facts import RunFacts
    from nexus_tui.documents.report.sections import config_section, loss_columns_section
    from nexus_tui.documents.runs_index import RunSummary

    def facts(config: dict) -> RunFacts:
        return RunFacts(
            "r", Path("r"), RunSummary("r", Path("r")), hellos=[{"type": "hello", "config": config}]
        )

    fixtures = ROOT / "tests/fixtures/flat_config"
    new = load_preset("hybrid-tiny")
    new.model.vocab_size = 256
    old_text, new_text = (
        config_section(facts(read_toml(fixtures / "hybrid-tiny.toml"))),
        config_section(facts(new.to_dict())),
    )
    assert old_text == new_text and "ssm_state=`8`" in new_text and "attn_every=`4`" in new_text
    assert "mtp_heads" not in new_text and "levels" not in new_text, "other families' options are not shown"
    mtp = loss_columns_section(facts(read_toml(fixtures / "mtp-275m.toml")))
    assert "3 MTP head(s) at weight `0.2`" in mtp, mtp


def test_results_are_honest_median_throughput_active_time_and_the_config_each_run_ended_with() -> None:
    """tok/s is the median (the last step's is noise), the time is time spent training (the idle wait
    before a resume is left out), and the config differences use the total each run ended with (a
    live ramp moved both to 400: no `train.steps 400 vs 300`)."""
    from nexus_tui.documents.comparison import comparison_markdown, results, results_markdown

    store = MetricStore()
    for name, last_tok in (("a", 12_000.0), ("b", 5_000.0)):
        recs = [
            {
                "type": "hello",
                "seq": 0,
                "time": 0.0,
                "run": name,
                "pid": 1,
                "total_steps": 300,
                "config": {"train": {"steps": 300}, "optim": {"lr": 1e-3}},
            }
        ]
        t = 1.0
        for step in range(1, 71):
            t += 1.0 if step != 36 else 3600.0  # an hour stopped, then resumed
            recs.append(
                {
                    "type": "metric",
                    "seq": step,
                    "time": t,
                    "step": step,
                    "tokens": step * 64,
                    "ce": 3.0,
                    "tok_s": last_tok if step == 70 else 5_800.0,
                }
            )
        recs.append(
            {"type": "state", "seq": 71, "time": t, "state": "running", "step": 70, "total_steps": 400}
        )
        store.ingest(name, None, recs)
    rows = table_after("#\n" + results_markdown(results(store, ["a", "b"])), "#")
    tok, wall = rows[0].index("tok/s (median)"), rows[0].index("time training")
    assert [r[tok] for r in rows[1:]] == ["5.8k", "5.8k"], rows
    assert [r[wall] for r in rows[1:]] == ["1m08s", "1m08s"], rows
    assert "train.steps" not in comparison_markdown(store, ["a", "b"])
