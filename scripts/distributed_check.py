"""Same-update check for the multi-process trainers (tests/test_distributed.py launches it).

Run it as several processes and it trains tiny models through the distributed code paths; import it (or run it
plainly) and the same functions take the single-process paths. Each scenario feeds both the same examples or the
same rollouts, so equal weights mean the update itself is the same:

* ``sft``: ``train_masked_lm``, 5 steps, a global batch of 5 rows of different lengths (shares of 3 and 2 rows with
  different token counts; one pass ends in a batch of 2 rows);
* ``update`` / ``update_per_turn``: two ``policy_update`` calls on one fixed batch of rollouts (5 RLOO groups of 2,
  split 3 / 2 groups), micro-batches of 2 rows (several chunks, only the last one syncing), clipping active;
* ``rl_train``: ``rl_train`` for 4 steps whose sampler is a stand-in that gives each problem the same samples on any
  process (``fixed_rollout``), checkpoints every step, and a crash after step 2 followed by a resumption from the
  newest checkpoint (written by the main process only);
* ``evaluate``: a greedy two-turn evaluation of 5 problems, sharded and gathered.

    accelerate launch --num_processes 2 --cpu scripts/distributed_check.py --out /tmp/dist.pt
"""
from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scorelib import checkpoints, distributed, objectives, prompts, rl, rl_settings  # noqa: E402
from scorelib.evaluate import evaluate_two_turn  # noqa: E402
from scorelib.models import build_tiny_model, build_tiny_tokenizer  # noqa: E402
from scorelib.rollout import (PAD_SEG, PROMPT_SEG, Rollouts, attempt_seg, encode_glue, encode_turn1,  # noqa: E402
                              flatten, glue_after, instruction_seg, pad_right, rollout)
from scorelib.tasks import toy  # noqa: E402
from scorelib.training import Example, train_masked_lm  # noqa: E402
from scorelib.update import make_optimizer, policy_update  # noqa: E402

K = 2


def tiny():
    return build_tiny_tokenizer(), toy.generate(16, "train", seed=0)


def fresh(tok, seed=0):
    return build_tiny_model(tok, 16, 1, 2, 32, seed=seed)


def text_reward(response, gold):
    """Varies with the sample (so RLOO advantages are not all zero) and depends only on the text."""
    return float(len(response) % 2)


