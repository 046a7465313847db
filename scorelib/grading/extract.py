"""Final-answer extraction: the Minerva-style answer line, ``\\boxed{...}``, and the brace matcher they share.

MATH responses (SCoRe Sec. 6) end with "Final Answer: The final answer is $X$. I hope it is correct.";
``extract_answer`` returns X, else the content of the last ``\\boxed{X}``. ``_brace_partners`` (one linear
pass, no regex backtracking) is also used by normalisation and the size guards.
"""

from __future__ import annotations

import re

FINAL_ANSWER_PREFIX = "Final Answer: The final answer is $"
FINAL_ANSWER_SUFFIX = "$. I hope it is correct."

# Matches "The final answer is $" with or without "Final Answer:"; linear (no nested quantifiers).
_FINAL_ANSWER_RE = re.compile(r"final answer is\s*\$", re.IGNORECASE)
_BOX_COMMANDS = ("\\boxed", "\\fbox")


def _brace_partners(s: str, start: int = 0) -> dict[int, int]:
    """Map each '{' at or after start to its matching '}' in one linear pass (skips \\{ and \\})."""
    partners: dict[int, int] = {}
    stack: list[int] = []
    i = start
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            partners[stack.pop()] = i
        i += 1
    return partners


def _last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} / \\fbox{...} (or "\\boxed X"), or None if absent/unclosed."""
    start, cmd = max((text.rfind(c), c) for c in _BOX_COMMANDS)
    if start < 0:
        return None
    i = start + len(cmd)
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] == "{":
        end = _brace_partners(text, i).get(i)
        return text[i + 1 : end] if end is not None else None
    # "\boxed 5$" form: the argument runs to the closing math delimiter.
    end = text.find("$", i)
    return text[i : end if end >= 0 else len(text)]


def _dollar_span(text: str, start: int) -> str:
    """Text from start up to the next unescaped '$' (or end of line if the '$' is missing)."""
    if text.startswith("$", start):  # "$$...$$" display math
        start += 1
    i = start
    while True:
        j = text.find("$", i)
        if j < 0:
            eol = text.find("\n", start)
            return text[start : eol if eol >= 0 else len(text)]
        if j > 0 and text[j - 1] == "\\":  # "\$" is a literal dollar sign, not a delimiter
            i = j + 1
            continue
        return text[start:j]


def extract_answer(text: str) -> str | None:
    """The final answer in a response: last "final answer is $X$", else last \\boxed{X}, else None."""
    if not text:
        return None
    last = None
    for last in _FINAL_ANSWER_RE.finditer(text):
        pass
    if last is not None:
        span = _dollar_span(text, last.end())
        boxed = _last_boxed(span)  # e.g. "The final answer is $5 + 4 = \boxed{9}$"
        answer = (boxed if boxed is not None else span).strip()
        if answer:
            return answer
    boxed = _last_boxed(text)
    if boxed is None or not boxed.strip():
        return None
    return boxed.strip()
