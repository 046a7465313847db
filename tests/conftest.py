"""Shared test settings.

Torch runs on one intra-op thread during the tests: the tiny models gain nothing
from more, and on a small machine shared with a training run several threads per
process oversubscribe the cores (a tiny rollout measured ~100x slower with 2
threads than with 1 while another job used both cores). Set
SCORELIB_TEST_THREADS to override.
"""
from __future__ import annotations

import os

try:
    import torch
except ImportError:  # pragma: no cover - torch is a hard dependency, but keep collection robust
    torch = None

if torch is not None:
    torch.set_num_threads(int(os.environ.get("SCORELIB_TEST_THREADS", "1")))
