"""Multi-turn policy gradient (paper section 5): one trainer, the objectives are settings.

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

The objectives are one table, ``OBJECTIVES`` (paper values alpha = 10, beta1 = 0.01, beta2 = 0.1): for each,
which turns are rewarded and which of ``RLSettings``' KL weights (beta1, beta2, beta_turn1) applies to each turn's
tokens (``kl_weights``), and whether turn 2 (and 3) is shaped by alpha (``bonus``):

* ``multi_turn`` (standard multi-turn RL, the collapse baseline): reward on both turns, beta1 on both.
* ``stage1``: reward on turn 2 only; beta2 on turn-1 tokens keeps attempt 1 near the base; beta1 on turn 2.
* ``stage2``: reward on both turns, bonus alpha * (r2 - r1) added to the turn-2 reward; beta_turn1 (None: beta1)
  on turn 1, beta1 on turn 2.
* ``single_turn``: one attempt, rewarded, beta_turn1 (None: beta1) (for the ablation table).
* ``three_turn_stage1a``, ``three_turn_stage1b``, ``three_turn_stage2``: the ICLR appendix's three attempts
  (notebook 45; ``scorelib.three_turn`` says how each reads the paper). Stage 1(b) runs against the Stage 1(a)
  model as reference (``score.train_stage``'s ``reference``).

Checkpoints (``checkpoint_dir``): every ``checkpoint_every`` steps the trainable weights,
the optimizer state and the log are written (atomically) to ``step_NNNNNN/``; a run
started again with the same folder resumes from the last one and, since every step's
problems and samples are seeded by (seed, step), continues exactly as if never stopped.
``best_checkpoint`` picks a checkpoint by training reward, as the paper selects.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from scorelib import distributed
from scorelib.grading import extract_answer
from scorelib.grading import reward as grade_reward
from scorelib.models import reference_mode
from scorelib.objectives import policy_loss, rloo_advantages, shaped_rewards, shaped_turn2_reward, token_logprobs
from scorelib.prompts import Protocol
from scorelib.rollout import cpu_token_budget, length_chunks, rollout


@dataclass(frozen=True)
class RLSettings:
    """One RL run's objective and budget, under the notebooks' parameter names (``score.settings`` copies a config's
    fields by name). Which turns the objective rewards and which KL weight each turn's tokens get is the objective's
    to decide (``OBJECTIVES``, ``rewarded``, ``kl_weights``, ``bonus``), not a field."""

    objective: str = "stage1"  # one of OBJECTIVES: the turns, their rewards and their KL weights
    steps: int = 100
    problems_per_step: int = 32
    k: int = 4  # samples per problem (RLOO group)
    lr: float = 1e-4
    temperature: float = 1.0  # the paper samples at T=1 during training
    alpha: float = 10.0  # Stage II's reward-shaping bonus (objectives that shape: stage2, three_turn_stage2)
    beta1: float = 0.01  # the KL weight of every turn the objective does not say otherwise for (paper: 0.01)
    beta2: float = 0.1  # Stage I's strong KL weight on the turns it holds near the reference (paper: 0.1)
    beta_turn1: float | None = None  # Stage II's KL weight on a rewarded turn 1 (None: beta1, the paper's)
    gamma: float = 0.0  # discount: turn-1 return = r1 + gamma * r2 (r2 unshaped; 0: each turn its own reward)
    turn2_baseline: str = "group"  # "group": RLOO on the shaped turn-2 rewards (paper); others: see advantages()
    max_new_tokens: int = 160
    micro_batch: int = 0  # rows per forward/backward (0: the whole batch)
    checkpoint_every: int = 0  # 0: only the final checkpoint (when a checkpoint_dir is given)
    # Departures the paper leaves open (each off by default; see runbook.md for what they did on validation):
    lr_warmup: int = 0  # steps of linear warm-up from 0 to lr
    lr_schedule: str = "constant"  # "constant" or "cosine" (to lr / 10 at the last step, after the warm-up)
    drop_flat_groups: bool = False  # leave out of the update the groups whose advantages are all 0 (no signal)
    turn_budget: str = "joint"  # "joint": one loss, one clip, one Adam; "per_turn": each turn its own clip and Adam
    # how score.train_stage keeps a checkpoint: "train_reward" (the paper's) or "val_greedy" (greedy validation
    # reward), for which the run also saves the starting policy (step_000000) so that selection can keep it
    select: str = "train_reward"
    # "online": first attempts sampled from the current policy (the paper); "pool": taken from a fixed pool of
    # first attempts sampled once before training (rl_train's y1_pool; notebook 40's "w/o online turn-1 samples")
    turn1_source: str = "online"

    @property
    def n_turns(self) -> int:
        """Attempts per rollout: the objective's (1, 2 or 3)."""
        return len(OBJECTIVES[self.objective].rewarded)


