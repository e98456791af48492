"""Every method on tiny BERT, RoBERTa and DistilBERT models built from configs (no downloads):
exactly which parameters train, how many, and what each method promises."""

import dataclasses
import re

import pytest
import torch
from fake_records import fake_record
from safetensors import safe_open
from transformers import AutoModelForSequenceClassification, BertConfig, DistilBertConfig, RobertaConfig

from helpers.methods import (
    FAMILIES,
    METHODS,
    REGISTRY,
    MethodConfig,
    MethodSpec,
    count_parameters,
    display_order,
    freeze,
    head_parameter_count,
    in_head,
    lora_closed_form,
    lora_rank_formula,
    prepare_model,
    register_method,
    resolve_target_modules,
    trainable_by_kind,
    trainable_parameter_names,
)
from helpers.models import arch_spec, describe_architecture
from helpers.training import save_trained_weights

D, FF, LAYERS, HEADS, VOCAB, LABELS = 32, 64, 2, 4, 120, 2
R, P, PTUNING_HIDDEN = 4, 5, 16

CONFIGS = {
    "bert": lambda: BertConfig(
        vocab_size=VOCAB,
        hidden_size=D,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FF,
        num_labels=LABELS,
    ),
    "roberta": lambda: RobertaConfig(
        vocab_size=VOCAB,
        hidden_size=D,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FF,
        num_labels=LABELS,
        pad_token_id=1,
    ),
    "distilbert": lambda: DistilBertConfig(
        vocab_size=VOCAB, dim=D, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FF, num_labels=LABELS
    ),
}
# Written out by hand per architecture, independently of helpers.models.ARCHITECTURES.
NAMES = {
    "bert": {
        "layers": "bert.encoder.layer",
        "q": "attention.self.query",
        "v": "attention.self.value",
        "k": "attention.self.key",
        "mlp_in": "intermediate.dense",
        "mlp_out": "output.dense",
        "head": ["classifier"],
    },
    "roberta": {
        "layers": "roberta.encoder.layer",
        "q": "attention.self.query",
        "v": "attention.self.value",
        "k": "attention.self.key",
        "mlp_in": "intermediate.dense",
        "mlp_out": "output.dense",
        "head": ["classifier.dense", "classifier.out_proj"],
    },
    "distilbert": {
        "layers": "distilbert.transformer.layer",
        "q": "attention.q_lin",
        "v": "attention.v_lin",
        "k": "attention.k_lin",
        "mlp_in": "ffn.lin1",
        "mlp_out": "ffn.lin2",
        "head": ["pre_classifier", "classifier"],
    },
}
HEAD_SIZE = {
    "bert": D * LABELS + LABELS,
    "roberta": D * D + D + D * LABELS + LABELS,
    "distilbert": D * D + D + D * LABELS + LABELS,
}


def tiny(arch):
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(CONFIGS[arch]()).eval()


def method_config(method, **overrides):
    values = {"method": method, "rank": R, "num_virtual_tokens": P, "encoder_hidden_size": PTUNING_HIDDEN}
    values.update(overrides)
    return MethodConfig(**values)


def head_names(arch, peft_prefix=""):
    names = set()
    for module in NAMES[arch]["head"]:
        top, _, rest = module.partition(".")
        copy = f"{peft_prefix}{top}.modules_to_save.default" if peft_prefix else top
        full = f"{copy}.{rest}" if rest else copy
        names |= {f"{full}.weight", f"{full}.bias"}
    return names


def expected_trainable(arch, method, base_names):
    n = NAMES[arch]
    layers = range(LAYERS)
    if method == "full":
        return set(base_names)
    if method == "head":
        return head_names(arch)
    if method == "bitfit":
        return {name for name in base_names if name.endswith(".bias")} | head_names(arch)
    if method == "bitfit (sparse)":
        return {f"{n['layers']}.{i}.{m}.bias" for i in layers for m in (n["q"], n["mlp_in"])} | head_names(arch)
    if method in ("lora", "dora"):
        parts = ["lora_A.default.weight", "lora_B.default.weight"] + (
            ["lora_magnitude_vector.default.weight"] if method == "dora" else []
        )
        adapters = {
            f"base_model.model.{n['layers']}.{i}.{m}.{part}" for i in layers for m in (n["q"], n["v"]) for part in parts
        }
        return adapters | head_names(arch, "base_model.model.")
    if method == "ia3":
        scales = {
            f"base_model.model.{n['layers']}.{i}.{m}.ia3_l.default"
            for i in layers
            for m in (n["k"], n["v"], n["mlp_out"])
        }
        return scales | head_names(arch, "base_model.model.")
    if method == "prefix":
        return {"prefix_encoder.prefix"} | head_names(arch)
    if method == "prompt":
        return {"prompt_encoder.default.embedding.weight"} | head_names(arch, "base_model.")
    if method == "ptuning":
        mlp = {f"prompt_encoder.default.mlp_head.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")}
        return {"prompt_encoder.default.embedding.weight"} | mlp | head_names(arch, "base_model.")
    raise AssertionError(method)


