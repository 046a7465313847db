"""Multi-turn policy gradient (paper section 5): one trainer, the objectives are settings; this module is its
training loop (``rl_train``: sample, score, advantages, update, checkpoint, step after step).

REINFORCE with a leave-one-out baseline over k samples per problem (RLOO, as the ICLR
text says) and a per-token KL penalty against a frozen reference policy (the base).

* **KL estimator**: k3 (``exp(d) - d - 1`` with ``d = log ref - log pi``, Schulman 2020) on
  every generated token, unbiased and non-negative; it goes into the **loss** (weighted by
  the turn's beta), not into the reward, so it never enters the RLOO baseline.
* **Per-turn credit**: turn t's tokens are weighted only by turn t's advantage (gamma = 0,
  the paper's setting). With ``gamma > 0`` turn 1's return is r1 + gamma * r2 (r2 unshaped,
  and only where turn 1 is rewarded): the paper's discounted variant (Fig. 8).
* **KL gradient**: the k3 value estimates KL(pi || ref); as a loss term its gradient is that
  of KL(ref || pi) (a known property of k3 in the loss), which pulls pi towards ref all the same.
* **Reference**: a frozen copy (full fine-tuning) or, for a LoRA policy, ``ref=None``: the
  same model with its adapter disabled (no second copy in memory).

Where the rest lives: the settings and the table of the paper's objectives (which turns are rewarded, which KL
weight on each turn's tokens, the bonus alpha) in ``rl_settings``; the advantages, RLOO, shaping and the k3 KL as
pure maths in ``objectives``; the policy update and its optimizer in ``update``; checkpoints in ``checkpoints``.

Checkpoints (``checkpoint_dir``): every ``checkpoint_every`` steps the trainable weights,
the optimizer state and the log are written (atomically) to ``step_NNNNNN/``; a run
started again with the same folder resumes from the last one and, since every step's
problems and samples are seeded by (seed, step), continues exactly as if never stopped.
``checkpoints.best_checkpoint`` picks a checkpoint by training reward, as the paper selects.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from scorelib import distributed
from scorelib.checkpoints import checkpoints, load_checkpoint, save_checkpoint
from scorelib.grading import extract_answer
from scorelib.grading import reward as grade_reward
from scorelib.objectives import advantages, signal_rows
from scorelib.prompts import Protocol
from scorelib.rl_settings import RLSettings, advantage_args, check_settings, kl_weights, lr_at
from scorelib.rollout import rollout
from scorelib.update import make_optimizer, policy_update


def step_problems(n_problems: int, s: RLSettings, seed: int, step: int) -> np.ndarray:
    """Indices of the problems of 0-based step `step` of a run (seeded by (seed, step): the same problems for this
    step whether the run was resumed or not, and known before the run starts)."""
    rng = np.random.default_rng([seed, step])
    return rng.choice(n_problems, s.problems_per_step, replace=False)


def pool_rows(y1_pool: dict, indices, k: int) -> list[list[int]]:
    """The fixed first attempts of a step's problems, k per problem in rollout's row order (problem by problem):
    y1_pool maps a problem's index to k token-id lists. A problem the pool lacks is an error."""
    missing = [int(i) for i in indices if int(i) not in y1_pool or len(y1_pool[int(i)]) != k]
    if missing:
        raise ValueError(f"the first-attempt pool lacks k = {k} attempts of problems {missing[:5]}")
    return [list(y) for i in indices for y in y1_pool[int(i)]]


