"""In-context learning baseline: prompt a causal LM zero- or k-shot, score it, record it like a run.

Two ways to read a label from the LM, as students and papers do:

- `loglik`: the label whose word (its tokens after the prompt) has the highest log-likelihood.
  Always yields a label.
- `generate`: greedy generation of a few tokens, parsed to the label whose word comes first in the
  answer. An answer naming no label is *unparseable*; it counts as wrong, and its share is recorded.

Demonstrations (k = `shots`) are drawn from the training split (the GLUE train file minus the
validation slice) with the run's `seed`, the same ones for every test example; seeds 0, 1, 2 are
three draws. Instruct models get their chat template (instruction as the system message, each
demonstration a user turn answered by the assistant); other models a plain "Answer:" prompt.

Each (task, model, shots, scoring, seed) writes one run record with method `icl` and zero trainable
parameters, in the shape `helpers.records` defines, so the analysis reads it beside training runs.
"""

from __future__ import annotations

import inspect
import math
import re
import time
import weakref
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np
import torch

from helpers.data import DEFAULT_SPLIT_SEED, DEFAULT_VALIDATION_FRACTION
from helpers.llm import DEFAULT_LLM
from helpers.paths import RESULTS_DIR
from helpers.tasks import TaskSpec, get_task

SCORINGS = ("loglik", "generate")


@dataclass(frozen=True)
class Verbalizer:
    """How a task is asked: the instruction and one answer word per label id."""

    instruction: str
    label_words: tuple[str, ...]  # index = label id


_YES_NO = ("no", "yes")  # label 0 = the negative class
_ENTAILED = ("yes", "no")  # label 0 = entailment
VERBALIZERS: dict[str, Verbalizer] = {
    "cola": Verbalizer("Is the sentence grammatically acceptable English?", _YES_NO),
    "sst2": Verbalizer(
        "Is the sentiment of this movie review sentence positive or negative?", ("negative", "positive")
    ),
    "mrpc": Verbalizer("Do the two sentences mean the same thing?", _YES_NO),
    "qqp": Verbalizer("Do the two questions ask the same thing?", _YES_NO),
    "mnli": Verbalizer(
        "Does the premise imply the hypothesis? Answer yes, maybe (neither) or no (contradiction).",
        ("yes", "maybe", "no"),
    ),
    "qnli": Verbalizer("Does the sentence answer the question?", _ENTAILED),
    "rte": Verbalizer("Does the first sentence imply the second one?", _ENTAILED),
    "wnli": Verbalizer("Does the first sentence imply the second one?", _YES_NO),  # WNLI: 1 = entailment
}


def verbalizer_for(task: TaskSpec) -> Verbalizer:
    """The task's row of VERBALIZERS; for other (user) tasks, its label names as answer words."""
    if task.is_regression:
        raise ValueError(
            f"In-context learning here scores label words; {task.display_name} is a regression task (no labels)."
        )
    if task.name in VERBALIZERS:
        return VERBALIZERS[task.name]
    words = tuple(name.replace("_", " ") for name in task.label_names)
    return Verbalizer(f"Classify the text as one of: {', '.join(words)}.", words)


