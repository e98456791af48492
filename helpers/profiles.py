"""Run profiles for the notebooks: how much data, how many epochs, seeds and grid points.

- smoke: a few dozen examples, one short epoch; CI runs every notebook this way (minutes).
- quick: `make run`: head-only, BitFit, LoRA and full fine-tuning on small subsets, one seed, one
  epoch evaluated three times; the grids collapse to the default settings (no extra runs), notebook
  05 trains only those four methods and notebook 06 prompts the LLM on 50 dev examples without
  fine-tuning it; benchmarks/quick_profile.py measures the job on a fresh clone (README: minutes, machine)
  and checks that each method beats the majority class.
- full:  the committed study (helpers.study): grids on SST-2 capped at 8,000 examples, then each
         method at its selected learning rate, whole training sets, 2 epochs, 3 seeds, fp32 (hours on
         CPU); the notebooks read its records and train nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from helpers.fields import default_of
from helpers.training import TrainConfig


@dataclass(frozen=True)
class Profile:
    name: str
    max_train_samples: int | None  # cap per task (MRPC has 3,301 after the validation slice)
    max_validation_samples: int | None
    epochs: float
    seeds: tuple[int, ...]
    ranks: tuple[int, ...]  # LoRA rank sweep
    lr_grid: dict[str, tuple[float, ...]] = field(default_factory=dict)  # learning-rate sweep per method
    batch_sizes: tuple[int, ...] = (16, 32, 64)
    warmup_ratios: tuple[float, ...] = (0.0, 0.06, 0.2)
    lr_sweep_seeds: tuple[int, ...] = (0,)
    # Run settings a profile may override; by default TrainConfig's (their one home).
    max_length: int = default_of(TrainConfig, "max_length")
    batch_size: int = default_of(TrainConfig, "batch_size")
    eval_batch_size: int = default_of(TrainConfig, "eval_batch_size")
    # Grids (learning rate, rank, batch size, warmup) may run on a smaller training subset than the
    # main comparison; None: the same as max_train_samples.
    grid_max_train_samples: int | None = None
    # Learning rates this profile sets in place of a method's default, per task: {task: {method: lr}}.
    rates: dict[str, dict[str, float]] = field(default_factory=dict)
    # True: each method is compared at the learning rate its grid selected (best mean validation
    # score, helpers.analysis.selected_lr); False: at `rates`, else its default rate (helpers.training.DEFAULT_LR).
    tuned_lr: bool = False
    eval_steps: int | None = None  # also evaluate every N steps (None: every epoch only)
    # What the notebooks train beyond the core runs (none of these enter a run's config):
    methods: tuple[str, ...] | None = None  # notebook 05's methods; None: all ten
    poolings: tuple[str, ...] = ("model", "mean")  # notebook 05's pooling comparison
    lora_targets: tuple[str | None, ...] = (None, "all-linear")  # notebook 03: query/value (None) vs every linear layer
    # The LLM notebook (06) and `helpers.study --tier llm`: in-context learning on each dev set (or a
    # seeded subset of it), one demonstration draw per seed; LoRA on the LLM and on the encoder on the same
    # training subset (the 135M LLM costs ~6x MiniLM's FLOPs per token). None: the whole split.
    icl_shots: tuple[int, ...] = (0, 1, 4)
    icl_eval_samples: int | None = None
    llm_train_samples: int | None = 1000
    llm_validation_samples: int | None = 200
    llm_seeds: tuple[int, ...] = (0, 1, 2)
    llm_finetune: bool = True  # False: notebook 06 prompts the LLM only (no LoRA runs on it or the encoder)
    # The precision every run uses; `auto` is bf16 on a CPU with bf16 instructions (helpers.device), so a
    # profile whose records must compare across machines names one.
    precision: str = default_of(TrainConfig, "precision")
    # True: the notebooks' experiments are the committed study's runs (helpers.study), read from its
    # records; a notebook trains none of them (they take hours), and lists those without a record.
    from_study: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def rate(self, task: str, method: str) -> float | None:
        """The learning rate this profile sets for a method on a task (None: the method's default)."""
        from helpers.tasks import get_task

        return self.rates.get(get_task(task).name, {}).get(method)

    def data_settings(self, grid: bool = False) -> dict:
        """The TrainConfig fields every run of this profile shares (`grid`: a grid run's; eval_steps
        only where set, so the run ids of profiles without it are unchanged)."""
        settings = {
            "max_train_samples": self.grid_max_train_samples
            if grid and self.grid_max_train_samples
            else self.max_train_samples,
            "max_validation_samples": self.max_validation_samples,
            "epochs": self.epochs,
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "eval_batch_size": self.eval_batch_size,
        }
        if self.eval_steps is not None:
            settings["eval_steps"] = self.eval_steps
        if self.precision != default_of(TrainConfig, "precision"):
            settings["precision"] = self.precision
        return settings


# Each method's default rate (helpers.training.DEFAULT_LR) is added to its grid. The grids overlap
# (1e-4 to 1e-3 appear for full fine-tuning and for the PEFT methods), so "which rate is best" is
# decided by the runs, not by where each grid was placed.
LR_GRID_FULL = {
    "head": (1e-3, 3e-3, 1e-2, 3e-2),
    "bitfit": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
    "lora": (3e-4, 1e-3, 3e-3, 1e-2),
    "full": (1e-5, 3e-5, 1e-4, 3e-4),
}

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        max_train_samples=48,
        max_validation_samples=16,
        epochs=1,
        seeds=(0,),
        ranks=(1, 8),
        lr_grid={"full": (3e-5, 1e-4), "bitfit": (1e-3, 3e-3)},
        batch_sizes=(16, 32),
        warmup_ratios=(0.0, 0.06),
        max_length=64,
        batch_size=16,
        eval_batch_size=64,
        icl_shots=(0, 1),
        icl_eval_samples=8,
        llm_train_samples=48,
        llm_validation_samples=16,
        llm_seeds=(0,),
    ),
    # MRPC decides the budget: ~30 pairs/s for BitFit/LoRA, ~24 for full fine-tuning on 2 CPU cores,
    # against ~110 SST-2 sentences/s. At 1,000 examples x 2 epochs x batch 32 (63 steps) no method
    # learned MRPC; 2,400 examples x 1 epoch x batch 16 gives 150 steps on more distinct pairs.
    "quick": Profile(
        name="quick",
        max_train_samples=2400,
        max_validation_samples=200,
        epochs=1,
        eval_steps=50,  # three validation points per run, and the best of them is kept
        seeds=(0,),
        ranks=(8,),  # the full profile sweeps 1..64
        lr_grid={},  # no learning-rate sweep; the full profile has one
        batch_sizes=(16,),
        warmup_ratios=(0.06,),
        batch_size=16,
        # MRPC in 150 steps: full fine-tuning clears the majority class by 3 points at 1e-4, not at its
        # default 5e-5; BitFit and LoRA need more pairs than the budget holds (results/quick_mrpc_rates/).
        rates={"mrpc": {"full": 1e-4}},
        methods=("head", "bitfit", "lora", "full"),
        poolings=("model",),
        lora_targets=(None,),
        icl_shots=(0, 1),
        icl_eval_samples=50,
        llm_train_samples=200,
        llm_validation_samples=50,
        llm_seeds=(0,),
        # LoRA on the LLM cost 5 of the job's 18 minutes and learned nothing on 200 examples (SST-2 0.567);
        # the committed full-profile runs (results/llm/) answer that question.
        llm_finetune=False,
    ),
    # The quick profile as it was when results/quick/ and the committed report.md were made (1,000
    # examples, 2 epochs, every grid): `python -m helpers report --profile quick-v1 --results-dir
    # results/quick` regenerates that report from those records.
    "quick-v1": Profile(
        name="quick-v1",
        max_train_samples=1000,
        max_validation_samples=200,
        epochs=2,
        seeds=(0,),
        ranks=(1, 2, 4, 8, 16, 32, 64),
        batch_sizes=(16, 32, 64),
        warmup_ratios=(0.0, 0.06, 0.2),
    ),
    # The committed study (helpers.study, results/full/PLAN.md): grids on SST-2 capped at 8,000
    # examples (MRPC whole), then each method at its selected rate on the whole training sets.
    "full": Profile(
        name="full",
        max_train_samples=None,
        max_validation_samples=2000,
        epochs=2,
        seeds=(0, 1, 2),
        ranks=(1, 2, 4, 8, 16, 32, 64),
        lr_grid=LR_GRID_FULL,
        batch_sizes=(16, 32, 64),
        warmup_ratios=(0.0, 0.06, 0.2),
        lr_sweep_seeds=(0, 1, 2),
        grid_max_train_samples=8000,
        tuned_lr=True,
        precision="fp32",  # the study's CPUs differ (AVX2 only, or AVX-512 with bf16); fp32 on each
        from_study=True,
    ),
}


def get_profile(name: str | Profile) -> Profile:
    if isinstance(name, Profile):
        return name
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}; choose one of {', '.join(PROFILES)}.")
    return PROFILES[name]
