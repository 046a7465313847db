"""The configs of the RL notebooks: ``RLCommon`` (what they share), ``Stage1Config`` (notebook 20),
``Stage2Config`` (notebook 30), ``AblationConfig`` with its ``ABLATION_ROWS`` (notebook 40) and ``ThreeTurnConfig``
(notebook 45)."""
from __future__ import annotations

from dataclasses import dataclass

from scorelib.config.checks import (STAGE1_SWEEP_KEYS, STAGE2_SWEEP_KEYS, _check, _check_eval_split, _check_name,
                                    _check_sweep, _check_training)
from scorelib.config.runs import FromBaseParams


@dataclass(frozen=True)
class RLCommon(FromBaseParams):
    """What the RL notebooks (20, 30, 40, 45) share: the objective's constants, the budget and the evaluation.
    ``stages.settings`` copies the fields that ``rl_settings.RLSettings`` has by name."""

    eval_seed: int = 0  # seeds the bootstrap of the pooled 95% CIs only (training, evaluation: seeds)
    seeds: tuple = (0, 1, 2)  # one RL run per seed, from the shared base or its own (base_run)
    n_train: int = 20000  # training problems the RL steps draw from
    problems_per_step: int = 64  # with k 4, 256 samples a step (paper: 512); 16 (64 a step) left the base where it was (runbook.md)
    k: int = 4  # samples per problem (the RLOO group)
    lr: float = 0.0001  # Adam; 3e-4 cost Stage I and multi-turn RL 6-10 points of greedy Acc@t1 (runbook.md)
    temperature: float = 1.0  # training samples (paper: 1.0)
    alpha: float = 10.0  # Stage II reward-shaping bonus (paper: 10)
    beta1: float = 0.01  # KL weight (paper: 0.01)
    beta2: float = 0.1  # Stage I's KL weight on turn-1 tokens (paper: 0.1)
    gamma: float = 0.0  # discount of the turn-2 reward into turn 1 (paper: 0; 0.8 in Fig. 8)
    turn2_baseline: str = 'group'  # group: RLOO on shaped turn-2 rewards (paper); first_attempt: also subtracts the bonus' y1 term; difference: RLOO of (1+alpha)(r2-r1)
    lora_rank: int = 0  # 0: full fine-tuning; else a peft LoRA adapter (the reference is the adapter disabled)
    lora_alpha: float = 16.0  # LoRA scale: the update is multiplied by lora_alpha / lora_rank
    lora_targets: tuple = ("q_proj", "k_proj", "v_proj", "o_proj")  # module names the adapter wraps
    micro_batch: int = 0  # rows per forward/backward in the update (0: the whole batch)
    checkpoint_every: int = 25  # steps between checkpoints (candidates for selection; resumption)
    select: str = 'val_greedy'  # val_greedy (greedy reward on validation, the start a candidate; departure) or train_reward (paper: best training reward)
    select_window: int = 10  # training steps averaged when selecting a checkpoint by reward
    n_select: int = 512  # validation problems behind select val_greedy
    lr_warmup: int = 0  # steps of linear learning-rate warm-up (departure; paper: not specified)
    lr_schedule: str = 'constant'  # constant or cosine (to lr/10 at the last step; departure)
    drop_flat_groups: bool = False  # leave RLOO groups without signal (all advantages 0) out of the update (departure)
    turn_budget: str = 'joint'  # joint: one loss, clip and Adam; per_turn: each turn its own clip and Adam (departure)
    n_test: int = 2048  # held-out problems (|Δ| of a point or two needs this many); sweeps use as many val problems
    eval_split: str = "test"  # held-out split: test (reported numbers) or val (tuning; see scorelib/protocol.py)
    temperatures: tuple = (0.0, 1.0)  # evaluation temperatures (0 is greedy, as in the paper)
    n_boot: int = 1000  # bootstrap resamples for 95% CIs
    n_transcripts: int = 2  # examples shown of each transition
    max_new_tokens: int = 160  # longest attempt, in tokens
    gen_batch_size: int = 512  # rows per generation batch (evaluation)
    sweep: tuple = ()  # variants run on the first seed beside the main run, each a mapping of overrides (see *_SWEEP_KEYS)

    def validate(self) -> None:
        super().validate()
        _check_training(self)
        for name in ("n_train", "problems_per_step", "n_test", "n_boot", "max_new_tokens", "gen_batch_size",
                     "select_window"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(self.k >= 2, f"k must be >= 2 (RLOO leaves one out), got {self.k}")
        _check(self.problems_per_step <= self.n_train, "problems_per_step must be <= n_train")
        for name in ("lora_rank", "micro_batch", "checkpoint_every", "n_transcripts", "alpha", "beta1", "beta2"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _check(0 < self.lr < 1, f"lr must be in (0, 1), got {self.lr}")
        _check(0 < self.temperature <= 5, f"temperature must be in (0, 5], got {self.temperature}")
        _check(0 <= self.gamma <= 1, f"gamma must be in [0, 1], got {self.gamma}")
        _check(self.turn2_baseline in ("group", "first_attempt", "difference"),
               f"turn2_baseline must be 'group', 'first_attempt' or 'difference', got {self.turn2_baseline!r}")
        _check(self.select in ("train_reward", "val_greedy"),
               f"select must be 'train_reward' or 'val_greedy', got {self.select!r}")
        _check(self.lr_schedule in ("constant", "cosine"),
               f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        _check(self.turn_budget in ("joint", "per_turn"),
               f"turn_budget must be 'joint' or 'per_turn', got {self.turn_budget!r}")
        _check(self.n_select >= 1, f"n_select must be >= 1, got {self.n_select}")
        _check(self.lr_warmup >= 0, f"lr_warmup must be >= 0, got {self.lr_warmup}")
        _check(self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha}")
        _check(len(self.lora_targets) >= 1, "lora_targets must name at least one module")
        _check_eval_split(self)
        _check(len(self.temperatures) >= 1 and all(isinstance(t, (int, float)) and not isinstance(t, bool)
                                                   and 0 <= t <= 5 for t in self.temperatures),
               f"temperatures must be a non-empty list of numbers in [0, 5], got {self.temperatures!r}")


@dataclass(frozen=True)
class Stage1Config(RLCommon):
    """Notebook 20: Stage I beside standard multi-turn RL (Fig. 5)."""

    eval_seed: int = 0  # seeds the base model's evaluation and the CIs' bootstrap (training: seeds)
    steps: int = 100  # RL steps of each method

    def validate(self) -> None:
        super().validate()
        _check(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        _check(self.lr_warmup < self.steps, f"lr_warmup must be < steps, got {self.lr_warmup} for {self.steps} steps")
        _check_sweep(self, STAGE1_SWEEP_KEYS)


@dataclass(frozen=True)
class Stage2Config(RLCommon):
    """Notebook 30: Stage II from the Stage I checkpoint; the main table (Table 2, Fig. 1)."""

    stage1_run: str = "default"  # the notebook-20 run whose Stage I checkpoints to start from
    sft_run: str = "default"  # the notebook-10 run whose STaR and Pair-SFT rows to show (missing: marked so)
    steps: int = 100  # Stage II steps (per round)
    turn_budget: str = 'per_turn'  # per_turn: each turn its own clip and Adam (departure, chosen on validation); joint: one loss, clip and Adam (paper)
    beta_turn1: float = 0.01  # Stage II's KL weight on turn-1 tokens (paper: beta1, 0.01, as on turn 2)
    rounds: int = 1  # rounds of Stage II (rounds > 1 interleave Stage I, as in the paper's v1)
    stage1_steps: int = 50  # Stage I steps in each extra round (rounds > 1)

    def inputs(self) -> list[tuple[str, str, str]]:
        return super().inputs() + [("20_stage1_vs_multiturn_rl", self.stage1_run, "")]

    def validate(self) -> None:
        super().validate()
        _check_name("stage1_run", self.stage1_run)
        _check_name("sft_run", self.sft_run)
        for name in ("steps", "rounds"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(self.beta_turn1 >= 0, f"beta_turn1 must be >= 0, got {self.beta_turn1}")
        _check(self.lr_warmup < self.steps, f"lr_warmup must be < steps, got {self.lr_warmup} for {self.steps} steps")
        _check(self.stage1_steps >= 0, f"stage1_steps must be >= 0, got {self.stage1_steps}")
        _check(not (self.sweep and self.rounds > 1), "a sweep runs one round of Stage II: set rounds 1 (or sweep [])")
        _check_sweep(self, STAGE2_SWEEP_KEYS)


# Notebook 40's rows (scorelib/ablations.py says what each changes from SCoRe's recipe).
ABLATION_ROWS = ("single_turn", "no_stage1", "no_shaping", "star", "gamma", "offline_y1")


@dataclass(frozen=True)
class AblationConfig(RLCommon):
    """Notebook 40: ablations of SCoRe (Table 4, Fig. 8; claim C7), each trained with notebook 30's recipe but for
    the one thing the row changes; the SCoRe row is read from notebook 30's run."""

    stage1_run: str = "default"  # the notebook-20 run whose Stage I models the rows from Stage I start from
    score_run: str = "default"  # the notebook-30 run: the SCoRe row, and the recipe every row must share
    steps: int = 100  # Stage II steps (as notebook 30)
    turn_budget: str = 'per_turn'  # as notebook 30: per_turn (each turn its own clip and Adam) or joint
    beta_turn1: float = 0.01  # Stage II's KL weight on turn-1 tokens (as notebook 30)
    ablation_rows: tuple = ABLATION_ROWS  # rows to train (single_turn, no_stage1, no_shaping, star, gamma, offline_y1)
    matched_budget: bool = True  # rows from the base train Stage I's + Stage II's steps (false: Stage II's)
    star_rounds: int = 3  # STaR row: sample + fine-tune rounds over Stage II's budget (STaR's 3 iterations)
    star_epochs: float = 1.0  # STaR row: epochs over each round's kept samples
    star_lr: float = 0.0001  # STaR row: fine-tuning learning rate (notebook 10's)
    star_batch_size: int = 16  # STaR row: fine-tuning batch (notebook 10's sft_batch_size)

    def inputs(self) -> list[tuple[str, str, str]]:
        return super().inputs() + [("20_stage1_vs_multiturn_rl", self.stage1_run, ""),
                                   ("30_score_stage2", self.score_run, "")]

    def validate(self) -> None:
        super().validate()
        _check_name("stage1_run", self.stage1_run)
        _check_name("score_run", self.score_run)
        _check(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        _check(self.lr_warmup < self.steps, f"lr_warmup must be < steps, got {self.lr_warmup} for {self.steps} steps")
        _check(self.beta_turn1 >= 0, f"beta_turn1 must be >= 0, got {self.beta_turn1}")
        _check(len(self.ablation_rows) >= 1 and len(set(self.ablation_rows)) == len(self.ablation_rows)
               and all(a in ABLATION_ROWS for a in self.ablation_rows),
               f"ablation_rows must be distinct names from {list(ABLATION_ROWS)}, got {list(self.ablation_rows)}")
        _check(1 <= self.star_rounds <= self.steps, f"star_rounds must be in [1, steps], got {self.star_rounds}")
        _check(self.star_epochs > 0, f"star_epochs must be > 0, got {self.star_epochs}")
        _check(0 < self.star_lr < 1, f"star_lr must be in (0, 1), got {self.star_lr}")
        _check(self.star_batch_size >= 1, f"star_batch_size must be >= 1, got {self.star_batch_size}")
        _check(not self.sweep, "notebook 40 runs no sweep (its rows are the variants): leave sweep empty")


@dataclass(frozen=True)
class ThreeTurnConfig(RLCommon):
    """Notebook 45: SCoRe with three attempts (ICLR appendix A.1): Stage 1(a), Stage 1(b) and Stage 2 from the base,
    each with notebook 30's recipe; Acc@t1/t2/t3 of the base and of each stage."""

    seeds: tuple = (0,)  # one seed by default: three RL runs a seed (about 1.3 h on 2 cores); no claim rests on it
    steps: int = 100  # RL steps of each stage (notebook 30's Stage II steps)
    turn_budget: str = 'per_turn'  # Stage 2's (per_turn or joint); Stages 1(a), 1(b): joint
    beta_turn1: float = 0.01  # Stage 2's KL weight on turn-1 tokens (as notebook 30)
    temperatures: tuple = (0.0,)  # evaluation temperatures (0 is greedy, as the paper's three-turn rows)

    def validate(self) -> None:
        super().validate()
        _check(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        _check(self.lr_warmup < self.steps, f"lr_warmup must be < steps, got {self.lr_warmup} for {self.steps} steps")
        _check(self.beta_turn1 >= 0, f"beta_turn1 must be >= 0, got {self.beta_turn1}")
        _check(self.gamma == 0, "gamma discounts turn 2 into turn 1, defined for two turns: notebook 45 needs "
               f"gamma 0, got {self.gamma}")
        _check(self.turn2_baseline == "group", "turn2_baseline is defined for two turns: with three each turn's "
               f"advantage is RLOO of its own shaped reward, so notebook 45 needs 'group', got {self.turn2_baseline!r}")
        _check(not self.sweep, "notebook 45 runs no sweep: leave sweep empty")
