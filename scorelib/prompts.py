"""Prompts: the paper's exact texts (section 1 of the digest) and the toy encoding.

A ``Protocol`` is the first user turn (a template around the problem) and the
fixed second-turn instruction p. The rollout engine turns a protocol into token
ids with the tokenizer's chat template when it has one, else with plain text.

Departure (toy world): the first user turn is the bare problem and the
instruction is the single special token ``<|retry|>``; the paper's long texts
would cost a 1M-parameter model most of its context. The protocol itself (x, y1,
then p, then y2; p does not say whether y1 was right) is the paper's.
"""
from __future__ import annotations

from dataclasses import dataclass

MATH_TURN1 = (
    "You are a math expert. When you respond, respond only with the Solution of the final Problem, "
    "thinking step by step. At the end of the Solution, when you give your final answer, write it in "
    'the form "Final Answer: The final answer is $answer$. I hope it is correct."'
)
MATH_INSTRUCTION = (
    "There might be an error in the solution above because of lack of understanding of the question. "
    "Please correct the error, if any, and rewrite the solution. Only output the final solution! At the "
    "end of the Solution, when you give your final answer, write it in the form \"Final Answer: The final "
    'answer is $answer$. I hope it is correct."'
)
CODE_INSTRUCTION = (
    "# There might be an error in the code above because of lack of understanding of the question. "
    "Please correct the error, if any, and rewrite the solution. Only output the final correct Python program!"
)


@dataclass(frozen=True)
class Protocol:
    """How a task is put to a model: first user turn and the self-correction instruction."""

    name: str
    turn1_template: str  # formatted with problem=...
    instruction: str

    def turn1(self, problem: str) -> str:
        return self.turn1_template.format(problem=problem)


# HumanEval's zero-shot first turn is not given in the paper (departure): the stub in a code block
# with a one-line request for the whole function.
HUMANEVAL_TURN1 = (
    "Complete the following Python function. Respond with the complete function, signature included, "
    "in one ```python code block.\n\n```python\n{problem}```"
)

TOY = Protocol("toy", "{problem}", "<|retry|>")
MATH = Protocol("math", MATH_TURN1 + "\n\nProblem:\n{problem}\n\nSolution:", MATH_INSTRUCTION)
# The code task: a problem's text is already its whole first turn (HumanEval: HUMANEVAL_TURN1 around the
# stub; MBPP: the canonical 3-shot prompt, scorelib.tasks.mbpp.mbpp_prompt); turn 2 is the paper's text.
CODE = Protocol("code", "{problem}", CODE_INSTRUCTION)
PROTOCOLS = {p.name: p for p in (TOY, MATH, CODE)}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; valid: {sorted(PROTOCOLS)}") from None


# Self-Refine (Madaan et al. 2023) as a prompting-only baseline for real models. The paper does not
# give its prompts (departure): these are this suite's. Turn 2 asks for a critique only, turn 3 for
# the rewrite; the rewrite is scored as the second attempt.
SELF_REFINE_CRITIQUE = (
    "Review the solution above step by step and point out any errors in it. Do not write a new solution yet: "
    "only list the problems you find, or say that the solution is correct."
)
SELF_REFINE = {
    "math": (SELF_REFINE_CRITIQUE,
             "Using your review, write the final solution. At the end of the Solution, when you give your final "
             "answer, write it in the form \"Final Answer: The final answer is $answer$. I hope it is correct.\""),
    "humaneval": (SELF_REFINE_CRITIQUE.replace("solution", "program"),
                  "Using your review, rewrite the program. Only output the final correct Python program!"),
}
