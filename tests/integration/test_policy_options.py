"""Options for training the policy, on one in-process DeepSpeed rank: LoRA adapters (merged for the engines and
checkpoints), gradient checkpointing, bfloat16, and refusing a checkpoint's own code unless it is trusted."""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import pytest
import torch

from mstar_ray.config import LoRAConfig
from mstar_ray.config.io import load_config
from mstar_ray.core.records import TrainExample
from mstar_ray.data.llava import load_prompts
from mstar_ray.models.encoding import collate, encode_example
from mstar_ray.models.freeze import VISION_MODULES
from mstar_ray.models.loading import load_policy, load_processor
from mstar_ray.models.lora import VISION_EXCLUDE, apply_lora, check_lora_targets, policy_weights
from mstar_ray.prm.model import ProcessRewardModel
from mstar_ray.training.sft import DistributedSpec, OptimSpec, PolicyOptions, SFTTrainer


def _dist() -> DistributedSpec:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return DistributedSpec(0, 1, "127.0.0.1", sock.getsockname()[1], use_gpu=False)


@pytest.fixture(scope="module")
def examples(tiny_data) -> list[TrainExample]:
    prompts, _ = load_prompts(tiny_data["seed"])
    return [TrainExample(p, p.reference) for p in prompts[:8]]


def test_lora_trains_adapters_and_exports_merged_weights(tiny_model, examples, tmp_path) -> None:
    base = dict(load_policy(tiny_model).named_parameters())
    trainer = SFTTrainer(str(tiny_model), _dist(), PolicyOptions(lora=LoRAConfig(enabled=True, r=4, alpha=8)))
    trainer.start_stage(OptimSpec(lr=1e-2, micro_batch_size=4))
    stats = trainer.train(examples, epochs=2)
    assert stats.optimizer_steps == 4 and torch.isfinite(torch.tensor(stats.mean_loss))

    weights, changing = trainer._sync_weights()
    assert weights.keys() == base.keys()  # the engines' names: no adapter tensors, no peft prefixes
    assert changing and all(".language_model." in name for name in changing)
    assert not any(VISION_MODULES.intersection(name.split(".")) for name in changing)
    # Adapted weights moved; everything else is still the loaded checkpoint.
    assert all(not torch.equal(weights[name], base[name]) for name in changing)
    assert all(torch.equal(weights[name], base[name]) for name in base.keys() - changing)

    # The saved checkpoint is a plain model that computes what the adapted policy computes.
    trainer.save_pretrained(str(tmp_path / "merged"))
    merged = load_policy(tmp_path / "merged").eval()
    batch = collate(
        [encode_example(trainer.processor, ex) for ex in examples[:2]], trainer.processor.tokenizer.pad_token_id
    )
    peft_model = trainer._module().eval()
    with torch.no_grad():
        expected, got = peft_model(**batch).logits, merged(**batch).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_a_ranks_fresh_adapters_and_dropout_masks_follow_the_run_seed(tiny_model, examples) -> None:
    earlier_draws = iter(range(100, 200))

    def trained(seed: int, train_seed: int = 3) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], float]:
        torch.manual_seed(next(earlier_draws))  # the process's state before each step (another each time) is ignored
        lora = LoRAConfig(enabled=True, r=4, alpha=8, dropout=0.3)
        trainer = SFTTrainer(str(tiny_model), _dist(), PolicyOptions(lora=lora, seed=seed))
        fresh = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_A" in n}
        trainer.start_stage(OptimSpec(lr=1e-2, micro_batch_size=4))
        torch.manual_seed(next(earlier_draws))
        loss = trainer.train(examples[:4], epochs=2, seed=train_seed).mean_loss
        return fresh, {n: p.detach().clone() for n, p in trainer._module().named_parameters() if "lora_" in n}, loss

    (fresh, after, loss), (fresh2, after2, loss2) = trained(0), trained(0)
    assert fresh and all(torch.equal(fresh[n], fresh2[n]) for n in fresh)  # adapters drawn from run.seed
    assert loss == loss2 and all(torch.equal(after[n], after2[n]) for n in after)  # and the dropout masks
    other_masks = trained(0, train_seed=4)
    assert other_masks[2] != loss  # another training call's seed: other masks, another loss
    assert not any(torch.equal(fresh[n], trained(1)[0][n]) for n in fresh)  # another run seed: other adapters


