"""Notebook 10's steps (scorelib.baselines) and the pieces of scorelib.sft they call, on hand-made inputs: the
notebook's four-trace demo, the settings read by their notebook names (sft_batch_size, gen_batch_size), the Fig. 4
probe points, what eval_seed seeds, and the tables built from hand-made seed results."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from scorelib import baselines as B
from scorelib import metrics as M
from scorelib import prompts, sft
from scorelib.config import ConfigError, SFTConfig
from scorelib.models import build_tiny_model, build_tiny_tokenizer
from scorelib.tasks import toy

# The notebook's demo: one trace of each transition (i→c, c→c, i→i, c→i) on two problems.
DEMO = [sft.Trace(0, (), (), "2+2=5", "2+2=4", False, True), sft.Trace(0, (), (), "2+2=4", "2+2=4", True, True),
        sft.Trace(1, (), (), "3+5=9", "3+5=7", False, False), sft.Trace(1, (), (), "3+5=8", "3+5=6", True, False)]


def rows(pairs):
    return [(p.y1, p.y2, p.kind) for p in pairs]


def test_the_notebooks_demo_data_sets():
    assert rows(sft.d_star(DEMO)) == [("2+2=5", "2+2=4", "i2c")]  # the fix only
    assert rows(sft.d_star(DEMO, plus=True)) == [("2+2=5", "2+2=4", "i2c"), ("2+2=4", "2+2=4", "c2c")]
    # Pair-SFT: the i→i trace (dropped by STaR) gets problem 1's one correct response, the c→i trace's first attempt
    assert rows(sft.d_pair_sft(DEMO)) == [("2+2=5", "2+2=4", "i2c"), ("3+5=9", "3+5=8", "i2c")]
    assert rows(sft.d_pair_sft(DEMO, plus=True)) == [("2+2=5", "2+2=4", "i2c"), ("2+2=4", "2+2=4", "c2c"),
                                                     ("3+5=9", "3+5=8", "i2c"), ("3+5=8", "3+5=8", "c2c")]
    data = sft.datasets(DEMO, seed=0)
    assert list(data) == ["D_STaR", "D+_STaR", "D_SFT", "D+_SFT"]
    assert [len(v) for v in data.values()] == [1, 2, 2, 4]


def test_pair_frame():
    frame = sft.pair_frame(sft.d_star(DEMO, plus=True))
    assert list(frame.columns) == ["problem", "y1", "y2", "kind"]
    assert frame.values.tolist() == [[0, "2+2=5", "2+2=4", "i2c"], [0, "2+2=4", "2+2=4", "c2c"]]
    assert list(sft.pair_frame([]).columns) == ["problem", "y1", "y2", "kind"]  # an empty data set still shows


def test_the_notebooks_edit_ratio_demo():
    # 12+5=17 vs 12+5=18 share 12+5=1: (7 + 7 - 2 * 6) / 14
    assert M.edit_distance_ratio("12+5=17", "12+5=18") == pytest.approx(1 / 7)
    assert M.edit_distance_ratio("17", "17") == 0.0 and M.edit_distance_ratio("ab", "xy") == 1.0


@pytest.mark.parametrize("n_steps,n_points,want", [
    (10, 4, {2, 5, 8, 10}),  # 2.5 rounds to 2 (half to even), 7.5 to 8
    (3, 5, {1, 2, 3}),  # more points than steps: each step once
    (0, 2, {1}),  # no data, no steps: the one probe before training stands alone
    (7, 1, {7}),  # one point: the end of the epoch
])
def test_probe_points(n_steps, n_points, want):
    assert sft.probe_points(n_steps, n_points) == want


def test_generation_reads_the_notebook_names():
    cfg = SFTConfig(max_new_tokens=9, gen_batch_size=33, sft_batch_size=5)
    assert sft.generation(cfg) == dict(max_new_tokens=9, batch_size=33)


@pytest.fixture(scope="module")
def tiny():
    tok = build_tiny_tokenizer()
    return tok, toy.generate(3, "train", seed=0), build_tiny_model(tok, 16, 1, 2, 32)


def _pairs(tok, n):
    ids = lambda text: tuple(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    return [sft.Pair(0, ids("1+1=3"), ids("1+1=2"), "1+1=3", "1+1=2", "i2c")] * n


def test_fine_tune_steps_follow_sft_batch_size(tiny):
    tok, problems, base = tiny
    seen = []
    cfg = SFTConfig(sft_batch_size=4)
    _, history, steps = sft.fine_tune(base, tok, prompts.TOY, problems, _pairs(tok, 10), cfg, 1.0,
                                      callback=lambda model, step, n: seen.append((step, n)))
    assert steps == 3 and seen == [(1, 3), (2, 3), (3, 3)]  # ceil(10 / 4) steps, each probed
    _, _, steps = sft.fine_tune(base, tok, prompts.TOY, problems, _pairs(tok, 10), cfg, 0.5)
    assert steps == 2  # half an epoch: ceil(5 / 4)


def test_train_method_dispatches(tiny):
    tok, problems, base = tiny
    cfg = SFTConfig(sft_batch_size=4, star_iterations=1)  # one STaR round: no sampling from a trained model
    traces = [sft.Trace(0, p.y1_ids, p.y2_ids, p.y1, p.y2, False, True) for p in _pairs(tok, 3)]
    data = sft.datasets(traces)
    model, rounds = sft.train_method(sft.STAR_D, base, tok, prompts.TOY, problems, None, cfg, traces, data)
    assert [(r["iteration"], r["size"], r["steps"]) for r in rounds] == [(1, 3, 1)]
    for method in (sft.PAIR_D, sft.PAIR_DPLUS, sft.NO_INFO):
        model, rounds = sft.train_method(method, base, tok, prompts.TOY, problems, None, cfg, traces, data)
        assert rounds is None and model is not base
    with pytest.raises(KeyError):  # a Pair-SFT method needs its data set
        sft.train_method(sft.PAIR_D, base, tok, prompts.TOY, problems, None, cfg, traces, {})


# ------------------------------------------------------------------ notebook 10's tables, from hand-made seeds


def fake_eval(c1, c2, edit):
    c1, c2 = np.array(c1, bool), np.array(c2, bool)
    return SimpleNamespace(c1=c1, c2=c2, edit_ratio=np.array(edit), summary=M.two_turn_metrics(c1, c2),
                           transcripts_markdown=lambda kinds, n: f"{kinds} x{n}\n")


def fake_seed(seed: int) -> B.SeedResult:
    # every method: 4 problems; right at attempt 1 on two; the second attempt fixes one (and breaks one on odd seeds)
    evals = {m: fake_eval([1, 1, 0, 0], [1, seed % 2 == 0, 1, 0], [0.0, 0.1, 0.5, 0.9]) for m in sft.METHODS}
    data = sft.datasets(DEMO, seed)
    rounds = {m: [dict(iteration=1, traces=4, size=len(data["D_STaR"]), steps=1, data=data["D_STaR"], history=[]),
                  dict(iteration=2, traces=4, size=2, steps=1, data=data["D+_STaR"], history=[])]
              for m in (sft.STAR_D, sft.STAR_DPLUS)}
    return B.SeedResult(seed, DEMO, data, rounds, evals, {sft.PAIR_D: np.array([0.0])}, dict(total=12.3))


def fake_setup(**overrides):
    cfg = SFTConfig(seeds=(0, 1), n_boot=200, task="toy", **overrides)
    return B.Setup(cfg, None, None, None, None, "not-a-tiny-model-folder", [])


RESULTS = {0: fake_seed(0), 1: fake_seed(1)}


def test_seed_metrics_and_line():
    m = B.seed_metrics(RESULTS[1])
    assert m["seed"] == 1 and m["data_sizes"] == {"D_STaR": 1, "D+_STaR": 2, "D_SFT": 2, "D+_SFT": 4}
    assert m["star_rounds"][sft.STAR_D] == [dict(iteration=1, size=1, steps=1), dict(iteration=2, size=2, steps=1)]
    assert m["methods"][sft.PAIR_D]["delta"] == 0.0  # seed 1: one fix, one break
    assert B.seed_line(RESULTS[0]).startswith("seed 0: 12 s; {'STaR D_STaR': 25.0")  # one fix in four: +25


def test_per_seed_star_rounds_and_size_tables():
    per_seed = B.per_seed_table(RESULTS)
    assert len(per_seed) == 2 * len(sft.METHODS) and list(per_seed.columns) == list(B.PER_SEED_KEYS)
    assert per_seed.loc[(sft.NO_INFO, 0), "delta"] == 25.0 and per_seed.loc[(sft.NO_INFO, 1), "delta"] == 0.0
    rounds = B.star_rounds_table(RESULTS)
    assert rounds.index.names == ["method", "seed", "iteration"] and len(rounds) == 2 * 2 * 2
    assert rounds.loc[(sft.STAR_D, 1, 2)].to_dict() == dict(traces=4, size=2, steps=1)
    sizes = B.data_sizes(RESULTS)
    assert sizes.loc[("seed 1", "D+_SFT")].to_dict() == dict(traces=4, fixes=2, keeps=2, problems=2)


def test_headline_rounds_to_a_tenth():
    assert B.headline(dict(acc_t1=50.04, acc_t2=62.56, delta=12.5, delta_i2c=25.0, delta_c2i=12.5, fix_own=50.0,
                           n=4)) == dict(acc_t1=50.0, acc_t2=62.6, delta=12.5, delta_i2c=25.0, delta_c2i=12.5,
                                         fix_own=50.0)


def test_table1_rows_pool_seeds_and_eval_seed_seeds_only_the_bootstrap():
    base_eval = fake_eval([1, 0, 1, 0], [0, 0, 1, 1], [0, 0, 0, 0])
    t1 = B.table1_rows(fake_setup(), [base_eval], RESULTS)
    assert list(t1.rows) == [B.BASE, *sft.METHODS]  # Self-Refine: no prompts for the toy task
    assert t1.note == "Self-Refine: not run (self_refine is off or the task has no Self-Refine prompts)"
    star = t1.rows[sft.STAR_D]
    # pooled over both seeds: 8 problem-seeds, Acc@t1 4/8, Acc@t2 (3 + 2)/8, fixes 2/8, breaks 1/8
    assert (star["acc_t1"], star["acc_t2"], star["delta_i2c"], star["delta_c2i"]) == (50.0, 62.5, 25.0, 12.5)
    assert star["seeds"] == 2 and t1.rows[B.BASE]["delta"] == 0.0
    other = B.table1_rows(fake_setup(eval_seed=7), [base_eval], RESULTS).rows[sft.STAR_D]
    assert {k: other[k] for k in B.PER_SEED_KEYS} == {k: star[k] for k in B.PER_SEED_KEYS}  # same estimates
    assert (other["delta_lo"], other["delta_hi"]) != (star["delta_lo"], star["delta_hi"])  # another bootstrap


def test_spread_table_and_paper_rows():
    spread = B.spread_table({"A": dict(fix_own=50.0, delta_seed_sd=1.234), "B": dict(fix_own=10.0)})
    assert list(spread.columns) == list(B.SPREAD_HEADERS)
    assert spread.loc["A", "Δ sd over seeds"] == 1.23 and np.isnan(spread.loc["B", "Acc@t1 sd over seeds"])
    assert B.PAPER_ROWS[sft.STAR_D]["delta"] == -14.2 and "Self-Refine" in B.PAPER_ROWS


def test_fig3_inputs_and_claims():
    first, base_eval = RESULTS[0], fake_eval([1], [1], [0.5])
    assert list(B.model_edit_ratios(base_eval, first)) == ["Base", *sft.METHODS]
    panels = B.edit_panels(first)
    star = panels[sft.STAR_DPLUS]["training data (last round)"]  # the last round's data: D+_STaR of DEMO
    assert star.tolist() == pytest.approx([M.edit_distance_ratio("2+2=5", "2+2=4"), 0.0])
    assert len(panels[sft.STAR_DPLUS]["model, training problems"]) == 0  # not measured for STaR here
    c3 = B.claim_c3(base_eval, first, panels)
    assert c3["claim"] == "C3" and not c3["holds"]  # the fake models have the base's share of copies
    curve = pd.DataFrame({"fixed y1, training problems": [10, 20], "fixed y1, held-out problems": [10, 15],
                          "own y1, held-out problems": [10, 8]}, index=[0.0, 1.0])
    verdicts = B.claims(B.table1_rows(fake_setup(), [base_eval], RESULTS).rows, c3, curve)
    assert list(verdicts) == ["C2", "C3", "C4"] and verdicts["C4"]["holds"]


def test_transcripts_name_every_method():
    text = B.transcripts(RESULTS[0])
    assert [line for line in text.splitlines() if line.startswith("### ")] == [f"### {m}" for m in sft.METHODS]


def test_setup_without_the_base_run_fails_clearly(tmp_path):
    cfg = SFTConfig(results_dir=str(tmp_path), base_run="nope")
    with pytest.raises((ConfigError, FileNotFoundError), match="nope"):
        B.setup(cfg)
    assert not (tmp_path / B.NOTEBOOK).exists()  # failed before opening a run folder