@dataclass(frozen=True)
class Objective:
    """What an objective does on each turn: whether the turn's tokens are rewarded, the name of the KL weight on
    them (an RLSettings field), and whether rewards after turn 1 are shaped (r_t + alpha (r_t - r_{t-1}))."""

    rewarded: tuple
    kl: tuple
    shaped: bool = False


# The paper's objectives (paper values alpha = 10, beta1 = 0.01, beta2 = 0.1; notebook 20 shows this table):
OBJECTIVES = {
    # standard multi-turn RL (Eq. 2, the collapse baseline): both turns rewarded, beta1 on both
    "multi_turn": Objective(rewarded=(True, True), kl=("beta1", "beta1")),
    # Stage I (Eq. 3): turn 2 rewarded, turn 1 held near the reference by the strong beta2
    "stage1": Objective(rewarded=(False, True), kl=("beta2", "beta1")),
    # Stage II (Eq. 4): both turns rewarded, turn 2 shaped; beta_turn1 (None: beta1) on turn 1, beta1 on turn 2
    "stage2": Objective(rewarded=(True, True), kl=("beta_turn1", "beta1"), shaped=True),
    # one attempt, rewarded (notebook 40's "w/o multi-turn training")
    "single_turn": Objective(rewarded=(True,), kl=("beta_turn1",)),
    # the ICLR appendix's three attempts (notebook 45): Stage 1(a) trains turn 2 with turn 1 held
    "three_turn_stage1a": Objective(rewarded=(False, True, False), kl=("beta2", "beta1", "beta1")),
    # Stage 1(b): turn 3 rewarded, turns 1 and 2 held (against the 1(a) model: score.train_stage's reference)
    "three_turn_stage1b": Objective(rewarded=(False, False, True), kl=("beta2", "beta2", "beta1")),
    # Stage 2: every turn rewarded, turn t >= 2 shaped against turn t - 1 (objectives.shaped_rewards)
    "three_turn_stage2": Objective(rewarded=(True, True, True), kl=("beta_turn1", "beta1", "beta1"), shaped=True),
}
LR_SCHEDULES = ("constant", "cosine")
TURN_BUDGETS = ("joint", "per_turn")
TURN2_BASELINES = ("group", "first_attempt", "difference")
TURN1_SOURCES = ("online", "pool")
SELECT_RULES = ("train_reward", "val_greedy")


def objective(name: str, **settings) -> RLSettings:
    """The settings of one of the paper's objectives (OBJECTIVES); ``settings`` sets the other RLSettings fields
    (steps, lr, k, alpha, beta1, ...)."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; valid: {list(OBJECTIVES)}")
    return RLSettings(objective=name, **settings)


def rewarded(s: RLSettings) -> tuple:
    """Per turn: whether the objective rewards that turn's tokens."""
    return OBJECTIVES[s.objective].rewarded


def kl_weights(s: RLSettings) -> tuple:
    """Per turn: the KL weight on that turn's tokens, as the objective assigns beta1, beta2 and beta_turn1 (None:
    beta1) to turns. Stage I: (beta2, beta1); Stage II: (beta_turn1, beta1); multi-turn RL: (beta1, beta1)."""
    value = dict(beta1=s.beta1, beta2=s.beta2, beta_turn1=s.beta1 if s.beta_turn1 is None else s.beta_turn1)
    return tuple(value[name] for name in OBJECTIVES[s.objective].kl)


