"""LoRA for the cross-encoder (reranker_kit/models/lora.py): the merged folder scores as the trained adapters do."""

import json

import numpy as np
import pytest
import torch

from reranker_kit.basics.model_files import BUNDLED_MODEL_ALIAS
from reranker_kit.models.loading import load_cross_encoder
from reranker_kit.models.lora import (
    apply_lora,
    head_module_names,
    merge_lora,
    parameter_counts,
    save_merged,
)
from reranker_kit.models.pair_encoding import encode_pairs, pad_batch, score_pairs
from reranker_kit.models.reranker import Reranker

PAIRS = [("CLB tuyển thành viên khi nào ạ?", "Câu lạc bộ tuyển thành viên vào tháng 9 hằng năm."),
         ("Em ko học CNTT thì có tham gia được CLB ko ạ ?", "Sinh viên mọi ngành đều có thể tham gia."),
         ("CLB có mấy ban?", "CLB có bốn ban: học thuật, truyền thông, sự kiện và hậu cần."),
         ("Lịch sinh hoạt thế nào?", "Các buổi sinh hoạt diễn ra vào tối thứ sáu."),
         ("học phí bao nhiêu", "CLB không thu phí thành viên.")]
MAX_LENGTH = 64


def _train_a_few_steps(peft_model, tokenizer, steps: int = 4) -> None:
    """AdamW on random labels, so the adapters and the head both move away from where they started."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (len(PAIRS),), generator=generator).float()
    batch = pad_batch(tokenizer, encode_pairs(tokenizer, PAIRS, MAX_LENGTH))
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    for _ in range(steps):
        logits = peft_model(**batch).logits.view(-1)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, labels).backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.eval()


@pytest.fixture(scope="module", params=["tiny-xlmr", BUNDLED_MODEL_ALIAS])
def merged_run(request, tiny_xlmr_model, tmp_path_factory):
    """(base scores, unmerged peft scores, merged folder, peft model) after a few LoRA steps."""
    name = str(tiny_xlmr_model) if request.param == "tiny-xlmr" else BUNDLED_MODEL_ALIAS
    torch.manual_seed(0)  # the bundled MiniLM's head is initialised afresh
    model, tokenizer, _ = load_cross_encoder(name)
    base_scores = score_pairs(model, tokenizer, PAIRS, MAX_LENGTH, batch_size=2)
    base_head = {key: value.clone() for key, value in model.state_dict().items() if key.startswith("classifier.")}
    peft_model = apply_lora(model, r=4, alpha=8, dropout=0.0, feed_forward=True)
    _train_a_few_steps(peft_model, tokenizer)
    peft_scores = score_pairs(peft_model, tokenizer, PAIRS, MAX_LENGTH, batch_size=2)
    lora_b = [p for n, p in peft_model.named_parameters() if "lora_B" in n]
    folder = save_merged(peft_model, tokenizer, tmp_path_factory.mktemp("merged") / "run")
    return dict(base_scores=base_scores, peft_scores=peft_scores, folder=folder, base_head=base_head,
                lora_b_moved=all(p.abs().max() > 0 for p in lora_b) and len(lora_b) > 0)


def test_the_adapters_and_the_head_both_trained(merged_run):
    assert merged_run["lora_b_moved"]  # lora_B starts at zero
    saved, _, _ = load_cross_encoder(str(merged_run["folder"]))
    state = saved.state_dict()
    assert any(not torch.allclose(state[key], value) for key, value in merged_run["base_head"].items())
    assert not np.allclose(merged_run["peft_scores"], merged_run["base_scores"], atol=1e-3)


def test_the_merged_folder_is_a_standard_sequence_classifier(merged_run):
    folder = merged_run["folder"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"][0].endswith("ForSequenceClassification") and len(config["id2label"]) == 1
    assert not (folder / "adapter_config.json").exists()
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        keys = list(weights.keys())
    assert not [key for key in keys if "lora_" in key or "modules_to_save" in key or "base_layer" in key]


def test_the_kit_flagembedding_and_sentence_transformers_score_the_merged_folder_as_the_peft_model(merged_run):
    from FlagEmbedding import FlagReranker
    from sentence_transformers import CrossEncoder

    folder = str(merged_run["folder"])
    kit = Reranker(model_name=folder, device="cpu", max_length=MAX_LENGTH).compute_score(PAIRS)
    flag = FlagReranker(folder, use_fp16=False, devices="cpu", max_length=MAX_LENGTH).compute_score(PAIRS)
    # CrossEncoder applies a sigmoid to a one-label model by default; Identity gives the raw logits.
    cross_encoder = CrossEncoder(folder, device="cpu", max_length=MAX_LENGTH)
    sentence_transformers = cross_encoder.predict(PAIRS, activation_fn=torch.nn.Identity())
    expected = merged_run["peft_scores"]
    for scores in (kit, flag, sentence_transformers):
        np.testing.assert_allclose(np.asarray(scores, dtype=np.float32), expected, rtol=0, atol=1e-5)
    assert not np.allclose(kit, merged_run["base_scores"], atol=1e-3)  # the trained head, not the base's


def test_the_head_is_found_by_name_for_both_architectures(tiny_xlmr_model):
    xlmr, _, _ = load_cross_encoder(str(tiny_xlmr_model))
    assert head_module_names(xlmr) == ["classifier"]  # XLM-R: classifier.dense + classifier.out_proj
    bert, _, _ = load_cross_encoder(BUNDLED_MODEL_ALIAS)
    assert head_module_names(bert) == ["classifier", "pooler"]


def test_only_adapters_and_head_train_and_the_counts_say_so(tiny_xlmr_model):
    model, _, _ = load_cross_encoder(str(tiny_xlmr_model))
    full = parameter_counts(model)
    head = sum(p.numel() for p in model.classifier.parameters())
    layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
    attention_only = parameter_counts(apply_lora(model, r=2, alpha=4))
    # Four adapted hidden x hidden layers per block, each adapter 2 * r * hidden; plus the head, whole.
    assert attention_only.trainable == layers * 4 * 2 * 2 * hidden + head
    assert full.trainable == full.total and attention_only.trainable < full.trainable / 5
    assert str(attention_only).startswith(f"{attention_only.trainable:,} of ")


def test_attention_only_targets_leave_the_feed_forward_and_head_layers_unadapted(tiny_xlmr_model):
    model, _, _ = load_cross_encoder(str(tiny_xlmr_model))
    peft_model = apply_lora(model, r=2, alpha=4)
    adapted = {name.rsplit(".lora_A", 1)[0] for name, _ in peft_model.named_parameters() if ".lora_A." in name}
    assert adapted and all(name.endswith(("query", "key", "value", "attention.output.dense")) for name in adapted)
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad and "lora_" not in name]
    assert trainable and all("classifier.modules_to_save" in name for name in trainable)


def test_bad_settings_are_refused(tiny_xlmr_model):
    model, _, _ = load_cross_encoder(str(tiny_xlmr_model))
    with pytest.raises(ValueError, match="rank r"):
        apply_lora(model, r=0)
    with pytest.raises(ValueError, match="dropout"):
        apply_lora(model, dropout=1.0)


def test_merge_gives_back_a_plain_transformers_model(tiny_xlmr_model):
    model, _, _ = load_cross_encoder(str(tiny_xlmr_model))
    merged = merge_lora(apply_lora(model, r=2, alpha=4))
    assert type(merged).__name__ == "XLMRobertaForSequenceClassification"
