"""The paper's reported numbers (verbatim from the digest, section 3), for side-by-side tables."""
from __future__ import annotations


def _row(t1, t2, d, i2c, c2i) -> dict:
    return dict(acc_t1=t1, acc_t2=t2, delta=d, delta_i2c=i2c, delta_c2i=c2i)


# Table 1: SFT analysis, MATH, Gemini 1.5 Flash.
TABLE1 = {
    "Base model": _row(52.6, 41.4, -11.2, 4.6, 15.8),
    "STaR D_STaR": _row(55.4, 41.2, -14.2, 5.4, 19.6),
    "STaR D+_STaR": _row(53.6, 54.0, 0.4, 2.6, 2.2),
    "Pair-SFT D_SFT": _row(52.4, 54.2, 1.8, 5.4, 3.6),
    "Pair-SFT D+_SFT": _row(55.0, 55.0, 0.0, 0.0, 0.0),
}

# Table 2: main MATH table (MATH500, Gemini 1.5 Flash).
TABLE2 = {
    "Base model": _row(52.6, 41.4, -11.2, 4.6, 15.8),
    "Self-Refine": _row(52.8, 51.8, -1.0, 3.2, 4.2),
    "STaR w/ D+_STaR": _row(53.6, 54.0, 0.4, 2.6, 2.2),
    "Pair-SFT w/ D_SFT": _row(52.4, 54.2, 1.8, 5.4, 3.6),
    "SCoRe": _row(60.0, 64.4, 4.4, 5.8, 1.4),
}

# Section 3.3: code (Gemini 1.0 Pro; trained on MBPP; evaluated on HumanEval). MBPP-R is kept apart.
CODE = {
    "Base model": _row(53.7, 56.7, 3.0, 7.9, 4.9),
    "Self-Refine": _row(53.7, 52.5, -1.2, 9.8, 11.0),
    "Pair-SFT": _row(56.1, 54.3, -1.8, 4.3, 6.1),
    "SCoRe": _row(52.4, 64.6, 12.2, 15.2, 3.0),
}
CODE_MBPP_R = {"Base model": 47.3, "Self-Refine": 30.7, "Pair-SFT": 59.8, "SCoRe": 60.6}


def table_for(task: str) -> tuple[str, dict]:
    """(benchmark name, the paper's rows) to show beside a task's results: MATH for toy and math."""
    return ("HumanEval", CODE) if task == "humaneval" else ("MATH", TABLE2)


# Section 11 of the digest: SCoRe as others measured it, each with its protocol (they differ: quote it beside any
# comparison). Accuracies in %, first attempt -> second attempt.
def _ext(source, protocol, model, base, score, other="") -> dict:
    return dict(source=source, protocol=protocol, model=model, base_t1=base[0], base_t2=base[1], score_t1=score[0],
                score_t2=score[1], score_delta=round(score[1] - score[0], 1), other=other)


EXTERNAL = [
    _ext("SCoRe ICLR version, appendix Table 5", "greedy, MATH500", "Gemma-2 2B", (16.8, 16.8), (23.0, 24.0),
         "three-turn: Stage 2 23.0/24.0/24.0"),
    _ext("PAG (arXiv 2506.10406) Table 1", "Avg@32 at T=0.6, top-p 0.95, MATH500", "Qwen2.5-1.5B-Instruct",
         (53.2, 52.4), (61.9, 63.9), "direct multi-turn RL 62.1 -> 64.0"),
    _ext("PAG (arXiv 2506.10406) Table 1", "Avg@32 at T=0.6, top-p 0.95, MATH500", "Llama3-8B-Instruct",
         (28.7, 26.6), (32.0, 35.2), "direct multi-turn RL 33.3 -> 35.4"),
    _ext("PAG (arXiv 2506.10406) Table 2, trained on DAPO17K", "Avg@32 at T=0.6, top-p 0.95, MATH500",
         "Qwen2.5-7B-Instruct", (76.0, 76.1), (79.5, 81.5)),
]
EXTERNAL_NOTE = ("PAG's SCoRe baseline uses α = 1 (the paper: 10), PPO with a critic, batch 512, n = 4, lr 1e-6. "
                 "With SCoRe's Δi→c and Δc→i rates, one standard error of Δ on 500 problems is about 1.2 points.")

# Section 3.5: inference-compute scaling on MATH500 at T = 0.7 (SCoRe; majority vote). The curves are approximate,
# read off the plot (Fig. 1 right); the gains at budget 32 are quoted from the text.
SCALING = {"budgets": (2, 4, 8, 16, 32), "parallel": (60, 64, 65, 67, 68), "sequential": (60, 64, 68, 70, 71)}
SCALING_GAINS_AT_32 = {"parallel": 7.4, "sequential": 10.5}

# Section 3.6: the three-turn extension (ICLR appendix A.1): Gemma-2 2B on MATH, greedy, Acc@t1/t2/t3 (%) after each
# stage; one run each, no CIs published.
THREE_TURN = {
    "Base model": dict(acc_t1=16.8, acc_t2=16.8, acc_t3=17.0),
    "Stage 1(a)": dict(acc_t1=17.6, acc_t2=20.0, acc_t3=19.8),
    "Stage 1(b)": dict(acc_t1=16.6, acc_t2=18.4, acc_t3=23.2),
    "Stage 2": dict(acc_t1=23.0, acc_t2=24.0, acc_t3=24.0),
}