def weights(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def sft() -> dict:
    tok, _ = tiny()
    rng = random.Random(0)
    examples = []
    for i in range(12):  # lengths 6..30, target masks of different sizes: the shards' token counts differ
        n = 6 + 2 * i
        ids = [rng.randrange(5, len(tok)) for _ in range(n)]
        start = rng.randrange(1, n - 2)
        examples.append(Example(ids, [0] * start + [1] * (n - start)))
    model = fresh(tok, seed=1)
    hist = train_masked_lm(model, examples, steps=5, batch_size=5, lr=1e-2, pad_id=tok.pad_token_id, warmup=2,
                           seed=3, log_every=2, progress=False)
    return dict(weights=weights(model), history=hist)


def fixed_batch(tok, problems):
    """One batch of rollouts at T=1 (the same on every process: same model, problems and seed)."""
    ro = rollout(fresh(tok, seed=3), tok, [p.problem for p in problems[:5]], [p.answer for p in problems[:5]],
                 prompts.TOY, text_reward, n_turns=2, k=K, temperature=1.0, max_new_tokens=8, seed=1)
    adv, _ = objectives.advantages(ro.rewards, **rl_settings.advantage_args(rl_settings.objective("stage2", k=K)))
    return ro, adv


def update(per_turn: bool = False) -> dict:
    tok, problems = tiny()
    ro, adv = fixed_batch(tok, problems)
    masks = [ro.attempt_mask(t + 1).float() for t in range(2)]
    part = distributed.share(len(ro.problem_index) // K)  # whole groups: rows part.start * K .. part.stop * K
    rows = slice(part.start * K, part.stop * K)
    policy, ref = fresh(tok, seed=4), fresh(tok, seed=5)
    if distributed.active():
        distributed.wrap(policy)
    s = rl_settings.objective("stage2", k=K, lr=1e-2, turn_budget="per_turn" if per_turn else "joint")
    opt = make_optimizer(policy, s)
    outs = []
    for _ in range(2):
        outs.append(policy_update(policy, ref, opt, ro.input_ids[rows], ro.attention_mask[rows],
                                  [m[rows] for m in masks], [a[rows] for a in adv], [0.1, 0.01], micro_batch=2,
                                  max_grad_norm=0.5, token_budget=None))
    return dict(weights=weights(policy), outs=[{k: v for k, v in o.items() if not k.endswith("_s")} for o in outs])


class FixedRollout:
    """A stand-in for rl.rollout: each problem's k samples are token ids drawn from a generator seeded by the problem
    text and the sample's index, so any process (any split) gives a problem the same samples. ``crash_at``: raise
    on that call (1-based), once, to simulate a killed run."""

    def __init__(self, crash_at: int | None = None):
        self.calls, self.crash_at = 0, crash_at

    def __call__(self, model, tokenizer, problems, answers, protocol, reward_fn, n_turns=2, k=1, temperature=0.0,
                 max_new_tokens=160, batch_size=256, seed=None, **kw):
        self.calls += 1
        if self.crash_at is not None and self.calls == self.crash_at:
            self.crash_at = None
            raise KeyboardInterrupt("simulated kill")
        glue = encode_glue(tokenizer, protocol)
        index = np.repeat(np.arange(len(problems)), k)
        pieces, attempts = [], [[] for _ in range(n_turns)]
        for r, i in enumerate(index):
            h = int(hashlib.sha256(f"{problems[i]}|{r % k}".encode()).hexdigest()[:8], 16)
            g = torch.Generator().manual_seed(h)
            row = [(PROMPT_SEG, encode_turn1(tokenizer, protocol, problems[i]))]
            for t in range(1, n_turns + 1):
                n = int(torch.randint(2, max_new_tokens + 1, (1,), generator=g))
                y = torch.randint(40, len(tokenizer), (n,), generator=g).tolist()
                if t > 1:
                    row.append((instruction_seg(t - 1), glue_after(attempts[t - 2][r], glue)))
                row.append((attempt_seg(t), y))
                attempts[t - 1].append(y)
            pieces.append(row)
        texts = [tokenizer.batch_decode(turn, skip_special_tokens=True) for turn in attempts]
        rewards = np.array([[reward_fn(texts[t][r], answers[index[r]]) for t in range(n_turns)]
                            for r in range(len(index))], dtype=np.float64)
        ids, segs = pad_right([flatten(row) for row in pieces], tokenizer.pad_token_id)
        return Rollouts(index, texts, attempts, rewards, ids, (segs != PAD_SEG).long(), segs, meta={})


def rl_train(checkpoint_dir: str | None = None, crash: bool = True) -> dict:
    tok, problems = tiny()
    s = rl_settings.objective("stage2", steps=4, problems_per_step=3, k=K, lr=1e-2, max_new_tokens=6,
                              checkpoint_every=1)
    real = rl.rollout
    rl.rollout = FixedRollout(crash_at=3 if crash else None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = checkpoint_dir or (Path(tmp) / "ckpt")
            if distributed.active():  # every process writes to the main process's folder
                ckpt = distributed.gather_rows([str(ckpt)])[0]
            policy, ref = fresh(tok, seed=4), fresh(tok, seed=5)
            try:
                log = rl.rl_train(policy, ref, tok, prompts.TOY, problems, s, seed=2, progress=False,
                                  reward_fn=text_reward, checkpoint_dir=ckpt)
                resumed_at = None
            except KeyboardInterrupt:
                resumed_at = checkpoints.checkpoints(ckpt)[-1].name
                policy, ref = fresh(tok, seed=4), fresh(tok, seed=5)  # a new process would start from scratch
                log = rl.rl_train(policy, ref, tok, prompts.TOY, problems, s, seed=2, progress=False,
                                  reward_fn=text_reward, checkpoint_dir=ckpt)
            saved = [c.name for c in checkpoints.checkpoints(ckpt)]
            distributed.barrier()  # nobody removes the folder while another process still reads it
    finally:
        rl.rollout = real
    keys = ("reward", "shaped_reward", "acc_t1", "acc_t2", "different_answer", "signal_groups", "loss", "grad_norm",
            "kl_t1", "kl_t2")
    return dict(weights=weights(policy), log=[{k: r[k] for k in keys} for r in log], resumed_at=resumed_at,
                checkpoints=saved)


def evaluate() -> dict:
    tok, problems = tiny()
    e = evaluate_two_turn(fresh(tok, seed=7), tok, problems[:5], prompts.TOY, max_new_tokens=8, n_boot=20,
                          reward_fn=text_reward)
    ro = e.rollouts
    return dict(c1=e.c1.tolist(), c2=e.c2.tolist(), texts=ro.texts, index=ro.problem_index.tolist(),
                input_ids=ro.input_ids, segments=ro.segments, summary=e.summary)


SCENARIOS = dict(sft=sft, update=update, update_per_turn=lambda: update(per_turn=True), rl_train=rl_train,
                 evaluate=evaluate)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="torch.save of {scenario: result}, written by the main process")
    ap.add_argument("--only", nargs="*", default=list(SCENARIOS), choices=list(SCENARIOS))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # as the tests run: the same kernels as the single-process reference
    out = {name: SCENARIOS[name]() for name in args.only}
    out["world"] = distributed.world()
    if distributed.is_main():
        torch.save(out, args.out)
    distributed.barrier()


if __name__ == "__main__":
    main()
