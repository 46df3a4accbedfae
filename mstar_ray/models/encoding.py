"""Turn prompts and responses into model inputs with the model's own processor and chat template.

One path for every image-text-to-text model: the chat template renders the prompt, the processor expands each image
tag into its vision tokens and computes pixel inputs. Text-aligned tensors (input ids, masks, token types) are padded;
image tensors are concatenated along their first dimension, which fits both patch-flattened (Qwen2-VL) and
per-image (LLaVA, InternVL, Gemma3) layouts, after zero-padding per-example image stacks (Idefics3) to one length.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from transformers import BatchFeature, ProcessorMixin

from mstar_ray.core.records import Prompt, TrainExample
from mstar_ray.data.images import load_image

IGNORE_INDEX = -100


def chat_messages(prompt: Prompt, response: str | None = None) -> list[dict]:
    """The conversation for one prompt (its images, then its question), optionally with the assistant's response."""
    content = [{"type": "image"} for _ in prompt.images] + [{"type": "text", "text": prompt.question}]
    messages = [{"role": "user", "content": content}]
    if response is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": response}]})
    return messages


def prompt_text(processor: ProcessorMixin, prompt: Prompt) -> str:
    """The rendered prompt ending with the assistant turn's opening."""
    return processor.apply_chat_template(chat_messages(prompt), add_generation_prompt=True, tokenize=False)


def prompt_images(prompts: Sequence[Prompt]) -> list[list[Image.Image]] | None:
    """The prompts' images, one list per prompt, as processors take them (None when no prompt has an image)."""
    images = [[load_image(path) for path in p.images] for p in prompts]
    return images if any(images) else None


def generation_inputs(
    processor: ProcessorMixin, prompts: Sequence[Prompt], prefixes: Sequence[str] | None = None
) -> BatchFeature:
    """Left-padded batch of prompts with their images, ready for `generate`; each may start a response prefix."""
    processor.tokenizer.padding_side = "left"
    texts = [prompt_text(processor, p) for p in prompts]
    if prefixes is not None:
        texts = [text + prefix for text, prefix in zip(texts, prefixes, strict=True)]
    return processor(text=texts, images=prompt_images(prompts), padding=True, return_tensors="pt")


# Per-token tensors that processors return beside input_ids; everything else is per image.
TEXT_KEYS = ("input_ids", "attention_mask", "labels", "token_type_ids", "mm_token_type_ids")


def encode_example(processor: ProcessorMixin, example: TrainExample) -> dict[str, torch.Tensor]:
    """Input tensors for one example with `labels` masking everything but the response (and its end token)."""
    prompt = prompt_text(processor, example.prompt)
    full = processor.apply_chat_template(chat_messages(example.prompt, example.response), tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template does not render the prompt as a prefix of the conversation")
    images = prompt_images([example.prompt])
    prompt_len = processor(text=[prompt], images=images, return_tensors="pt")["input_ids"].shape[-1]
    # Keep the end-of-turn token so the model learns to stop; drop the template's trailing newline after it.
    features = processor(text=[full.rstrip("\n")], images=images, return_tensors="pt")
    encoded = {k: v for k, v in features.items() if torch.is_tensor(v)}
    labels = encoded["input_ids"].clone()
    labels[:, :prompt_len] = IGNORE_INDEX
    encoded["labels"] = labels
    return encoded


def collate(batch: Sequence[dict[str, torch.Tensor]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad text-aligned tensors of encoded examples and concatenate the image tensors."""
    length = max(ex["input_ids"].shape[-1] for ex in batch)
    pad_values = {"input_ids": pad_token_id, "labels": IGNORE_INDEX}
    out: dict[str, torch.Tensor] = {}
    for key in batch[0]:
        if key in TEXT_KEYS:
            fill = pad_values.get(key, 0)
            rows = [torch.nn.functional.pad(ex[key], (0, length - ex[key].shape[-1]), value=fill) for ex in batch]
        else:
            rows = _zero_pad_to_common_shape([ex[key] for ex in batch])
        out[key] = torch.cat(rows, dim=0)
    return out


def _zero_pad_to_common_shape(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Zero-pad every dimension but the first to the largest size among `tensors`.

    Per-example image tensors differ beyond the first dimension when a processor stacks each example's images
    (Idefics3: pixel_values (1, N_images, C, H, W) and pixel_attention_mask): all-zero images are the padding
    such models skip, as the processor itself pads a batch.
    """
    shape = [max(sizes) for sizes in zip(*(t.shape[1:] for t in tensors), strict=True)]
    padded = []
    for t in tensors:
        missing = [size - have for size, have in zip(shape, t.shape[1:], strict=True)]
        widths = [w for gap in reversed(missing) for w in (0, gap)]  # F.pad takes (before, after) from the last dim
        padded.append(torch.nn.functional.pad(t, widths) if any(missing) else t)
    return padded