def rl_train(policy, ref, tokenizer, protocol: Protocol, problems: list, s: RLSettings, seed: int = 0,
             progress: bool = True, reward_fn=grade_reward, extract_fn=extract_answer, checkpoint_dir=None,
             micro_batch: int | None = None, run_info: dict | None = None, y1_pool: dict | None = None) -> list[dict]:
    """Train `policy` in place against the frozen reference `ref` (None: a LoRA policy's own base, adapter
    disabled). Returns the per-step log (training accuracy of each turn, different-answer frequency, KL per
    turn, mean reward and shaped reward, seconds sampling and training); resumes from checkpoint_dir.

    With ``s.turn1_source == "pool"`` each row's first attempt is taken from ``y1_pool`` (problem index -> k
    token-id lists, e.g. ``ablations.y1_pool``) instead of being sampled; the second attempt is sampled on-policy
    after it, and both turns are trained as the objective says (turn 1 on the pool's tokens)."""
    if s.problems_per_step > len(problems):
        raise ValueError(f"problems_per_step {s.problems_per_step} > {len(problems)} training problems")
    check_settings(s)
    if (s.turn1_source == "pool") != (y1_pool is not None):
        raise ValueError("give y1_pool exactly when turn1_source is 'pool' (got turn1_source "
                         f"{s.turn1_source!r} and {'a' if y1_pool is not None else 'no'} pool)")
    dist = distributed.active()
    if dist and y1_pool is not None:
        raise NotImplementedError("a first-attempt pool (turn1_source 'pool') runs in a single process only")
    if dist:
        if s.problems_per_step < distributed.world():
            raise ValueError(f"problems_per_step {s.problems_per_step} < {distributed.world()} processes: each "
                             "process needs at least one problem (RLOO group) a step")
        distributed.wrap(policy)  # DDP (or FSDP) before the optimizer is built over its parameters
    opt = make_optimizer(policy, s)
    if ref is not None:
        ref.eval()
    start, log = 0, []
    run = dict(settings=asdict(s), seed=seed, n_problems=len(problems), **(run_info or {}))
    run = json.loads(json.dumps(run, default=str))  # as it reads back from state.json
    done = checkpoints(checkpoint_dir) if checkpoint_dir is not None else []
    distributed.barrier()  # every process has listed the checkpoints before the main one writes any
    if done:
        saved = json.loads((done[-1] / "state.json").read_text()).get("run", {})
        # settings added since the checkpoint was written take their defaults (older runs stay resumable)
        saved = {**saved, "settings": {**asdict(RLSettings()), **saved.get("settings", {})}} if saved else saved
        if saved != run:
            diff = sorted(k for k in set(saved) | set(run) if saved.get(k) != run.get(k))
            raise ValueError(f"{checkpoint_dir} holds checkpoints of a different run (differs in {diff}): use "
                             "another run_name, or delete that folder to start afresh")
        with distributed.full_params(policy, writeback=True):
            start, log = load_checkpoint(done[-1], policy, opt)
    elif checkpoint_dir is not None and s.select == "val_greedy":  # the start is a candidate
        _save_on_main(Path(checkpoint_dir) / "step_000000", policy, opt, 0, [], run)
    for step in tqdm(range(start, s.steps), desc="rl", disable=not progress or not distributed.is_main(),
                     leave=False, initial=start, total=s.steps):
        t0 = time.perf_counter()
        idx = step_problems(len(problems), s, seed, step)  # the same problems for this step, resumed or not
        batch = [problems[i] for i in idx]
        if dist:  # this process's problems (whole RLOO groups), sampled from its own stream
            row = _distributed_step(policy, ref, opt, tokenizer, protocol, batch, s, seed, step, reward_fn,
                                    extract_fn, micro_batch, t0)
            log.append(row)
            if checkpoint_dir is not None and (step + 1 == s.steps or
                                               (s.checkpoint_every and (step + 1) % s.checkpoint_every == 0)):
                _save_on_main(Path(checkpoint_dir) / f"step_{step + 1:06d}", policy, opt, step + 1, log, run)
            continue
        ro = rollout(policy, tokenizer, [p.problem for p in batch], [p.answer for p in batch], protocol,
                     reward_fn, n_turns=s.n_turns, k=s.k, temperature=s.temperature,
                     max_new_tokens=s.max_new_tokens, batch_size=len(batch) * s.k, seed=seed * 100_003 + step,
                     given_y1=None if y1_pool is None else pool_rows(y1_pool, idx, s.k))
        t1 = time.perf_counter()
        adv, rew, masks, betas, signal, keep, lr = _update_inputs(ro, s, opt, step)
        if bool(keep.any()):
            upd = policy_update(policy, ref, opt, ro.input_ids[keep], ro.attention_mask[keep],
                                [m[keep] for m in masks], [a[keep] for a in adv], betas,
                                micro_batch=micro_batch or s.micro_batch or None, temperature=s.temperature)
        else:  # no group has any signal: nothing to learn this step
            upd = dict(loss=0.0, grad_norm=0.0, **{f"kl_t{t + 1}": float("nan") for t in range(s.n_turns)})
        rew.update(lr=lr, signal_groups=100 * float(signal.float().mean()))
        c = ro.correct
        row = dict(step=step + 1, acc_t1=100 * float(c[:, 0].mean()), **rew, **upd,
                   sample_s=t1 - t0, train_s=time.perf_counter() - t1)
        if s.n_turns >= 2:
            a1 = [extract_fn(y) for y in ro.texts[0]]
            a2 = [extract_fn(y) for y in ro.texts[1]]
            row.update(acc_t2=100 * float(c[:, 1].mean()),
                       different_answer=100 * float(np.mean([x != y for x, y in zip(a1, a2)])))
        if s.n_turns >= 3:  # turn 3's accuracy and how often its answer differs from turn 2's
            a3 = [extract_fn(y) for y in ro.texts[2]]
            row.update(acc_t3=100 * float(c[:, 2].mean()),
                       different_answer_t3=100 * float(np.mean([x != y for x, y in zip(a2, a3)])))
        log.append(row)
        last = step + 1 == s.steps
        if checkpoint_dir is not None and (last or (s.checkpoint_every and (step + 1) % s.checkpoint_every == 0)):
            save_checkpoint(Path(checkpoint_dir) / f"step_{step + 1:06d}", policy, opt, step + 1, log, run)
    return log


