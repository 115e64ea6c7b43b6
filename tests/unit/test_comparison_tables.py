"""The comparison's tables from the store alone (no runs trained): which value is bold, and which
config keys count when runs of different model families are compared."""

from __future__ import annotations

from support.markdown import table_after

from nexus_tui.services.comparison import FAMILY_OPTIONS, SHARED_MODEL_OPTIONS, comparison_markdown
from nexus_tui.services.store import MetricStore


def test_bold_marks_the_best_shown_value_and_missing_values_are_dashes() -> None:
    """Through the real store: a run without evals reads as a dash and takes no part in the bold;
    two runs whose best val loss rounds to the same text are both bold."""
    from nexus_tui.services.comparison import results, results_markdown
    from nexus_tui.services.store import MetricStore

    store = MetricStore()
    for seq_base, (name, val) in enumerate((("x", 2.00001), ("y", 2.00002), ("z", None), ("w", 3.5))):
        recs = [{"type": "hello", "seq": 0, "time": 1.0, "config": {"optim": {"lr": 1e-3}}},
                {"type": "metric", "seq": 1, "time": 2.0, "step": 1, "tokens": 64, "ce": 4.0 + seq_base, "tok_s": 100.0}]
        if val is not None:
            recs.append({"type": "eval", "seq": 2, "time": 3.0, "step": 1, "tokens": 64, "val_loss": val})
        store.ingest(name, None, recs)
    rows = table_after("#\n" + results_markdown(results(store, ["x", "y", "z", "w"])), "#")
    col = rows[0].index("best val loss (nats)")
    assert [r[col] for r in rows[1:]] == ["**2.0000**", "**2.0000**", "–", "3.5000"]
    h = rows[0].index("final H (nats)")
    assert [r[h] for r in rows[1:]] == ["**4.0000**", "5.0000", "6.0000", "7.0000"]
    tok = rows[0].index("tok/s")
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


def test_every_model_field_is_shared_or_read_by_exactly_one_family() -> None:
    """Fails when engine/config.py gains (or loses) a ModelConfig field the table does not classify."""
    from dataclasses import fields

    from nexus_core.config import Config, ModelConfig

    names = {f.name for f in fields(ModelConfig)}
    family_sets = list(FAMILY_OPTIONS.values())
    unclassified = names - SHARED_MODEL_OPTIONS - set().union(*family_sets)
    assert not unclassified, f"add these ModelConfig fields to nexus_tui/services/comparison.py: {sorted(unclassified)}"
    stale = (SHARED_MODEL_OPTIONS | set().union(*family_sets)) - names
    assert not stale, f"no longer ModelConfig fields: {sorted(stale)}"
    assert sum(map(len, family_sets)) + len(SHARED_MODEL_OPTIONS) == len(names), "a field is in two sets"
    for family in FAMILY_OPTIONS:  # each table family is one the engine accepts
        Config(model=ModelConfig(family=family)).validate()


def test_transformer_vs_hybrid_lists_family_not_the_options_only_one_reads() -> None:
    store = preset_store({"t": ("tiny", []), "h": ("hybrid-tiny", [])})
    rows = diff_rows(store, ["t", "h"])
    assert rows["model.family"] == ["`'transformer'`", "`'hybrid'`"]
    assert rows["preset"] == ["`'tiny'`", "`'hybrid-tiny'`"]
    family_keys = {k for k in rows if k.startswith("model.") and k[6:] not in SHARED_MODEL_OPTIONS}
    assert not family_keys, f"options only one of the runs reads: {sorted(family_keys)}"
    assert "model.d_model" not in rows or len(set(rows["model.d_model"])) == 2, "shared keys still compare"


def test_hybrids_with_different_ssm_state_show_it_and_a_transformer_reads_dash() -> None:
    store = preset_store({"h8": ("hybrid-tiny", []), "h16": ("hybrid-tiny", ["model.ssm_state=16"]),
                          "t": ("tiny", ["model.mtp_heads=2"])})
    rows = diff_rows(store, ["h8", "h16"])
    assert rows == {"model.ssm_state": ["`8`", "`16`"]}, "the one key that differs, nothing else"
    rows = diff_rows(store, ["h8", "h16", "t"])
    assert rows["model.ssm_state"] == ["`8`", "`16`", "–"], "not applicable to the transformer"
    assert "model.ssm_chunk" not in rows, "the same in both hybrids; the transformer ignores it"
    assert "model.mtp_heads" not in rows, "only the transformer reads it"
    assert rows["model.family"] == ["`'hybrid'`", "`'hybrid'`", "`'transformer'`"]
