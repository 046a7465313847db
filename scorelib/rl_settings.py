"""What one RL run trains (paper section 5): the settings of a run and the table of the paper's objectives.

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
  model as reference (``stages.train_stage``'s ``reference``).

The rest of the trainer: the advantages are pure maths in ``objectives`` (``advantage_args`` gives them a run's
settings), the policy update and optimizer are in ``update``, checkpoints in ``checkpoints``, and the training
loop in ``rl``; ``stages`` runs one stage from a notebook's config (``stages.settings`` builds these settings).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

@dataclass(frozen=True)
class RLSettings:
    """One RL run's objective and budget, under the notebooks' parameter names (``stages.settings`` copies a config's
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
    turn2_baseline: str = "group"  # "group": RLOO on the shaped turn-2 rewards (paper); others: objectives.advantages
    max_new_tokens: int = 160
    micro_batch: int = 0  # rows per forward/backward (0: the whole batch)
    checkpoint_every: int = 0  # 0: only the final checkpoint (when a checkpoint_dir is given)
    # Departures the paper leaves open (each off by default; see runbook.md for what they did on validation):
    lr_warmup: int = 0  # steps of linear warm-up from 0 to lr
    lr_schedule: str = "constant"  # "constant" or "cosine" (to lr / 10 at the last step, after the warm-up)
    drop_flat_groups: bool = False  # leave out of the update the groups whose advantages are all 0 (no signal)
    turn_budget: str = "joint"  # "joint": one loss, one clip, one Adam; "per_turn": each turn its own clip and Adam
    # how stages.train_stage keeps a checkpoint: "train_reward" (the paper's) or "val_greedy" (greedy validation
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
    # Stage 1(b): turn 3 rewarded, turns 1 and 2 held (against the 1(a) model: stages.train_stage's reference)
    "three_turn_stage1b": Objective(rewarded=(False, False, True), kl=("beta2", "beta2", "beta1")),
    # Stage 2: every turn rewarded, turn t >= 2 shaped against turn t - 1 (objectives.shaped_rewards)
    "three_turn_stage2": Objective(rewarded=(True, True, True), kl=("beta_turn1", "beta1", "beta1"), shaped=True),
}
LR_SCHEDULES = ("constant", "cosine")
TURN_BUDGETS = ("joint", "per_turn")
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


def advantage_args(s: RLSettings) -> dict:
    """The arguments ``objectives.advantages`` takes, resolved from the settings: k, the turns the objective
    rewards, the bonus alpha as applied, gamma and turn2_baseline."""
    return dict(k=s.k, rewarded=rewarded(s), alpha=bonus(s), gamma=s.gamma, turn2_baseline=s.turn2_baseline)


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
