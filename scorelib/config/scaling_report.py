"""The configs of the notebooks after RL: ``ScalingConfig`` (notebook 50) and ``ReportConfig`` (notebook 90,
with ``REPORT_RUN_FIELDS``, the runs it reads)."""
from __future__ import annotations

from dataclasses import dataclass

from scorelib.config.checks import EVAL_SPLITS, _check, _check_eval_split, _check_name
from scorelib.config.runs import FromBaseParams, RunParams


@dataclass(frozen=True)
class ScalingConfig(FromBaseParams):
    """Notebook 50: inference-compute scaling (Fig. 1 right, claim C8) and sequential attempts (Fig. 7)."""

    eval_seed: int = 0  # seeds the base model's samples and the bootstrap CIs (SCoRe, Pair-SFT: seeds)
    score_run: str = "default"  # notebook 30's run: its Stage II model of each seed is SCoRe
    sft_run: str = "default"  # notebook 10's run: its Pair-SFT models join Fig. 7
    seeds: tuple = (0, 1, 2)  # each seed's own SCoRe and Pair-SFT (and base: base_run)
    n_test: int = 512  # held-out problems for the budget curves
    eval_split: str = "test"  # test (reported numbers) or val (tuning; scorelib/protocol.py)
    budgets: tuple = (2, 4, 8, 16, 32)  # attempts per problem: B samples or B/2 pairs
    sample_temperature: float = 0.7  # both methods (paper: 0.7)
    n_seq_attempts: int = 10  # Fig. 7: greedy attempts, each seeing those before
    n_seq_problems: int = 128  # Fig. 7: the first of the held-out problems
    n_boot: int = 1000  # bootstrap resamples for 95% CIs
    max_new_tokens: int = 160  # longest attempt, in tokens
    gen_batch_size: int = 512  # rows per generation batch (all problems x samples)

    def inputs(self) -> list[tuple[str, str, str]]:
        return super().inputs() + [("30_score_stage2", self.score_run, "models")]

    def validate(self) -> None:
        super().validate()
        _check_name("score_run", self.score_run)
        _check_name("sft_run", self.sft_run)
        _check(len(self.seeds) >= 1
               and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in self.seeds)
               and len(set(self.seeds)) == len(self.seeds),
               f"seeds must be a non-empty list of distinct integers >= 0, got {self.seeds!r}")
        _check(len(self.budgets) >= 1 and all(isinstance(b, int) and not isinstance(b, bool) and b >= 2 and b % 2 == 0
                                              for b in self.budgets)
               and list(self.budgets) == sorted(set(self.budgets)),
               f"budgets must be increasing even integers >= 2 (sequential spends B/2 pairs), got {self.budgets!r}")
        _check(0 < self.sample_temperature <= 5, f"sample_temperature must be in (0, 5], got {self.sample_temperature}")
        for name in ("n_test", "n_seq_attempts", "n_seq_problems", "n_boot", "max_new_tokens", "gen_batch_size"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(self.n_seq_problems <= self.n_test, f"n_seq_problems must be <= n_test, got {self.n_seq_problems}")
        _check_eval_split(self)


# The report's run fields: the notebook (by number) whose run each names.
REPORT_RUN_FIELDS = {"pretrain_run": "00", "eval_run": "01", "sft_run": "10", "stage1_run": "20", "score_run": "30",
                     "ablations_run": "40", "three_turn_run": "45", "scaling_run": "50"}


@dataclass(frozen=True)
class ReportConfig(RunParams):
    """Notebook 90: every notebook's results beside the paper's, the claims checklist C1-C8, the environment. It
    reads runs and computes nothing new (so it has no seed): a missing run is shown as missing, with the command
    that makes it."""

    eval_split: str = "test"  # the split the runs should be evaluated on (a run on another is flagged)
    seeds: tuple = (0, 1, 2)  # the seeds the runs should use (a run with others is flagged)
    pretrain_run: str = "default"  # notebook 00's run (the base model)
    eval_run: str = "default"  # notebook 01's run (Table 2's base row, base Figs. 3, 6, 7; claim C1)
    sft_run: str = "default"  # notebook 10's run (Table 1, Figs. 3 and 4; claims C2-C4)
    stage1_run: str = "default"  # notebook 20's run (Fig. 5; claim C5)
    score_run: str = "default"  # notebook 30's run (Table 2, Fig. 1 left; claim C6)
    ablations_run: str = "default"  # notebook 40's run (Table 4, Fig. 8; claim C7)
    three_turn_run: str = "default"  # notebook 45's run (the three-turn extension, ICLR appendix A.1)
    scaling_run: str = "default"  # notebook 50's run (Fig. 1 right, Fig. 7; claim C8)

    def run_names(self) -> dict[str, str]:
        """Run field -> run name, for every notebook the report reads."""
        return {f: getattr(self, f) for f in REPORT_RUN_FIELDS}

    def upstream_runs(self) -> list[tuple[str, str]]:
        """(notebook, run_name) of every run the report reads (present or not): the runner reruns the report when
        one of them changed."""
        from scorelib.checklist import notebook_name

        return [(notebook_name(nb, self.results_dir), getattr(self, f)) for f, nb in REPORT_RUN_FIELDS.items()]

    def validate(self) -> None:
        super().validate()
        _check(self.eval_split in EVAL_SPLITS, f"eval_split must be one of {EVAL_SPLITS}, got {self.eval_split!r}")
        _check(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds)
               and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in self.seeds),
               f"seeds must be a non-empty list of distinct integers >= 0, got {self.seeds!r}")
        for name in REPORT_RUN_FIELDS:
            _check_name(name, getattr(self, name))