def bonus(s: RLSettings) -> float:
    """The shaping bonus alpha as the objective applies it: s.alpha where it shapes (Stage II), else 0."""
    return s.alpha if OBJECTIVES[s.objective].shaped else 0.0


_BUDGET = ("steps", "problems_per_step", "k", "lr", "temperature")
_RESOLVED = ("objective", "alpha", "beta1", "beta2", "beta_turn1")


def applied(s: RLSettings) -> dict:
    """The settings as the trainer applies them, the objective resolved into turns: the budget, n_turns, each of
    three turns' reward (reward_turn<t>) and KL weight (beta_turn<t>; 0 past n_turns), the bonus alpha as applied,
    then the options. What notebook 45's stage table and notebook 40's list of changes show."""
    d = asdict(s)
    rew, kl = rewarded(s), kl_weights(s)
    return {**{k: d[k] for k in _BUDGET}, "n_turns": s.n_turns,
            **{f"reward_turn{t + 1}": t < len(rew) and rew[t] for t in range(3)}, "alpha": bonus(s),
            **{f"beta_turn{t + 1}": kl[t] if t < len(kl) else 0.0 for t in range(3)},
            **{k: v for k, v in d.items() if k not in _BUDGET + _RESOLVED}}


def check_settings(s: RLSettings) -> None:
    """ValueError for settings the trainer cannot run."""
    if s.objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {s.objective!r}; valid: {list(OBJECTIVES)}")
    if s.k < 2:
        raise ValueError("RLOO needs k >= 2 samples per problem")
    if s.n_turns == 3:  # what is defined for two turns only
        if s.gamma != 0:
            raise ValueError(f"gamma (discounting turn 2's reward into turn 1) is defined for two turns: with "
                             f"n_turns 3 it must be 0, got {s.gamma}")
        if s.turn2_baseline != "group":
            raise ValueError(f"turn2_baseline {s.turn2_baseline!r} is defined for two turns: with n_turns 3 each "
                             "turn's advantage is RLOO of its own shaped reward ('group')")
        if s.turn1_source != "online":
            raise ValueError("turn1_source 'pool' (notebook 40's fixed first attempts) is defined for two turns: "
                             "with n_turns 3 it must be 'online'")
    for name, valid in (("lr_schedule", LR_SCHEDULES), ("turn_budget", TURN_BUDGETS),
                        ("turn1_source", TURN1_SOURCES), ("select", SELECT_RULES)):
        if getattr(s, name) not in valid:
            raise ValueError(f"{name} must be one of {valid}, got {getattr(s, name)!r}")
    if s.lr_warmup < 0 or (s.lr_warmup and s.lr_warmup >= s.steps):
        raise ValueError(f"lr_warmup must be in [0, steps), got {s.lr_warmup} for {s.steps} steps")
    if s.turn1_source == "pool" and s.n_turns < 2:
        raise ValueError("turn1_source 'pool' fixes the first of several attempts: it needs n_turns >= 2")


def lr_at(s: RLSettings, step: int) -> float:
    """The learning rate of 0-based step `step`: linear warm-up over lr_warmup steps, then constant or a cosine
    from lr down to lr / 10 at the last step."""
    if step < s.lr_warmup:
        return s.lr * (step + 1) / (s.lr_warmup + 1)
    if s.lr_schedule == "constant":
        return s.lr
    span = max(1, s.steps - 1 - s.lr_warmup)
    frac = min(1.0, (step - s.lr_warmup) / span)
    return float(s.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * frac))))