def _update_inputs(ro, s: RLSettings, opt, step: int):
    """What one step's update needs from its rollouts: advantages and reward logs, per-turn masks and KL weights,
    the rows of groups with signal and the rows to train on, and the step's learning rate (set in ``opt``)."""
    adv, rew = advantages(ro.rewards, **advantage_args(s))
    masks = [ro.attempt_mask(t + 1).float() for t in range(s.n_turns)]
    betas = list(kl_weights(s))
    signal = signal_rows(adv, s.k)
    keep = signal if s.drop_flat_groups else torch.ones_like(signal)
    lr = lr_at(s, step)
    for g in opt.param_groups:
        g["lr"] = lr
    return adv, rew, masks, betas, signal, keep, lr


def _save_on_main(path: Path, policy, opt, step: int, log: list[dict], run: dict) -> None:
    """save_checkpoint on the main process only (the others wait, so none reads a checkpoint half written)."""
    with distributed.full_params(policy):
        if distributed.is_main():
            save_checkpoint(path, policy, opt, step, log, run)
    distributed.barrier()


def _distributed_step(policy, ref, opt, tokenizer, protocol: Protocol, batch: list, s: RLSettings, seed: int,
                      step: int, reward_fn, extract_fn, micro_batch, t0: float) -> dict:
    """One step of ``rl_train`` on this process's share of the step's problems (``distributed.share``: whole
    problems, so each RLOO group is sampled, scored and given its advantages here). The update is
    ``policy_update``'s distributed path (gradients all-reduced by DDP); the logged row is the global one: the
    rewards and answer changes of every process's rows are gathered (in problem order, as a single process
    orders them) before the log's means are taken."""
    part = distributed.share(len(batch))
    mine = [batch[i] for i in part]
    with distributed.full_params(policy):
        ro = rollout(policy, tokenizer, [p.problem for p in mine], [p.answer for p in mine], protocol, reward_fn,
                     n_turns=s.n_turns, k=s.k, temperature=s.temperature, max_new_tokens=s.max_new_tokens,
                     batch_size=len(mine) * s.k, seed=distributed.rank_seed(seed * 100_003 + step))
    t1 = time.perf_counter()
    adv, _, masks, betas, signal, keep, lr = _update_inputs(ro, s, opt, step)
    if distributed.any_across(bool(keep.any())):
        upd = policy_update(policy, ref, opt, ro.input_ids[keep], ro.attention_mask[keep],
                            [m[keep] for m in masks], [a[keep] for a in adv], betas,
                            micro_batch=micro_batch or s.micro_batch or None, temperature=s.temperature)
    else:  # no group anywhere has any signal: nothing to learn this step
        upd = dict(loss=0.0, grad_norm=0.0, **{f"kl_t{t + 1}": float("nan") for t in range(s.n_turns)})
    if s.n_turns >= 2:
        diff = [extract_fn(y1) != extract_fn(y2) for y1, y2 in zip(ro.texts[0], ro.texts[1])]
    else:
        diff = [False] * len(ro.texts[0])
    rows = distributed.gather_rows([(list(map(float, r)), bool(d)) for r, d in zip(ro.rewards, diff)])
    rewards = np.array([r for r, _ in rows], dtype=np.float64)
    all_adv, rew = advantages(rewards, **advantage_args(s))
    rew.update(lr=lr, signal_groups=100 * float(signal_rows(all_adv, s.k).float().mean()))
    c = rewards > 0
    row = dict(step=step + 1, acc_t1=100 * float(c[:, 0].mean()), **rew, **upd,
               sample_s=t1 - t0, train_s=time.perf_counter() - t1)
    if s.n_turns >= 2:
        row.update(acc_t2=100 * float(c[:, 1].mean()), different_answer=100 * float(np.mean([d for _, d in rows])))
    if s.n_turns >= 3:
        row.update(acc_t3=100 * float(c[:, 2].mean()))
    return row