@dataclass
class IclConfig:
    """Everything that decides an ICL run's result; saved in its record."""

    task: str = "sst2"
    model: str = DEFAULT_LLM
    shots: int = 0  # demonstrations in the prompt (k)
    scoring: str = "loglik"  # loglik: label-word log-likelihood; generate: greedy answer parsed to a label
    seed: int = 0  # which draw of demonstrations (zero-shot: no effect)
    chat_template: bool = True  # use the tokenizer's chat template when it has one
    max_new_tokens: int = 5  # generate: answer length
    max_eval_samples: int | None = None  # seeded, stratified subsample of each test split (default: all)
    # the validation slice (left out of the demonstration pool, the same slice as training runs') and subsampling
    split_seed: int = DEFAULT_SPLIT_SEED
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION

    def __post_init__(self):
        self.task = get_task(self.task).name
        checks = [
            (isinstance(self.shots, int) and self.shots >= 0, f"shots must be a whole number >= 0, got {self.shots!r}"),
            (self.scoring in SCORINGS, f"scoring must be one of {SCORINGS}, got {self.scoring!r}"),
            (self.max_new_tokens > 0, f"max_new_tokens must be positive, got {self.max_new_tokens}"),
            (
                self.max_eval_samples is None or self.max_eval_samples > 0,
                f"max_eval_samples must be positive, got {self.max_eval_samples}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message + ".")
        if self.shots == 0:
            self.seed = 0  # no demonstrations to draw: one run, not one per seed

    @property
    def run_id(self) -> str:
        """e.g. `sst2-icl-k4-loglik-s0-1a2b3c4d5e`."""
        from helpers.records import config_hash

        return f"{self.task}-icl-k{self.shots}-{self.scoring}-s{self.seed}-{config_hash(asdict(self))}"


# ---------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------


def _title(column: str) -> str:
    """`sentence1` -> `Sentence 1`, `premise` -> `Premise`."""
    match = re.fullmatch(r"([a-z_]+?)(\d*)", column)
    word, number = (match.group(1), match.group(2)) if match else (column, "")
    return (word.replace("_", " ").capitalize() + (f" {number}" if number else "")).strip()


def format_input(task: TaskSpec, row: dict) -> str:
    """The example's text column(s), one `Title: text` line each."""
    return "\n".join(f"{_title(column)}: {str(row[column]).strip()}" for column in task.text_columns)


def _question(task: TaskSpec, row: dict) -> str:
    words = verbalizer_for(task).label_words
    return f"{format_input(task, row)}\nAnswer with one word: {' or '.join(words)}."


def uses_chat(tokenizer, chat_template: bool = True) -> bool:
    return bool(chat_template and getattr(tokenizer, "chat_template", None))


def build_prompt(
    task: TaskSpec | str, tokenizer, demonstrations: list[dict], row: dict, chat_template: bool = True
) -> str:
    """The prompt text up to where the answer starts (after the assistant header, or after `Answer:`)."""
    task = get_task(task)
    verbalizer = verbalizer_for(task)
    if uses_chat(tokenizer, chat_template):
        messages = [{"role": "system", "content": verbalizer.instruction}]
        for demo in demonstrations:
            messages.append({"role": "user", "content": _question(task, demo)})
            messages.append({"role": "assistant", "content": verbalizer.label_words[int(demo["label"])]})
        messages.append({"role": "user", "content": _question(task, row)})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    blocks = [verbalizer.instruction]
    blocks += [
        f"{_question(task, demo)}\nAnswer: {verbalizer.label_words[int(demo['label'])]}" for demo in demonstrations
    ]
    blocks.append(f"{_question(task, row)}\nAnswer:")
    return "\n\n".join(blocks)


def continuations(task: TaskSpec | str, tokenizer, chat_template: bool = True) -> list[str]:
    """The text each label adds after the prompt: the word (chat) or a space and the word (plain)."""
    words = verbalizer_for(get_task(task)).label_words
    return list(words) if uses_chat(tokenizer, chat_template) else [" " + word for word in words]


def draw_demonstrations(train, shots: int, seed: int) -> list[dict]:
    """`shots` rows of the training split, drawn without replacement with `seed`."""
    if shots == 0:
        return []
    if shots > len(train):
        raise ValueError(f"{shots} demonstrations asked for, but the training split has {len(train)} rows.")
    rng = np.random.default_rng(seed)
    return [train[int(i)] for i in rng.choice(len(train), size=shots, replace=False)]


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def _encode(tokenizer, texts: list[str]) -> list[list[int]]:
    # Chat templates already hold their special tokens; plain prompts get what the tokenizer adds.
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


def common_prefix_length(sequences: list[list[int]]) -> int:
    """How many first tokens every sequence shares, at most all but each one's last token."""
    length = min(len(s) for s in sequences) - 1
    first = sequences[0]
    for sequence in sequences[1:]:
        same = 0
        while same < length and sequence[same] == first[same]:
            same += 1
        length = same
    return max(length, 0)


def _cache_keyword(model) -> str:
    """transformers renamed the forward argument `past_key_values` to `cache`; either is accepted here."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(output):
    return output.cache if hasattr(output, "cache") else output.past_key_values


class _SharedPrefix:
    """The prompts' common first tokens (instruction and demonstrations), run through the model once.

    A k-shot prompt is mostly its demonstrations, the same for every test example: each batch of
    prompts then runs only its own tokens after this prefix's key/value cache (repeated to the batch
    size, so a shorter last batch is topped up with repeats of its last row), which is cut back to
    the prefix after the batch.
    """

    def __init__(self, model, ids: list[int], batch_size: int):
        self.length, self.batch_size, self.cache = len(ids), batch_size, None
        self.keyword = _cache_keyword(model)
        if ids:
            prefix = torch.tensor([ids], device=next(model.parameters()).device)
            self.cache = _cache_of(model(input_ids=prefix, use_cache=True))
            self.cache.batch_repeat_interleave(batch_size)

    def rows(self, suffixes: list[list[int]]) -> list[list[int]]:
        return suffixes + [suffixes[-1]] * (self.batch_size - len(suffixes)) if self.cache is not None else suffixes

    def forward(self, model, cache, **inputs):
        """The model's output continuing `cache` (the prefix's when None: it is cut back after the batch)."""
        return model(**inputs, **{self.keyword: cache if cache is not None else self.cache}, use_cache=True)

    def reset(self):
        extra = self.cache.get_seq_length() - self.length if self.cache is not None else 0
        if extra > 0:
            self.cache.crop(-extra)  # negative: remove that many (what every transformers version reads alike)


class _LastPass:
    """The latest `_continue_prompts` result, reused when the same model object continues the same
    prompts for as many new tokens or fewer: a generation run's first step holds the next-token logits
    a label-word (loglik) run of the same prompts needs, so ICL grids run generation first and score
    the label words from its pass (the same numbers, one forward pass instead of two)."""

    model: weakref.ref | None = None
    key: tuple | None = None
    value: tuple[torch.Tensor, list[list[int]]] | None = None
    new_tokens: int = -1
    hits: int = 0  # how many calls were answered from the kept pass (a run record says whether it was one)

    @classmethod
    def get(cls, model, key: tuple, new_tokens: int):
        same_model = cls.model is not None and cls.model() is model
        if same_model and cls.key == key and new_tokens <= cls.new_tokens:
            cls.hits += 1
            logits, continued = cls.value
            return logits, [tokens[:new_tokens] for tokens in continued]
        return None

    @classmethod
    def keep(cls, model, key: tuple, new_tokens: int, value) -> None:
        cls.model, cls.key, cls.new_tokens, cls.value = weakref.ref(model), key, new_tokens, value

    @classmethod
    def clear(cls) -> None:
        cls.model, cls.key, cls.new_tokens, cls.value = None, None, -1, None


def _continue_prompts(
    model, prompt_ids: list[list[int]], pad_id: int, batch_size: int, new_tokens: int
) -> tuple[torch.Tensor, list[list[int]]]:
    """Each prompt's next-token logits (prompts x vocabulary) and its greedy continuation of `new_tokens` tokens.

    The prompts' shared prefix is computed once (`_SharedPrefix`); each batch's own tokens are left
    padded after it, with explicit positions so padding changes nothing. The latest result is kept
    (`_LastPass`) for a call on the same prompts that needs no more new tokens.
    """
    key = (model.training, pad_id, batch_size, tuple(map(tuple, prompt_ids)))
    if (kept := _LastPass.get(model, key, new_tokens)) is not None:
        return kept
    result = _run_prompts(model, prompt_ids, pad_id, batch_size, new_tokens)
    _LastPass.keep(model, key, new_tokens, result)
    return result


def _run_prompts(
    model, prompt_ids: list[list[int]], pad_id: int, batch_size: int, new_tokens: int
) -> tuple[torch.Tensor, list[list[int]]]:
    device = next(model.parameters()).device
    prefix_length = common_prefix_length(prompt_ids)
    prefix = _SharedPrefix(model, prompt_ids[0][:prefix_length], batch_size)
    logits_rows, continued = [], []
    for start in range(0, len(prompt_ids), batch_size):
        suffixes = [ids[prefix_length:] for ids in prompt_ids[start : start + batch_size]]
        input_ids, mask = _pad(prefix.rows(suffixes), pad_id, left=True)
        mask = torch.cat([torch.ones(len(input_ids), prefix_length, dtype=torch.long), mask], dim=1).to(device)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)[:, prefix_length:]
        output = prefix.forward(
            model, None, input_ids=input_ids.to(device), attention_mask=mask, position_ids=positions, logits_to_keep=1
        )
        logits = output.logits[:, -1].float()
        logits_rows.append(logits[: len(suffixes)].cpu())
        tokens = [logits.argmax(dim=-1, keepdim=True)]
        for _ in range(new_tokens - 1):
            mask = torch.cat([mask, torch.ones(len(mask), 1, dtype=torch.long, device=device)], dim=1)
            positions = positions[:, -1:] + 1
            output = prefix.forward(
                model,
                _cache_of(output),
                input_ids=tokens[-1],
                attention_mask=mask,
                position_ids=positions,
                logits_to_keep=1,
            )
            tokens.append(output.logits[:, -1].argmax(dim=-1, keepdim=True))
        prefix.reset()
        continued += torch.cat(tokens, dim=1)[: len(suffixes), :new_tokens].tolist()
    return torch.cat(logits_rows), continued


@torch.inference_mode()
def label_log_likelihoods(
    model, tokenizer, prompts: list[str], label_texts: list[str], batch_size: int = 8
) -> np.ndarray:
    """log P(label text | prompt), summed over the label's tokens: an array (prompts x labels).

    When every label is one token (the usual case) one forward pass per prompt suffices: the
    next-token distribution at the end of the prompt, the prompts' shared prefix computed once.
    Otherwise each (prompt, label) is scored whole.
    """
    label_ids = _encode(tokenizer, label_texts)
    if any(len(ids) == 0 for ids in label_ids):
        raise ValueError(f"A label text encodes to no tokens: {label_texts}.")
    prompt_ids = _encode(tokenizer, prompts)
    device = next(model.parameters()).device
    if all(len(ids) == 1 for ids in label_ids):
        logits, _ = _continue_prompts(model, prompt_ids, tokenizer.pad_token_id, batch_size, new_tokens=0)
        return torch.log_softmax(logits, dim=-1)[:, [ids[0] for ids in label_ids]].numpy().astype(np.float64)
    scores = np.empty((len(prompts), len(label_texts)))
    for row, ids in enumerate(prompt_ids):
        sequences = [ids + label for label in label_ids]
        input_ids, mask = _pad(sequences, tokenizer.pad_token_id, left=False)
        log_probs = torch.log_softmax(
            model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float(), dim=-1
        ).cpu()
        for column, label in enumerate(label_ids):
            positions = torch.arange(len(ids) - 1, len(ids) - 1 + len(label))  # logits at t predict token t+1
            scores[row, column] = float(log_probs[column, positions, torch.tensor(label)].sum())
    return scores


def _pad(sequences: list[list[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for i, sequence in enumerate(sequences):
        span = slice(length - len(sequence), length) if left else slice(0, len(sequence))
        ids[i, span] = torch.tensor(sequence, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def _until_end(tokens: list[int], end_ids: set[int]) -> list[int]:
    return next((tokens[:i] for i, token in enumerate(tokens) if token in end_ids), tokens)


@torch.inference_mode()
def generate_answers(model, tokenizer, prompts: list[str], max_new_tokens: int = 5, batch_size: int = 8) -> list[str]:
    """Greedy answers (the new text only, up to an end-of-sequence token), the shared prefix computed once."""
    _, continued = _continue_prompts(
        model, _encode(tokenizer, prompts), tokenizer.pad_token_id, batch_size, max_new_tokens
    )
    end = model.generation_config.eos_token_id if model.generation_config is not None else None
    end_ids = (set(end if isinstance(end, list) else [end]) | {tokenizer.eos_token_id}) - {None}
    return tokenizer.batch_decode([_until_end(tokens, end_ids) for tokens in continued], skip_special_tokens=True)


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def parse_answer(text: str, label_words: tuple[str, ...] | list[str]) -> int | None:
    """The label whose word comes first in the answer (whole words, any case); None if none does.

    At the same position the longer word wins ("not entailment" over "entailment").
    """
    answer = _words(text)
    hits = []
    for label, word in enumerate(label_words):
        match = re.search(rf"\b{re.escape(_words(word))}\b", answer)
        if match and _words(word):
            hits.append((match.start(), -len(match.group()), label))
    return min(hits)[2] if hits else None


def predictions_with_unparseable(parsed: list[int | None], labels, num_labels: int) -> np.ndarray:
    """Class ids where an unparseable answer (None) becomes a label other than the gold one: it counts as wrong."""
    labels = np.asarray(labels).reshape(-1)
    return np.array(
        [p if p is not None else (int(gold) + 1) % num_labels for p, gold in zip(parsed, labels)], dtype=np.int64
    )


# ---------------------------------------------------------------------------------------------
# A run
# ---------------------------------------------------------------------------------------------


def score_split(
    config: IclConfig, model, tokenizer, task: TaskSpec, demonstrations: list[dict], dataset, batch_size: int = 8
) -> dict:
    """Metrics on one labelled split (plus `unparseable_share` for generation) and the raw answers' summary."""
    from helpers.metrics import compute_metrics

    prompts = [build_prompt(task, tokenizer, demonstrations, row, config.chat_template) for row in dataset]
    labels = np.asarray(dataset["label"])
    if config.scoring == "loglik":
        scores = label_log_likelihoods(
            model, tokenizer, prompts, continuations(task, tokenizer, config.chat_template), batch_size
        )
        predictions = scores.argmax(axis=1)
        metrics = compute_metrics(task, predictions, labels)
        extra = {}
    else:
        answers = generate_answers(model, tokenizer, prompts, config.max_new_tokens, batch_size)
        parsed = [parse_answer(answer, verbalizer_for(task).label_words) for answer in answers]
        predictions = predictions_with_unparseable(parsed, labels, task.num_labels)
        metrics = compute_metrics(task, predictions, labels)
        unparseable = [answer for answer, p in zip(answers, parsed) if p is None]
        metrics["unparseable_share"] = len(unparseable) / len(answers)
        extra = {"unparseable_examples": unparseable[:5]}
    counts = np.bincount(predictions, minlength=task.num_labels)
    prompt_tokens = [len(ids) for ids in _encode(tokenizer, prompts)]
    return {
        "metrics": metrics,
        "predicted": {name: int(c) for name, c in zip(task.label_names, counts)},
        "prompt_tokens_mean": float(np.mean(prompt_tokens)),
        "examples": len(prompts),
        **extra,
    }


