"""One function per figure kind, one style. Each returns the matplotlib Figure."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg") if matplotlib.get_backend().lower() in ("", "agg") else None
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

plt.rcParams.update({"figure.dpi": 100, "axes.spines.top": False, "axes.spines.right": False, "font.size": 10})


def training_curve(history: list[dict], title: str = "Pretraining loss") -> plt.Figure:
    """Loss against step, one colour per phase."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    df = pd.DataFrame(history)
    for phase, g in df.groupby(df.get("phase", pd.Series(1, index=df.index))):
        ax.plot(g["step"], g["loss"], label=f"phase {phase}")
    ax.set(xlabel="step", ylabel="loss (trained tokens)", title=title, yscale="log")
    ax.legend()
    return fig


def edit_distance_hist(ratios: dict[str, np.ndarray], title: str = "Edit-distance ratio between y1 and y2") -> plt.Figure:
    """Fig. 3: density histograms, 10 bins on [0, 1], one panel per series."""
    fig, axes = plt.subplots(1, len(ratios), figsize=(3.2 * len(ratios), 2.8), squeeze=False, sharey=True)
    for ax, (name, r) in zip(axes[0], ratios.items()):
        ax.hist(np.asarray(r), bins=10, range=(0, 1), density=True, color="tab:blue", alpha=0.8)
        ax.set(title=name, xlabel="edit distance ratio")
    axes[0][0].set_ylabel("density")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def sequential_accuracy(curves: dict[str, np.ndarray], title: str = "Accuracy over sequential attempts") -> plt.Figure:
    """Fig. 7: accuracy of attempt k, one line per model."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, acc in curves.items():
        ax.plot(np.arange(1, len(acc) + 1), acc, marker="o", label=name)
    ax.set(xlabel="attempt", ylabel="accuracy (%)", title=title)
    ax.legend()
    return fig


def transitions_by_level(by_level: pd.DataFrame, title: str = "Δi→c and Δc→i by difficulty level") -> plt.Figure:
    """Fig. 6: paired bars of Δi→c and Δc→i per level."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    x = np.arange(len(by_level))
    ax.bar(x - 0.2, by_level["delta_i2c"], 0.4, label="Δi→c (fixed)", color="tab:green")
    ax.bar(x + 0.2, by_level["delta_c2i"], 0.4, label="Δc→i (broken)", color="tab:red")
    ax.set_xticks(x, [str(v) for v in by_level.index])
    ax.set(xlabel="level", ylabel="% of problems", title=title)
    ax.legend()
    return fig


def accuracy_bars(rows: dict[str, dict], title: str = "Direct generation vs self-correction") -> plt.Figure:
    """Fig. 1 (left): Acc@t1 and Acc@t2 per method, annotated with Δ."""
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 2, 3.2))
    x = np.arange(len(rows))
    t1 = [r["acc_t1"] for r in rows.values()]
    t2 = [r["acc_t2"] for r in rows.values()]
    ax.bar(x - 0.2, t1, 0.4, label="Accuracy@t1 (direct)")
    ax.bar(x + 0.2, t2, 0.4, label="Accuracy@t2 (self-correction)")
    for i, (a, b) in enumerate(zip(t1, t2)):
        ax.annotate(f"Δ {b - a:+.1f}", (i, max(a, b) + 1), ha="center")
    ax.set_xticks(x, list(rows))
    ax.set(ylabel="accuracy (%)", title=title)
    ax.legend(loc="lower right")
    return fig


def edit_distance_compare(panels: dict[str, dict[str, np.ndarray]],
                          title: str = "Edit-distance ratio: training data vs the model's own traces") -> plt.Figure:
    """Fig. 3 (right): per panel, overlaid density histograms of several series (e.g. training data,
    model on training problems, model on held-out problems)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.0), squeeze=False, sharey=True)
    for ax, (name, series) in zip(axes[0], panels.items()):
        for label, r in series.items():
            ax.hist(np.asarray(r), bins=10, range=(0, 1), density=True, histtype="step", linewidth=1.8, label=label)
        ax.set(title=name, xlabel="edit distance ratio")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("density")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def shift_curve(df: pd.DataFrame, title: str = "Pair-SFT: correction rate over one epoch") -> plt.Figure:
    """Fig. 4: one line per column (condition) against the index (fraction of an epoch)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for col in df.columns:
        ax.plot(df.index, df[col], marker="o", label=col)
    ax.set(xlabel="fraction of an epoch of Pair-SFT", ylabel="wrong first attempts corrected (%)", title=title)
    ax.legend(fontsize=8)
    return fig


