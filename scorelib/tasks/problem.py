"""The problem record every task shares: the MATH/PRM800K format.

The toy world generates these, MATH is read into them, and the code tasks fill them in
(``problem`` the prompt, ``answer`` the task id, ``solution`` the reference program), so
prompting, grading and metrics are the same code for every task.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Problem:
    """One MATH-format problem record."""

    problem: str
    solution: str
    answer: str
    subject: str
    level: int
    unique_id: str

    def to_dict(self) -> dict:
        return asdict(self)
