"""Benchmark of in-context learning's shared-prefix scoring: how much faster is scoring k-shot prompts
when their common instruction and demonstrations run through the model once per split?

`helpers.icl` scores each batch after the key/value cache of the prompts' shared prefix. This script
times it side by side, in one process on the same prompts, against scoring every prompt whole (one
left-padded forward pass per batch for the label words; `model.generate` for the answers), checks
the two agree (largest log-likelihood difference, same predictions, same answers), and writes
results/bench/icl_prefix_cache.md. Run it on a quiet machine: the times are the measurement.

    GLUE_DIR=../shared/glue .venv/bin/python benchmarks/icl_prefix_cache.py --task rte --shots 0,4
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from helpers.data import load_glue
from helpers.device import device_name
from helpers.icl import (
    _encode,
    _pad,
    build_prompt,
    common_prefix_length,
    continuations,
    draw_demonstrations,
    generate_answers,
    label_log_likelihoods,
)
from helpers.llm import load_causal_lm
from helpers.tasks import get_task

OUT = Path(__file__).resolve().parent.parent / "results" / "bench" / "icl_prefix_cache.md"


@torch.inference_mode()
def whole_prompt_log_likelihoods(model, tokenizer, prompts, label_texts, batch_size):
    """The reference: each prompt run whole, the label words' log-probabilities at its last position."""
    label_ids = [ids[0] for ids in _encode(tokenizer, label_texts)]
    prompt_ids = _encode(tokenizer, prompts)
    rows = []
    for start in range(0, len(prompts), batch_size):
        input_ids, mask = _pad(prompt_ids[start : start + batch_size], tokenizer.pad_token_id, left=True)
        logits = model(input_ids=input_ids, attention_mask=mask, logits_to_keep=1).logits[:, -1].float()
        rows.append(torch.log_softmax(logits, dim=-1)[:, label_ids])
    return torch.cat(rows).numpy()


@torch.inference_mode()
def whole_prompt_answers(model, tokenizer, prompts, new_tokens, batch_size):
    """The reference: `model.generate` on each batch of whole, left-padded prompts (greedy)."""
    prompt_ids = _encode(tokenizer, prompts)
    answers = []
    for start in range(0, len(prompts), batch_size):
        input_ids, mask = _pad(prompt_ids[start : start + batch_size], tokenizer.pad_token_id, left=True)
        output = model.generate(
            input_ids=input_ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
        answers += tokenizer.batch_decode(output[:, input_ids.shape[1] :], skip_special_tokens=True)
    return answers


def timed(function, *args):
    """The function's result and its wall time in seconds."""
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def compare(model, tokenizer, task, shots, examples, batch_size, new_tokens) -> dict:
    """One row of the table: both ways of scoring the same prompts, timed and checked against each other."""
    splits = load_glue(task)
    demonstrations = draw_demonstrations(splits["train"], shots, seed=0)
    test = splits[task.main_test_split]
    prompts = [build_prompt(task, tokenizer, demonstrations, test[i]) for i in range(examples)]
    ids = _encode(tokenizer, prompts)
    labels = continuations(task, tokenizer)
    whole, whole_s = timed(whole_prompt_log_likelihoods, model, tokenizer, prompts, labels, batch_size)
    cached, cached_s = timed(label_log_likelihoods, model, tokenizer, prompts, labels, batch_size)
    answers_whole, generate_whole_s = timed(whole_prompt_answers, model, tokenizer, prompts, new_tokens, batch_size)
    answers_cached, generate_cached_s = timed(generate_answers, model, tokenizer, prompts, new_tokens, batch_size)
    return {
        "shots": shots,
        "prompt_tokens": float(np.mean([len(i) for i in ids])),
        "shared_tokens": common_prefix_length(ids),
        "loglik": (whole_s, cached_s),
        "generate": (generate_whole_s, generate_cached_s),
        "max_difference": float(np.abs(whole - cached).max()),
        "same_predictions": int((whole.argmax(1) == cached.argmax(1)).sum()),
        "same_answers": sum(a == b for a, b in zip(answers_whole, answers_cached)),
    }


def table(rows: list[dict], task, examples: int, batch_size: int) -> str:
    """The markdown written to results/bench/icl_prefix_cache.md."""
    lines = [
        f"# ICL shared-prefix scoring: {task.display_name}, {examples} dev prompts, batch {batch_size}",
        "",
        f"Device: {device_name()}, {torch.get_num_threads()} torch threads, fp32; SmolLM2-135M-Instruct (packaged "
        "GGUF). Whole = every prompt run whole; cached = the shared prefix once (helpers.icl).",
        "",
        "| shots | prompt tokens (mean) | shared | loglik whole s | loglik cached s | speed-up | generate whole s "
        "| generate cached s | speed-up | max log-lik difference | same predictions | same answers |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        (lw, lc), (gw, gc) = row["loglik"], row["generate"]
        lines.append(
            f"| {row['shots']} | {row['prompt_tokens']:.0f} | {row['shared_tokens']} | {lw:.1f} | {lc:.1f} | "
            f"{lw / lc:.2f}× | {gw:.1f} | {gc:.1f} | {gw / gc:.2f}× | {row['max_difference']:.1e} | "
            f"{row['same_predictions']}/{examples} | {row['same_answers']}/{examples} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="rte")
    parser.add_argument("--shots", default="0,4", help="comma list of demonstration counts")
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=5)
    args = parser.parse_args()
    task = get_task(args.task)
    model, tokenizer = load_causal_lm("smollm2")
    rows = [
        compare(model, tokenizer, task, int(k), args.examples, args.batch_size, args.new_tokens)
        for k in args.shots.split(",")
    ]
    text = table(rows, task, args.examples, args.batch_size)
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