def expected_count(arch, method, bias_total):
    head = HEAD_SIZE[arch]
    if method == "head":
        return head
    if method == "bitfit":
        return bias_total + head - (LABELS + (D if arch != "bert" else 0))  # head biases counted once
    if method == "bitfit (sparse)":
        return LAYERS * (D + FF) + head
    if method == "lora":
        return LAYERS * 2 * R * (D + D) + head
    if method == "dora":
        return LAYERS * 2 * (R * (D + D) + D) + head
    if method == "ia3":
        return (
            LAYERS * (D + D + FF) + head
        )  # keys, values (outputs of size D); MLP output layer scales its FF-wide input
    if method == "prefix":
        return LAYERS * 2 * P * D + head
    if method == "prompt":
        return P * D + head
    if method == "ptuning":
        h = PTUNING_HIDDEN
        return P * D + (D * h + h) + (h * h + h) + (h * D + D) + head
    raise AssertionError(method)


# Every registry row and variant by its display name, except QLoRA (CUDA only: see test_qlora_refuses_without_cuda).
CASES = ["head", "bitfit", "bitfit (sparse)", "lora", "dora", "ia3", "prefix", "prompt", "ptuning", "full"]


def case_config(case):
    """The config of a display name: "bitfit (sparse)" is bitfit with its variant knob set to "sparse"."""
    method, _, variant = case.partition(" (")
    return method_config(method, **({REGISTRY[method].variant_knob: variant.rstrip(")")} if variant else {}))


def test_every_registry_row_has_a_case():
    """A method added to the registry must get its expected parameters written out here."""
    runs_anywhere = [name for name in display_order() if not REGISTRY[name.partition(" (")[0]].needs]
    assert runs_anywhere == CASES


@pytest.mark.parametrize("arch", CONFIGS)
@pytest.mark.parametrize("case", CASES)
def test_exactly_the_right_parameters_train(arch, case):
    model = tiny(arch)
    base_names = [name for name, _ in model.named_parameters()]
    bias_total = sum(p.numel() for name, p in model.named_parameters() if name.endswith(".bias"))
    total_before = sum(p.numel() for p in model.parameters())
    config = case_config(case)
    prepared = prepare_model(model, config)
    trainable = set(trainable_parameter_names(prepared))
    assert trainable == expected_trainable(arch, case, base_names)
    # The row's FLOPs promise: "none" trains nothing below the head, "weights" trains every weight.
    backward = REGISTRY[config.method].backward
    assert backward != "none" or trainable == head_names(arch)
    assert backward != "weights" or trainable == set(base_names)
    counts = count_parameters(prepared)
    if case == "full":
        assert counts.trainable == counts.total == total_before
    else:
        assert counts.trainable == expected_count(arch, case, bias_total)
        assert counts.total == total_before + (
            counts.trainable - HEAD_SIZE[arch] if case in ("lora", "dora", "ia3", "prefix", "prompt", "ptuning") else 0
        )
    assert counts.percent == pytest.approx(100 * counts.trainable / counts.total)


@pytest.mark.parametrize("arch", CONFIGS)
@pytest.mark.parametrize("method, targets", [("lora", None), ("dora", None), ("lora", "all-linear")])
def test_lora_closed_form_matches_the_count(arch, method, targets):
    config = method_config(method, target_modules=targets)
    base = tiny(arch)
    architecture, spec, resolved = describe_architecture(base), arch_spec(base), resolve_target_modules(base, config)
    model = prepare_model(base, config)
    closed = lora_closed_form(architecture, spec, resolved, config, head_parameter_count(model))
    assert closed == count_parameters(model).trainable