def test_lora_targets_are_checked_before_any_actor_and_merges_keep_the_dtype(tiny_model) -> None:
    check_lora_targets(str(tiny_model), LoRAConfig(enabled=True))
    with pytest.raises(ValueError, match=r"match no linear layer .* its layers include"):
        check_lora_targets(str(tiny_model), LoRAConfig(enabled=True, target_modules=["query_key_value"]))
    with pytest.raises(ValueError, match="adapters on \\['lm_head'\\] are not supported"):
        check_lora_targets(str(tiny_model), LoRAConfig(enabled=True, target_modules=["q_proj", "lm_head"]))
    assert re.fullmatch(VISION_EXCLUDE, "vpm.encoder.layers.0.self_attn.q_proj")  # a top-level tower too
    assert re.fullmatch(VISION_EXCLUDE, "model.visual.blocks.0.attn.qkv")
    assert not re.fullmatch(VISION_EXCLUDE, "model.language_model.layers.0.self_attn.q_proj")
    # bf16 weights stay bf16 when merged with the adapters (which peft may keep in fp32)
    policy = apply_lora(load_policy(tiny_model, "bfloat16"), LoRAConfig(enabled=True, r=4))
    for name, param in policy.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param)
    merged = policy_weights(policy, policy.named_parameters())
    assert {t.dtype for t in merged.values()} == {torch.bfloat16}


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tiny_model, examples) -> None:
    processor = load_processor(tiny_model)
    batch = collate([encode_example(processor, ex) for ex in examples[:4]], processor.tokenizer.pad_token_id)
    results = []
    for checkpointing in (False, True):
        model = load_policy(tiny_model).train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        loss = model(**batch).loss
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads, model.is_gradient_checkpointing))
    (loss0, grads0, on0), (loss1, grads1, on1) = results
    assert (on0, on1) == (False, True)
    torch.testing.assert_close(loss1, loss0)
    assert grads0.keys() == grads1.keys() and len(grads0) > 50
    for name in grads0:
        torch.testing.assert_close(grads1[name], grads0[name], atol=1e-5, rtol=1e-4)


def test_bfloat16_policy_trains_with_checkpointing(tiny_model, examples) -> None:
    options = PolicyOptions(dtype="bfloat16", gradient_checkpointing=True)
    trainer = SFTTrainer(str(tiny_model), _dist(), options)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.start_stage(OptimSpec(lr=1e-3, micro_batch_size=4))
    stats = trainer.train(examples, epochs=1)
    params = dict(trainer._module().named_parameters())
    assert {p.dtype for p in params.values()} == {torch.bfloat16}
    assert stats.optimizer_steps == 2 and torch.isfinite(torch.tensor(stats.mean_loss))
    assert sum(not torch.equal(before[n], p) for n, p in params.items()) > 50


def _remote_code_checkpoint(tiny_model: Path, out: Path) -> Path:
    """The tiny model as a checkpoint with its own modeling code, the way remote-code VLMs ship."""
    shutil.copytree(tiny_model, out)
    (out / "modeling_custom_vlm.py").write_text(
        "from transformers import Qwen2VLForConditionalGeneration\n\n\n"
        "class CustomVLM(Qwen2VLForConditionalGeneration):\n"
        "    loaded_from_remote_code = True\n"
    )
    config = json.loads((out / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom_vlm.CustomVLM"}
    (out / "config.json").write_text(json.dumps(config))
    return out


def test_remote_code_loads_only_when_trusted(tiny_model, tiny_data, tmp_path) -> None:
    path = _remote_code_checkpoint(tiny_model, tmp_path / "remote")
    overrides = [
        f"model.path={path}",
        f"data.labeled={tiny_data['labeled']}",
        f"data.validation={tiny_data['validation']}",
    ]
    with pytest.raises(ValueError, match=r"model\.path: .* ships its own modeling code.*model\.trust_remote_code=true"):
        load_config(None, [*overrides, "loop.eval_test=false"])
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_policy(path)
    cfg = load_config(None, [*overrides, "loop.eval_test=false", "model.trust_remote_code=true"])
    model = load_policy(cfg.model.path, trust_remote_code=cfg.model.trust_remote_code)
    assert type(model).__name__ == "CustomVLM" and model.loaded_from_remote_code
    native = load_policy(tiny_model)
    assert dict(model.state_dict()).keys() == dict(native.state_dict()).keys()
    # The PRM built from such a policy follows the same rule.
    with pytest.raises(ValueError, match="trust_remote_code"):
        ProcessRewardModel.from_pretrained(path)
    prm = ProcessRewardModel.from_pretrained(path, trust_remote_code=True)
    assert prm.backbone is not None and prm.value_head.in_features == native.config.get_text_config().hidden_size