class PerTurnAdam:
    """One Adam per turn over the same parameters (``turn_budget="per_turn"``): each turn's gradient is clipped
    and normalised on its own, so a turn with large advantages (Stage II's shaped turn 2) cannot drown the other
    turn's signal in a shared clip and a shared second-moment estimate. Behaves as one optimizer for
    checkpoints (state_dict) and learning-rate schedules (param_groups)."""

    def __init__(self, params, lr: float, n_turns: int):
        params = list(params)
        self.opts = [torch.optim.Adam(params, lr=lr) for _ in range(n_turns)]

    @property
    def param_groups(self) -> list:
        return [g for o in self.opts for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.opts:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return dict(per_turn=[o.state_dict() for o in self.opts])

    def load_state_dict(self, state: dict) -> None:
        for o, st in zip(self.opts, state["per_turn"]):
            o.load_state_dict(st)


def make_optimizer(policy, s: RLSettings):
    """Adam over the trainable weights (one per turn when s.turn_budget is "per_turn")."""
    params = [p for p in policy.parameters() if p.requires_grad]
    return PerTurnAdam(params, s.lr, s.n_turns) if s.turn_budget == "per_turn" else torch.optim.Adam(params, lr=s.lr)


def signal_rows(advantages: list[torch.Tensor], k: int) -> torch.Tensor:
    """(N,) booleans: rows whose RLOO group (k consecutive rows) has a non-zero advantage in some turn."""
    nonzero = torch.stack([a != 0 for a in advantages]).any(0).view(-1, k).any(1)
    return nonzero.repeat_interleave(k)


def advantages(rewards: np.ndarray, s: RLSettings) -> tuple[list[torch.Tensor], dict]:
    """Per-turn RLOO advantages from (N, T) binary rewards (rows grouped by problem, k per group),
    and the rewards as used (turn-2 shaped) for logging."""
    r = torch.as_tensor(rewards, dtype=torch.float32)
    k, alpha, rew = s.k, bonus(s), rewarded(s)
    r1 = r[:, 0]
    if s.n_turns == 1:
        a1 = rloo_advantages(r1.view(-1, k)).view(-1) if rew[0] else torch.zeros_like(r1)
        return [a1], dict(reward=float(r1.mean()), shaped_reward=float(r1.mean()))
    if s.n_turns == 3:
        return _advantages_three(r, s)
    r2 = shaped_turn2_reward(r1, r[:, 1], alpha)
    # Discounting adds the *unshaped* turn-2 reward: a shaped one would put a negative weight (1 - gamma*alpha)
    # on a right first attempt. Turn 1 gets no return at all where it is not rewarded (Stage I).
    g1 = r1 + s.gamma * r[:, 1] if rew[0] else torch.zeros_like(r1)
    a1 = rloo_advantages(g1.view(-1, k)).view(-1) if rew[0] else torch.zeros_like(r1)
    if s.turn2_baseline == "first_attempt":
        # The bonus's -alpha * r1 term is fixed once y1 is written, so it adds no expected gradient to turn 2's tokens;
        # a baseline may depend on y1, and subtracting that term leaves (1 + alpha) x RLOO(r2). Same expected
        # gradient; whether the variance is lower depends on how r2 correlates with r1 (hence a sweep, not a default).
        a2 = (1 + alpha) * rloo_advantages(r[:, 1].view(-1, k)).view(-1)
    elif s.turn2_baseline == "difference":
        # Any function of y1 is a valid baseline for turn 2's tokens (y1 is written before y2 is sampled): subtracting
        # (1 + alpha) * r1 leaves (1 + alpha)(r2 - r1), RLOO-centred. A copy of y1 then scores exactly 0 and a re-solve
        # +-(1 + alpha) by what it changed, so the advantage no longer carries y1's correctness, which the group
        # baseline leaves in turn 2 whenever the group's first attempts differ. Same expected gradient (tested).
        a2 = (1 + alpha) * rloo_advantages((r[:, 1] - r1).view(-1, k)).view(-1)
    elif s.turn2_baseline == "group":
        a2 = rloo_advantages(r2.view(-1, k)).view(-1)
    else:
        raise ValueError(f"turn2_baseline must be one of {TURN2_BASELINES}, got {s.turn2_baseline!r}")
    a2 = a2 if rew[1] else torch.zeros_like(r2)
    used = (r1 if rew[0] else 0.0) + (r[:, 1] if rew[1] else 0.0)
    return [a1, a2], dict(reward=float(torch.as_tensor(used).mean()), shaped_reward=float(r2.mean()))


def _advantages_three(r: torch.Tensor, s: RLSettings) -> tuple[list[torch.Tensor], dict]:
    """Three turns: each rewarded turn's RLOO advantage of its own shaped reward (turn 1: r1; turn t >= 2:
    r_t + alpha * (r_t - r_{t-1}), ``objectives.shaped_rewards``), 0 for a turn not rewarded. Logs the unshaped
    reward of the rewarded turns (summed; what checkpoint selection by training reward reads) and the shaped one."""
    shaped = shaped_rewards(r, bonus(s))
    rew = rewarded(s)
    adv = [rloo_advantages(shaped[:, t].reshape(-1, s.k)).reshape(-1) if rew[t] else torch.zeros(r.shape[0])
           for t in range(3)]
    used = sum((r[:, t] for t in range(3) if rew[t]), torch.zeros(r.shape[0]))
    got = sum((shaped[:, t] for t in range(3) if rew[t]), torch.zeros(r.shape[0]))
    return adv, dict(reward=float(used.mean()), shaped_reward=float(got.mean()),
                     shaped_t2=float(shaped[:, 1].mean()), shaped_t3=float(shaped[:, 2].mean()))


def reference_logprobs(policy, ref, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       temperature: float = 1.0, forward_model=None) -> torch.Tensor:
    """log-probs under the frozen reference: `ref` when given, else `policy` with its LoRA adapter disabled
    (called through ``forward_model``, the policy's distributed wrapper, when one is given)."""
    with torch.no_grad():
        if ref is not None:
            return token_logprobs(ref, input_ids, attention_mask, temperature)
        with reference_mode(policy):
            return token_logprobs(forward_model or policy, input_ids, attention_mask, temperature)


def policy_update(policy, ref, opt, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  masks: list[torch.Tensor], advantages: list[torch.Tensor], betas: list[float],
                  micro_batch: int | None = None, max_grad_norm: float = 1.0, temperature: float = 1.0,
                  token_budget: int | None | str = "auto") -> dict:
    """One optimizer step of the REINFORCE + KL loss (objectives.policy_loss) over a batch of rollouts.

    Rows are right-padded (each row's tokens, then padding): under a causal mask no real token attends to the
    padding after it, so chunks run without an attention mask (the fused causal attention path). Rows go
    through the model in chunks (``rollout.length_chunks``: sorted by length, at most ``micro_batch`` rows and
    ``token_budget`` padded tokens ("auto": ``rollout.cpu_token_budget``), each cropped to its longest row)
    with gradient accumulation, so that a real vocabulary's (rows, tokens, vocab) log-softmax fits in memory and
    little compute goes to padding; the result equals the full-batch loss. With a ``PerTurnAdam`` each turn's loss (averaged over that turn's
    tokens) has its own gradient, clipped to max_grad_norm and stepped by its own Adam. Returns the loss, the
    gradient norm before clipping, the mean per-token KL of each turn and the seconds spent in the reference
    pass, the policy's forward + backward, and the optimizer step.
    """
    if bool((attention_mask[:, 1:] > attention_mask[:, :-1]).any()):
        raise ValueError("policy_update needs right-padded rows (real tokens first, then padding)")
    if distributed.active():  # this process's rows of a batch split across processes
        return _policy_update_distributed(policy, ref, opt, input_ids, attention_mask, masks, advantages, betas,
                                          micro_batch, max_grad_norm, temperature, token_budget)
    device = next(policy.parameters()).device
    token_budget = cpu_token_budget(policy, "update") if token_budget == "auto" else token_budget
    n_tok = float(sum(m.sum() for m in masks).clamp(min=1))
    per_turn = isinstance(opt, PerTurnAdam)
    params = [p for p in policy.parameters() if p.requires_grad]
    turn_tok = [max(1.0, float(m.sum())) for m in masks]
    turn_grads = [[None] * len(params) for _ in masks]
    kl_sum = [0.0] * len(masks)
    loss_total = 0.0
    sec = dict(ref_s=0.0, policy_s=0.0)
    opt.zero_grad(set_to_none=True)
    policy.train()
    for rows in length_chunks(attention_mask.sum(1).tolist(), micro_batch, token_budget):
        width = int(attention_mask[rows].sum(1).max())
        ids = input_ids[rows, :width].to(device)
        ms = [m[rows, :width].to(device) for m in masks]
        chunk_tok = float(sum(m.sum() for m in ms))
        if chunk_tok == 0:
            continue
        t0 = time.perf_counter()
        ref_logp = reference_logprobs(policy, ref, ids, None, temperature)
        t1 = time.perf_counter()
        logp = token_logprobs(policy, ids, None, temperature)
        adv = [a[rows].to(device) for a in advantages]
        loss, kl = policy_loss(logp, ref_logp, ms, adv, betas)
        if per_turn:  # each turn's own mean loss, its gradient kept apart
            for t in range(len(ms)):
                chunk_turn_tok = float(ms[t].sum())
                if chunk_turn_tok == 0:
                    continue
                loss_t, _ = policy_loss(logp, ref_logp, [ms[t]], [adv[t]], [betas[t]])
                grads = torch.autograd.grad(loss_t * (chunk_turn_tok / turn_tok[t]), params,
                                            retain_graph=True, allow_unused=True)
                for i, g in enumerate(grads):
                    if g is not None:
                        turn_grads[t][i] = g if turn_grads[t][i] is None else turn_grads[t][i] + g
        else:
            (loss * (chunk_tok / n_tok)).backward()
        sec["ref_s"] += t1 - t0
        sec["policy_s"] += time.perf_counter() - t1
        loss_total += float(loss.detach()) * chunk_tok / n_tok
        kl = kl.detach()
        for t, m in enumerate(ms):
            kl_sum[t] += float((kl * m).sum())
    t0 = time.perf_counter()
    if per_turn:
        norms = []
        for t, o in enumerate(opt.opts):
            for p, g in zip(params, turn_grads[t]):
                p.grad = g
            norms.append(float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm)))
            o.step()
        grad_norm = float(np.sqrt(sum(x * x for x in norms)))
    else:
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
    sec["step_s"] = time.perf_counter() - t0
    policy.eval()
    return dict(loss=loss_total, grad_norm=float(grad_norm),
                **{f"kl_t{t + 1}": kl_sum[t] / max(1.0, float(m.sum())) for t, m in enumerate(masks)}, **sec)


