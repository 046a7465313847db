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