@pytest.mark.parametrize("arch", CONFIGS)
@pytest.mark.parametrize("method", ["lora", "dora"])
def test_lora_rank_formula_gives_the_count_at_every_rank(arch, method):
    per_rank, constant = lora_rank_formula(tiny(arch), method_config(method))
    for rank in (1, 3, 8):
        model = prepare_model(tiny(arch), method_config(method, rank=rank))
        assert per_rank * rank + constant == count_parameters(model).trainable


@pytest.mark.parametrize("arch", CONFIGS)
def test_trainable_by_kind_folds_the_layers(arch):
    model = prepare_model(tiny(arch), method_config("bitfit"))
    table = trainable_by_kind(model)
    assert table["parameters"].sum() == count_parameters(model).trainable
    assert table["tensors"].sum() == len(trainable_parameter_names(model))
    layered = table[table.index.str.startswith("layer.N.")]
    assert not layered.empty and (layered["tensors"] == LAYERS).all(), "one row per kind of bias, every layer folded"


@pytest.mark.parametrize("arch", CONFIGS)
def test_all_linear_targets_every_layer_linear(arch):
    model = prepare_model(tiny(arch), method_config("lora", target_modules="all-linear"))
    adapted = {
        re.sub(r".*\.layer\.\d+\.", "", name).replace(".lora_A.default.weight", "")
        for name in trainable_parameter_names(model)
        if "lora_A" in name
    }
    n = NAMES[arch]
    expected = {n["q"], n["k"], n["v"], n["mlp_in"], n["mlp_out"]} | {
        "attention.output.dense" if arch != "distilbert" else "attention.out_lin"
    }
    assert adapted == expected
    # Four d x d projections and two MLP layers per layer.
    assert count_parameters(model).trainable == LAYERS * R * (4 * 2 * D + 2 * (D + FF)) + HEAD_SIZE[arch]


@pytest.mark.parametrize("arch", CONFIGS)
@pytest.mark.parametrize("method", ["lora", "dora", "ia3"])
def test_outputs_unchanged_at_initialisation(arch, method):
    model = tiny(arch)
    inputs = {"input_ids": torch.tensor([[5, 17, 33, 8, 90, 4]]), "attention_mask": torch.ones(1, 6, dtype=torch.long)}
    before = model(**inputs).logits
    after = prepare_model(model, method_config(method)).eval()(**inputs).logits
    torch.testing.assert_close(after, before)


@pytest.mark.parametrize("arch", CONFIGS)
@pytest.mark.parametrize("method", ["head", "bitfit", "lora", "dora", "ia3", "prefix", "prompt", "ptuning"])
def test_one_optimizer_step_changes_trainable_parameters_only(arch, method):
    torch.manual_seed(1)
    model = prepare_model(tiny(arch), method_config(method)).train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    inputs = {
        "input_ids": torch.randint(5, VOCAB, (4, 7)),
        "attention_mask": torch.ones(4, 7, dtype=torch.long),
        "labels": torch.tensor([0, 1, 0, 1]),
    }
    model(**inputs).loss.backward()
    optimizer.step()
    for name, parameter in model.named_parameters():
        changed = not torch.equal(parameter.detach(), before[name])
        if parameter.requires_grad:
            # LoRA's B starts at zero, so A gets no gradient on the very first step.
            assert changed or "lora_A" in name, f"{name} should have changed"
        else:
            assert not changed, f"frozen {name} changed"


@pytest.mark.parametrize("arch", CONFIGS)
def test_prefix_keeps_padding_masked(arch):
    model = prepare_model(tiny(arch), method_config("prefix"))
    with torch.no_grad():
        model.prefix_encoder.prefix.normal_()  # a prefix that clearly matters
    pad = 1 if arch == "roberta" else 0
    alone = model(input_ids=torch.tensor([[7, 8, 9, 10]]), attention_mask=torch.ones(1, 4, dtype=torch.long)).logits
    padded_ids = torch.tensor([[7, 8, 9, 10, pad, pad, pad], [7, 8, pad, pad, pad, pad, pad]])
    padded_mask = (torch.arange(7) < torch.tensor([[4], [2]])).long()
    padded = model(input_ids=padded_ids, attention_mask=padded_mask).logits
    torch.testing.assert_close(padded[:1], alone, atol=1e-5, rtol=1e-4)
    model.prefix_encoder.prefix.data.mul_(0).add_(5.0)
    assert not torch.allclose(model(input_ids=torch.tensor([[7, 8, 9, 10]])).logits, alone), (
        "the prefix must change the output"
    )