def run_icl(
    config: IclConfig,
    *,
    model=None,
    tokenizer=None,
    glue_dir=None,
    results_dir=RESULTS_DIR,
    force: bool = False,
    batch_size: int = 8,
    quiet: bool = False,
) -> dict:
    """Prompt, score every test split, write and return the run record (an existing one is returned)."""
    from helpers.records import find_record, write_record

    if not force and (existing := find_record(results_dir, config.run_id)) is not None:
        if not quiet:
            print(f"[{config.run_id}] record found in {results_dir}: not running again (--force to redo).")
        return existing
    wall_start = time.perf_counter()
    task = get_task(config.task)
    verbalizer_for(task)  # a regression task is an error before any data or model is read
    splits = _load_icl_splits(config, task, glue_dir)
    if model is None or tokenizer is None:
        from helpers.llm import load_causal_lm

        model, tokenizer = load_causal_lm(config.model)
    demonstrations = draw_demonstrations(splits["train"], config.shots, config.seed)

    start, hits = time.perf_counter(), _LastPass.hits
    results = {
        name: score_split(config, model, tokenizer, task, demonstrations, splits[name], batch_size)
        for name in task.test_splits
    }
    eval_seconds = time.perf_counter() - start
    record = _icl_record(
        config,
        task,
        model,
        tokenizer,
        splits,
        demonstrations,
        results,
        batch_size=batch_size,
        glue_dir=glue_dir,
        eval_seconds=eval_seconds,
        wall_start=wall_start,
    )
    # Its time then excludes the forward pass it reused (the generation run's of the same prompts).
    record["icl"]["reused_forward_pass"] = _LastPass.hits > hits
    write_record(record, results_dir)
    if not quiet:
        _print_icl_summary(config, task, record, results, eval_seconds)
    return record