def _policy_update_distributed(policy, ref, opt, input_ids, attention_mask, masks, advantages, betas, micro_batch,
                               max_grad_norm, temperature, token_budget) -> dict:
    """``policy_update`` on this process's rows when several processes share a batch (``distributed``).

    The single-process loss is the mean over the whole batch's attempt tokens (per turn with a ``PerTurnAdam``). Each
    process weights its chunks by (processes / global tokens), with the global count summed over the processes first;
    DDP averages the gradients in the last chunk's backward (the earlier ones accumulate under ``no_sync``), so the
    all-reduced gradient is the single-process one. Clipping sees that global gradient, and every process steps the
    same Adam. A process with no rows joins the all-reduce with a zero gradient. With a ``PerTurnAdam`` each turn
    runs its own pass over the chunks (forward and backward again: DDP reduces one backward per forward), its
    gradient set aside, then each turn's gradient is clipped and stepped as in the single-process path."""
    device = next(policy.parameters()).device
    wrapped = distributed.wrap(policy)
    world = distributed.world()
    token_budget = cpu_token_budget(policy, "update") if token_budget == "auto" else token_budget
    per_turn = isinstance(opt, PerTurnAdam)
    params = [p for p in policy.parameters() if p.requires_grad]
    local_tok = [float(m.sum()) for m in masks]
    turn_tok_global = distributed.sum_across(local_tok)
    n_tok = max(1.0, sum(turn_tok_global))
    turn_tok = [max(1.0, x) for x in turn_tok_global]
    chunks = []
    for rows in length_chunks(attention_mask.sum(1).tolist(), micro_batch, token_budget):
        width = int(attention_mask[rows].sum(1).max())
        ms = [m[rows, :width].to(device) for m in masks]
        if float(sum(m.sum() for m in ms)) > 0:
            chunks.append((rows, width, ms))
    kl_sum = [0.0] * len(masks)
    loss_local = 0.0
    sec = dict(ref_s=0.0, policy_s=0.0)

    def one_pass(turn: int | None) -> None:
        """Forward + backward over this process's chunks: the joint loss (turn None) or one turn's; the gradient is
        all-reduced in the last backward."""
        nonlocal loss_local
        live = [c for c in chunks if turn is None or float(c[2][turn].sum()) > 0]
        if not live:
            distributed.zero_backward(wrapped, policy)
            return
        for j, (rows, width, ms) in enumerate(live):
            ids = input_ids[rows, :width].to(device)
            t0 = time.perf_counter()
            ref_logp = reference_logprobs(policy, ref, ids, None, temperature, forward_model=wrapped)
            t1 = time.perf_counter()
            with distributed.no_sync(wrapped, sync=j + 1 == len(live)):
                logp = token_logprobs(wrapped, ids, None, temperature)
                adv = [a[rows].to(device) for a in advantages]
                if turn is None:
                    chunk_tok = float(sum(m.sum() for m in ms))
                    loss, kl = policy_loss(logp, ref_logp, ms, adv, betas)
                    (loss * (world * chunk_tok / n_tok)).backward()
                    loss_local += float(loss.detach()) * chunk_tok / n_tok
                else:
                    chunk_turn_tok = float(ms[turn].sum())
                    loss_t, _ = policy_loss(logp, ref_logp, [ms[turn]], [adv[turn]], [betas[turn]])
                    (loss_t * (world * chunk_turn_tok / turn_tok[turn])).backward()
                    loss, kl = policy_loss(logp.detach(), ref_logp, ms, adv, betas)
                    if turn == 0:  # the logged joint loss and KL, once
                        loss_local += float(loss) * float(sum(m.sum() for m in ms)) / n_tok
            sec["ref_s"] += t1 - t0
            sec["policy_s"] += time.perf_counter() - t1
            if turn is None or turn == 0:
                kl = kl.detach()
                for t, m in enumerate(ms):
                    kl_sum[t] += float((kl * m).sum())

    opt.zero_grad(set_to_none=True)
    policy.train()
    if per_turn:
        turn_grads = []
        for t in range(len(masks)):
            one_pass(t)
            turn_grads.append([p.grad for p in params])
            opt.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        norms = []
        for t, o in enumerate(opt.opts):
            if turn_tok_global[t] == 0:  # no tokens of this turn anywhere: the single-process path skips it too
                grads = [None] * len(params)
            else:
                grads = turn_grads[t]
            for p, g in zip(params, grads):
                p.grad = g
            norms.append(float(distributed.clip_grad_norm(wrapped, params, max_grad_norm)))
            o.step()
        grad_norm = float(np.sqrt(sum(x * x for x in norms)))
    else:
        one_pass(None)
        t0 = time.perf_counter()
        grad_norm = distributed.clip_grad_norm(wrapped, params, max_grad_norm)
        opt.step()
    sec["step_s"] = time.perf_counter() - t0
    policy.eval()
    summed = distributed.sum_across([loss_local, *kl_sum])
    return dict(loss=summed[0], grad_norm=float(grad_norm),
                **{f"kl_t{t + 1}": summed[1 + t] / max(1.0, turn_tok_global[t]) for t in range(len(masks))}, **sec)