def test_prefix_reparameterised_through_an_mlp_trains():
    torch.manual_seed(0)
    model = prepare_model(tiny("bert"), method_config("prefix", prefix_projection=8)).eval()  # eval: no dropout noise
    names = set(trainable_parameter_names(model))
    assert {"prefix_encoder.embedding.weight", "prefix_encoder.mlp.0.weight", "prefix_encoder.mlp.2.weight"} <= names
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2)
    inputs = {"input_ids": torch.randint(5, VOCAB, (8, 6)), "labels": torch.tensor([0, 1] * 4)}
    losses = []
    for step in range(40):
        loss = model(**inputs).loss
        loss.backward()
        if step == 0:
            assert model.prefix_encoder.mlp[0].weight.grad.abs().sum() > 0, "gradient reaches the prefix MLP"
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("method", ["lora", "ia3", "prompt"])
def test_head_is_saved_with_the_adapter(method, tmp_path):
    model = prepare_model(tiny("distilbert"), method_config(method))
    folder = save_trained_weights(model, tmp_path / "adapter")
    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as saved:
        keys = set(saved.keys())
    head = {key.split(".model.")[-1].removeprefix("base_model.") for key in keys if "classifier." in key}
    assert head == {"pre_classifier.weight", "pre_classifier.bias", "classifier.weight", "classifier.bias"}


def test_bitfit_saves_only_its_trainable_tensors(tmp_path):
    model = prepare_model(tiny("bert"), method_config("bitfit"))
    folder = save_trained_weights(model, tmp_path / "bitfit")
    with safe_open(str(folder / "trainable.safetensors"), "pt") as saved:
        assert set(saved.keys()) == set(trainable_parameter_names(model))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "adapterdrop"}, "Unknown method 'adapterdrop'. Valid methods: " + ", ".join(METHODS)),
        ({"method": "lora", "rank": 0}, "rank must be a positive integer"),
        ({"method": "dora", "rank": -2}, "rank must be a positive integer"),
        ({"method": "lora", "alpha": 0}, "alpha must be > 0"),
        ({"method": "lora", "lora_dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"method": "lora", "lora_dropout": -0.1}, r"dropout must be in \[0, 1\)"),
        ({"method": "prompt", "num_virtual_tokens": 0}, "num_virtual_tokens must be a positive integer"),
        ({"method": "prefix", "num_virtual_tokens": -1}, "num_virtual_tokens must be a positive integer"),
        ({"method": "bitfit", "bitfit_variant": "some"}, "bitfit_variant must be one of"),
    ],
)
def test_bad_method_settings_fail_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MethodConfig(**kwargs)


def test_unknown_target_module_lists_the_models_linear_layers():
    with pytest.raises(
        ValueError,
        match=r"'query' is not a linear layer of this distilbert model\. Its linear layers are: "
        r"attention\.q_lin, attention\.k_lin, attention\.v_lin, attention\.out_lin, ffn\.lin1, ffn\.lin2",
    ):
        prepare_model(tiny("distilbert"), method_config("lora", target_modules="query,value"))


def test_default_targets_resolve_per_architecture():
    for arch in CONFIGS:
        model = prepare_model(tiny(arch), method_config("lora"))
        adapted = {
            name.split(".layer.")[1].split(".", 1)[1].rsplit(".lora_A", 1)[0]
            for name in trainable_parameter_names(model)
            if "lora_A" in name
        }
        assert adapted == {NAMES[arch]["q"], NAMES[arch]["v"]}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_qlora_refuses_without_cuda():
    from helpers.methods import check_runtime

    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        check_runtime(MethodConfig(method="qlora"))


class Params4bit(torch.nn.Parameter):
    """Stands in for bitsandbytes' 4-bit weight: only its class name and uint8 storage matter here."""


def test_4bit_weights_count_two_parameters_per_byte():
    model = torch.nn.Linear(8, 4)  # 32 weights + 4 biases
    model.weight = Params4bit(
        torch.zeros(16, 1, dtype=torch.uint8), requires_grad=False
    )  # 32 weights packed in 16 bytes
    counts = count_parameters(model)
    assert (counts.trainable, counts.total) == (4, 32 + 4)