def _load_icl_splits(config: IclConfig, task: TaskSpec, glue_dir) -> dict:
    """The task's splits with the run's validation slice, each test split subsampled if the config says so."""
    from helpers.data import load_glue, seeded_subset

    splits = load_glue(
        task, glue_dir=glue_dir, split_seed=config.split_seed, validation_fraction=config.validation_fraction
    )
    if config.max_eval_samples is not None:
        for name in task.test_splits:
            splits[name] = seeded_subset(splits[name], task, config.max_eval_samples, config.split_seed)[0]
    return splits


def _icl_record(
    config: IclConfig,
    task: TaskSpec,
    model,
    tokenizer,
    splits: dict,
    demonstrations: list[dict],
    results: dict,
    *,
    batch_size: int,
    glue_dir,
    eval_seconds: float,
    wall_start: float,
) -> dict:
    """An ICL run's record, in the shape `helpers.records` defines, with nothing trained."""
    from helpers.device import library_versions
    from helpers.memory import process_peak_rss_bytes
    from helpers.metrics import majority_class_metrics
    from helpers.models import describe_architecture

    examples = sum(result["examples"] for result in results.values())
    test_metrics = {name: result["metrics"] for name, result in results.items()}
    total = sum(p.numel() for p in model.parameters())
    return {
        "run_id": config.run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": _icl_record_config(config, model, batch_size),
        "data": _icl_record_data(config, task, splits, glue_dir),
        "model_info": describe_architecture(model),
        "versions": library_versions(),
        "params": {"trainable": 0, "total": total, "percent": 0.0},
        "trainable_names": [],
        "history": [],
        "evals": [],
        "best": {},
        "test": {"split": task.main_test_split, "metrics": test_metrics[task.main_test_split], "splits": test_metrics},
        "majority_class": {
            name: majority_class_metrics(task, splits["train"]["label"], splits[name]["label"])
            for name in task.test_splits
        },
        "icl": _icl_record_prompts(config, task, tokenizer, demonstrations, splits, results),
        "timing": {
            "train_seconds": 0.0,
            "train_samples_per_second": None,
            "train_tokens_per_second": None,
            "eval_seconds": round(eval_seconds, 3),
            "eval_examples_per_second": round(examples / eval_seconds, 3),
            "wall_seconds": round(time.perf_counter() - wall_start, 3),
        },
        "memory": {"peak_bytes": process_peak_rss_bytes(), "kind": "process_peak_rss"},
    }