def rl_curves(curve: pd.DataFrame, title: str = "Training: standard multi-turn RL vs Stage I") -> plt.Figure:
    """Fig. 5: (a) training accuracy of turn 1 (solid) and turn 2 (dashed) per method; (b) frequency of a
    different answer in turn 2. `curve` has columns (method, key) and the step as index."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    methods = list(dict.fromkeys(m for m, _ in curve.columns))
    for i, m in enumerate(methods):
        color = f"C{i}"
        a.plot(curve.index, curve[(m, "acc_t1")], color=color, label=f"{m}, turn 1")
        a.plot(curve.index, curve[(m, "acc_t2")], color=color, linestyle="--", label=f"{m}, turn 2")
        b.plot(curve.index, curve[(m, "different_answer")], color=color, label=m)
    a.set(xlabel="training step", ylabel="training accuracy (%)", title="(a) accuracy of each turn")
    b.set(xlabel="training step", ylabel="% of samples", title="(b) different answer in turn 2")
    a.legend(fontsize=8)
    b.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def sweep_deltas(df: pd.DataFrame, title: str = "Sweep: Δ(t1, t2) of each variant (first seed, greedy)") -> plt.Figure:
    """Δ with its 95% CI per variant (rows of a sweep table: variant, delta, delta_lo, delta_hi), beside
    Δi→c and Δc→i."""
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(df) + 2), 3.4))
    x = np.arange(len(df))
    err = np.vstack([df["delta"] - df["delta_lo"], df["delta_hi"] - df["delta"]])
    ax.bar(x - 0.25, df["delta"], 0.25, yerr=err, capsize=3, label="Δ (95% CI)")
    ax.bar(x, df["delta_i2c"], 0.25, label="Δi→c")
    ax.bar(x + 0.25, -df["delta_c2i"], 0.25, label="−Δc→i")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, df["variant"], rotation=30, ha="right")
    ax.set_ylabel("points")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def inference_scaling(tables: dict[str, pd.DataFrame], paper_curve: dict | None = None,
                      title: str = "Majority vote at equal budget: parallel vs sequential") -> plt.Figure:
    """Fig. 1 (right): accuracy against the budget (log2 axis), parallel (dashed) and sequential (solid) for each
    model, with 95% CI bands (tables indexed by budget: parallel, sequential and their _lo/_hi columns); the
    paper's approximate SCoRe curves in grey where given."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, t) in enumerate(tables.items()):
        x = np.asarray(t.index, dtype=float)
        for method, style in (("parallel", "--"), ("sequential", "-")):
            ax.plot(x, t[method], style, marker="o", color=colors[i % len(colors)], label=f"{name}, {method}")
            ax.fill_between(x, t[f"{method}_lo"], t[f"{method}_hi"], color=colors[i % len(colors)], alpha=0.12)
    if paper_curve:
        for method, style in (("parallel", "--"), ("sequential", "-")):
            ax.plot(paper_curve["budgets"], paper_curve[method], style, color="grey", alpha=0.7,
                    label=f"paper SCoRe (MATH500), {method}")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="attempts per problem (budget)", ylabel="majority-vote accuracy (%)", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def sequential_attempts(tables: dict[str, pd.DataFrame],
                        title: str = "Sequential attempts (greedy): accuracy and answer changes") -> plt.Figure:
    """Fig. 7: accuracy of attempt t with its 95% CI band (left) and the share of problems whose answer changed
    from attempt t-1 (right), one line per model (tables indexed by attempt: accuracy, accuracy_lo, accuracy_hi,
    changed)."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, t in tables.items():
        x = np.asarray(t.index, dtype=float)
        line, = ax.plot(x, t["accuracy"], marker="o", label=name)
        ax.fill_between(x, t["accuracy_lo"], t["accuracy_hi"], color=line.get_color(), alpha=0.15)
        bx.plot(x[1:], t["changed"].to_numpy()[1:], marker="o", color=line.get_color(), label=name)
    attempts = np.asarray(next(iter(tables.values())).index, dtype=int) if tables else np.arange(1, 2)
    ax.set_xticks(attempts)
    bx.set_xticks(attempts[1:])
    ax.set(xlabel="attempt", ylabel="accuracy (%)", title="accuracy (95% CI)")
    bx.set(xlabel="attempt", ylabel="% of problems", title="answer changed from the attempt before")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def three_turn_bars(ours: dict[str, dict], paper: dict[str, dict], title: str = "Three attempts: accuracy after "
                    "each stage") -> plt.Figure:
    """The three-turn extension: Acc@t1/t2/t3 per stage, ours (with 95% CI whiskers where the row has them) beside
    the paper's, one panel each."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=False)
    for ax, (name, rows) in zip(axes, (("ours", ours), ("paper (Gemma-2 2B, MATH)", paper))):
        x = np.arange(len(rows))
        for j, t in enumerate((1, 2, 3)):
            key = f"acc_t{t}"
            vals = np.array([r[key] for r in rows.values()], dtype=float)
            lo = np.array([r.get(f"{key}_lo", np.nan) for r in rows.values()], dtype=float)
            hi = np.array([r.get(f"{key}_hi", np.nan) for r in rows.values()], dtype=float)
            err = None if np.isnan(lo).all() else np.vstack([vals - lo, hi - vals])
            ax.bar(x + (j - 1) * 0.27, vals, 0.27, yerr=err, capsize=2, label=f"Accuracy@t{t}")
        ax.set_xticks(x, list(rows), fontsize=8)
        ax.set(ylabel="accuracy (%)", title=name)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