def _trainable_state(model) -> dict:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(path: str | Path, policy, opt, step: int, log: list[dict], run: dict | None = None) -> Path:
    """Trainable weights, optimizer state and the log, written to a temporary folder then renamed
    (``results.atomic_path``: a kill leaves the old checkpoint or the new one). Only the newest checkpoint keeps
    its optimizer state (the one resumption needs): older ones lose theirs."""
    from scorelib.results import atomic_path, fault_point

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.mkdir(parents=True)
        torch.save(_trainable_state(policy), tmp / "trainable.pt")
        torch.save(opt.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(dict(step=step, log=log, run=run or {})))
    for old in checkpoints(path.parent):
        if old != path and (old / "optimizer.pt").exists():
            (old / "optimizer.pt").unlink()
    fault_point("checkpoint")
    return path


def checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    """Complete checkpoints in step order."""
    d = Path(checkpoint_dir)
    return sorted(p for p in d.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp")
                  and (p / "state.json").exists()) if d.is_dir() else []


def load_checkpoint(path: str | Path, policy, opt=None) -> tuple[int, list[dict]]:
    """Load trainable weights (and the optimizer state) into place; returns (step, log)."""
    path = Path(path)
    state = torch.load(path / "trainable.pt", map_location="cpu")
    params = dict(policy.named_parameters())
    missing = sorted(set(state) - set(params))
    if missing:
        raise ValueError(f"checkpoint {path} has weights the model lacks, e.g. {missing[:3]}")
    with torch.no_grad():
        for n, v in state.items():
            params[n].copy_(v.to(params[n].device, params[n].dtype))
    if opt is not None:
        if not (path / "optimizer.pt").exists():
            raise FileNotFoundError(f"{path} has no optimizer state (only the newest checkpoint keeps it)")
        opt.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu"))
    data = json.loads((path / "state.json").read_text())
    return int(data["step"]), list(data["log"])