def _icl_record_config(config: IclConfig, model, batch_size: int) -> dict:
    """The record's config: the ICL settings plus the training fields the analysis reads, at their
    "nothing trained" values."""
    return {
        **asdict(config),
        "method": {"method": "icl", "shots": config.shots, "scoring": config.scoring, "pooling": "model"},
        "lr": None,
        "batch_size": batch_size,
        "epochs": 0,
        "warmup_ratio": 0.0,
        "weight_decay": 0.0,
        "grad_accum": 1,
        "max_length": None,
        "max_train_samples": None,
        "max_validation_samples": None,
        "recipe": "icl",
        "select_on": "none",
        "precision_used": str(next(model.parameters()).dtype).replace("torch.", ""),
    }


def _icl_record_data(config: IclConfig, task: TaskSpec, splits: dict, glue_dir) -> dict:
    """The record's data: where the splits came from and their sizes."""
    from helpers.data import source_name

    return {
        "task": task.name,
        "source": source_name(glue_dir, task),
        "select_on": "none",
        "split_seed": config.split_seed,
        "validation_fraction": config.validation_fraction,
        "max_eval_samples": config.max_eval_samples,
        "sizes": {name: len(ds) for name, ds in splits.items()},
    }


def _icl_record_prompts(
    config: IclConfig, task: TaskSpec, tokenizer, demonstrations: list[dict], splits: dict, results: dict
) -> dict:
    """The record's `icl` part: how the task was asked, the demonstrations, one prompt, each split's answers."""
    verbalizer = verbalizer_for(task)
    return {
        "label_words": list(verbalizer.label_words),
        "instruction": verbalizer.instruction,
        "chat_template_used": uses_chat(tokenizer, config.chat_template),
        "demonstration_ids": [int(demo["idx"]) for demo in demonstrations],
        "demonstration_labels": [int(demo["label"]) for demo in demonstrations],
        "prompt_example": build_prompt(
            task, tokenizer, demonstrations, splits[task.main_test_split][0], config.chat_template
        ),
        "splits": {name: {k: v for k, v in result.items() if k != "metrics"} for name, result in results.items()},
    }