# ---------------------------------------------------------------------------------------------
# The registry: every row is complete, and a new method is one row plus one build function
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registry_row_is_complete(name, monkeypatch):
    from helpers.sweep import ONLY_FOR
    from helpers.training import DEFAULT_LR

    spec = REGISTRY[name]
    knob_fields = {f.name for f in dataclasses.fields(MethodConfig)} - {"method", "pooling"}
    assert spec.name == name and spec.family in FAMILIES
    assert set(spec.knobs) <= knob_fields
    assert spec.default_lr > 0 and DEFAULT_LR[name] == spec.default_lr
    assert all(name in ONLY_FOR[knob] for knob in spec.knobs)
    assert "{" not in spec.what_trains() and spec.label().startswith(name)  # the templates name real knobs
    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(spec, check=None))  # QLoRA's CUDA check aside
    assert list(MethodConfig(method=name).to_dict()) == ["method", "pooling", *spec.knobs]  # what a run id holds


@pytest.fixture
def registry_as_it_was():
    """Whatever a test registers is gone afterwards."""
    saved = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(saved)


def build_toyhead(model, config, spec, seed):
    """A toy method: the head and every LayerNorm scale train."""
    return freeze(model, lambda name: in_head(spec)(name) or name.endswith("LayerNorm.weight"))


def test_a_new_method_is_one_registry_row_and_one_build_function(registry_as_it_was):
    from helpers import analysis, cli, experiments, report
    from helpers.sweep import ONLY_FOR, expand_grid
    from helpers.training import DEFAULT_LR, TrainConfig

    register_method(MethodSpec("toyhead", "selective", build_toyhead, "the head and LayerNorm scales", 1e-3))

    config = MethodConfig(method="toyhead")  # validates
    assert config.to_dict() == {"method": "toyhead", "pooling": "model"} and config.label() == "toyhead"
    model = prepare_model(tiny("bert"), config)
    layer_norms = {"bert.embeddings.LayerNorm.weight"} | {
        f"bert.encoder.layer.{i}.{part}.LayerNorm.weight"
        for i in range(LAYERS)
        for part in ("attention.output", "output")
    }
    assert set(trainable_parameter_names(model)) == head_names("bert") | layer_norms
    assert count_parameters(model).trainable == HEAD_SIZE["bert"] + (1 + 2 * LAYERS) * D
    # Everything derived from the registry sees it.
    assert "toyhead" in METHODS and DEFAULT_LR["toyhead"] == 1e-3 and TrainConfig(method=config).lr == 1e-3
    assert analysis.METHOD_ORDER[-1] == "toyhead" and "toyhead" not in ONLY_FOR["rank"]
    assert len(expand_grid({"method": ["toyhead", "lora"], "rank": [4, 8]})) == 3  # rank varies for LoRA only
    assert "toyhead" in cli.method_help() and "toyhead 0.001" in cli.lr_help()
    assert "toyhead" in {c.method.method for c in experiments.experiment_configs("methods", "smoke")}
    frame = analysis.runs_frame([fake_record("sst2", "toyhead", 0, 0.8), fake_record("sst2", "full", 0, 0.9)])
    assert list(frame["variant"].cat.categories) == ["full", "toyhead"]  # in display order
    assert report.what_trains(frame[frame["method"] == "toyhead"].iloc[0]) == "the head and LayerNorm scales"


def test_a_registry_row_is_checked_when_registered(registry_as_it_was):
    row = dict(name="toy", family="selective", build=build_toyhead, trains="x", default_lr=1e-3)
    with pytest.raises(ValueError, match="already registered"):
        register_method(MethodSpec(**{**row, "name": "lora"}))
    with pytest.raises(ValueError, match="family must be one of"):
        MethodSpec(**{**row, "family": "adapter"})
    with pytest.raises(ValueError, match=r"knobs must be MethodConfig fields, got \['depth'\]"):
        MethodSpec(**{**row, "knobs": ("depth",)})
    with pytest.raises(ValueError, match="default_lr must be > 0"):
        MethodSpec(**{**row, "default_lr": 0.0})


def test_a_quantised_method_is_read_against_the_method_built_the_same_way():
    from helpers.methods import quantized_pairs

    assert quantized_pairs() == [("qlora", "lora")]