def best_checkpoint(checkpoint_dir: str | Path, window: int = 10) -> tuple[Path, float]:
    """The checkpoint with the highest mean training reward over the `window` steps before it."""
    best, best_r = None, -np.inf
    for c in checkpoints(checkpoint_dir):
        data = json.loads((c / "state.json").read_text())
        recent = data["log"][-window:]
        r = float(np.mean([x["reward"] for x in recent])) if recent else -np.inf
        if r > best_r:
            best, best_r = c, r
    if best is None:
        raise FileNotFoundError(f"no checkpoints in {checkpoint_dir}")
    return best, best_r


def best_checkpoint_by(checkpoint_dir: str | Path, policy, score_fn) -> tuple[Path, float, list[dict]]:
    """The checkpoint whose weights score highest under ``score_fn(policy) -> float`` (e.g. greedy reward on
    validation problems; ties go to the earlier checkpoint). Every complete checkpoint is a candidate, the
    starting policy's ``step_000000`` too when the run saved it. Leaves the last candidate's weights loaded.
    Returns (path, score, one dict of step and score per candidate)."""
    scored = []
    for c in checkpoints(checkpoint_dir):
        step, _ = load_checkpoint(c, policy)
        policy.eval()
        scored.append(dict(checkpoint=c, step=step, score=float(score_fn(policy))))
    if not scored:
        raise FileNotFoundError(f"no checkpoints in {checkpoint_dir}")
    best = max(scored, key=lambda r: (r["score"], -r["step"]))
    return best["checkpoint"], best["score"], [dict(step=r["step"], score=r["score"]) for r in scored]


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
    adv, rew = advantages(ro.rewards, s)
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
    all_adv, rew = advantages(rewards, s)
    rew.update(lr=lr, signal_groups=100 * float(signal_rows(all_adv, s.k).float().mean()))
    c = rewards > 0
    row = dict(step=step + 1, acc_t1=100 * float(c[:, 0].mean()), **rew, **upd,
               sample_s=t1 - t0, train_s=time.perf_counter() - t1)
    if s.n_turns >= 2:
        row.update(acc_t2=100 * float(c[:, 1].mean()), different_answer=100 * float(np.mean([d for _, d in rows])))
    if s.n_turns >= 3:
        row.update(acc_t3=100 * float(c[:, 2].mean()))
    return row