def _print_icl_summary(config: IclConfig, task: TaskSpec, record: dict, results: dict, eval_seconds: float) -> None:
    """One line: the run's test metrics (NaN ones left out) and its scoring speed."""
    examples = sum(result["examples"] for result in results.values())
    text = ", ".join(
        f"{k}={v:.4f}" for k, v in record["test"]["metrics"].items() if not (isinstance(v, float) and math.isnan(v))
    )
    speed = (
        "the generation run's forward pass reused"
        if record["icl"].get("reused_forward_pass")
        else f"{examples / eval_seconds:.1f} examples/s"
    )
    print(f"[{config.run_id}] {task.display_name} {config.shots}-shot {config.scoring}: {text} ({speed})")


def icl_grid(
    task: str, model: str, shots: list[int], scorings: list[str], seeds: list[int], **fixed
) -> list[IclConfig]:
    """Every (shots, scoring, seed) config, zero-shot once (its seed does not matter), de-duplicated."""
    configs: dict[str, IclConfig] = {}
    # Generation before label-word scoring of the same prompts: loglik reuses its forward pass (_LastPass).
    scorings = sorted(scorings, key=lambda scoring: scoring != "generate")
    for k in shots:
        for seed in seeds:
            for scoring in scorings:
                config = IclConfig(task=task, model=model, shots=k, scoring=scoring, seed=seed, **fixed)
                configs.setdefault(config.run_id, config)
    return list(configs.values())


def run_icl_grid(
    configs: list[IclConfig], *, glue_dir=None, results_dir=RESULTS_DIR, force: bool = False, **options
) -> list[dict]:
    """run_icl for every config, loading each model once and only if one of its runs has no record yet
    (options: run_icl's batch_size and quiet); returns the records in order."""
    from helpers.llm import load_causal_lm
    from helpers.records import find_record

    loaded: dict[str, tuple] = {}
    records = []
    try:
        for config in configs:
            if (force or find_record(results_dir, config.run_id) is None) and config.model not in loaded:
                loaded[config.model] = load_causal_lm(config.model)
            model, tokenizer = loaded.get(config.model, (None, None))
            records.append(
                run_icl(
                    config,
                    model=model,
                    tokenizer=tokenizer,
                    glue_dir=glue_dir,
                    results_dir=results_dir,
                    force=force,
                    **options,
                )
            )
    finally:
        _LastPass.clear()  # its logits take prompts x vocabulary floats
    return records
