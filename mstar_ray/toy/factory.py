"""Tiny random-weight image-text-to-text models of several transformers families, for tests and quick starts.

Each is an ordinary Hugging Face checkpoint directory of a family transformers supports natively: the family's
model and processor classes around the project's own byte-level BPE tokenizer (trained on the task's texts, with
the family's special tokens) and a chat template in the family's markup. Everything else in mstar-ray loads it with
`AutoProcessor` / `AutoModelForImageTextToText`, exactly as it would load a real checkpoint of that family.
Images are small (56 pixels, patches of 14), so one image is 4 to 16 vision tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers as tf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

# What a family's builder returns: the processor and the model config around the project's tokenizer
Built = tuple[tf.ProcessorMixin, tf.PretrainedConfig]


@dataclass(frozen=True)
class TinyVLMSpec:
    """Sizes of a tiny model; the defaults give about 1M parameters."""

    vocab_size: int = 512  # at most; a small corpus gives fewer merges
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    vision_depth: int = 2
    vision_embed_dim: int = 64
    vision_heads: int = 2
    image_size: int = 56  # side every image is resized to (Qwen-VL: see the pixel bounds below)
    patch_size: int = 14
    image_min_pixels: int = 56 * 56  # Qwen-VL families keep the aspect ratio within these bounds
    image_max_pixels: int = 112 * 112
    max_position_embeddings: int = 2048


# A conversation turn by turn: images and text items in order; the assistant's header on request.
_CHAT_TEMPLATE = (
    "{% set names = @NAMES@ %}"
    "{% for message in messages %}@START@{{ names.get(message['role'], message['role']) }}@HEADER_END@"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}@IMAGE@{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}@END@\n{% endfor %}"
    "{% if add_generation_prompt %}@START@{{ names.get('assistant', 'assistant') }}@HEADER_END@{% endif %}"
)


@dataclass(frozen=True)
class ChatMarkup:
    """How a family writes a conversation: `<start><role><header_end><content><end>\\n` per turn."""

    start: str  # opens a turn, before the speaker's name
    header_end: str  # after the speaker's name
    end: str  # closes a turn; the tokenizer's eos too, so generation stops at the end of the assistant's turn
    image: str  # what an image item renders as; the processor expands its image token into vision tokens
    roles: dict[str, str] = field(default_factory=dict)  # speaker names of the family (assistant -> model)

    def template(self) -> str:
        """The Jinja chat template."""
        fields = {"@NAMES@": repr(self.roles), "@START@": self.start, "@HEADER_END@": self.header_end}
        fields |= {"@IMAGE@": self.image, "@END@": self.end}
        template = _CHAT_TEMPLATE
        for slot, value in fields.items():
            template = template.replace(slot, value)
        return template


@dataclass(frozen=True)
class Family:
    """What one family's tiny checkpoint is made of."""

    markup: ChatMarkup
    special_tokens: tuple[str, ...]  # all of them in vocabulary order, the pad token first
    named_tokens: dict[str, str]  # tokenizer attributes the family's processor reads (image_token, ...)
    model_class: type[tf.PreTrainedModel]
    build: Callable[[tf.PreTrainedTokenizerFast, TinyVLMSpec], Built]
    after_init: Callable[[tf.PreTrainedModel], None] | None = None  # adjusts the random weights


QWEN_MARKUP = ChatMarkup("<|im_start|>", "\n", "<|im_end|>", "<|vision_start|><|image_pad|><|vision_end|>")
QWEN_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
QWEN_NAMED = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"}


def train_tokenizer(corpus: Iterable[str], vocab_size: int, family: Family) -> tf.PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer (digits split one by one) on the texts, with the family's special tokens
    and chat template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(family.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    role_names = [" ".join(family.markup.roles.values())] if family.markup.roles else []
    tok.train_from_iterator([*corpus, *role_names], trainer=trainer)
    return tf.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=family.markup.end,
        pad_token=family.special_tokens[0],
        bos_token=None,
        padding_side="left",
        chat_template=family.markup.template(),
        extra_special_tokens=dict(family.named_tokens),
    )


def _ids(tokenizer: tf.PreTrainedTokenizerFast, *tokens: str) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(t) for t in tokens]


def _text_config(tokenizer: tf.PreTrainedTokenizerFast, spec: TinyVLMSpec) -> dict:
    """The language model's sizes and special-token ids, in the names most text configs share."""
    pad, eos = _ids(tokenizer, tokenizer.pad_token, tokenizer.eos_token)
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "bos_token_id": pad,
        "eos_token_id": eos,
        "pad_token_id": pad,
    }


def _vit_config(spec: TinyVLMSpec) -> dict:
    """A ViT-style vision tower (CLIP, SigLIP, Idefics3, InternViT) in the names their configs share."""
    return {
        "hidden_size": spec.vision_embed_dim,
        "intermediate_size": 2 * spec.vision_embed_dim,
        "num_hidden_layers": spec.vision_depth,
        "num_attention_heads": spec.vision_heads,
        "image_size": spec.image_size,
        "patch_size": spec.patch_size,
    }


def _qwen_text_config(tokenizer: tf.PreTrainedTokenizerFast, spec: TinyVLMSpec) -> dict:
    # mrope splits each head's rotary half into (temporal, height, width) sections
    half = spec.hidden_size // spec.num_heads // 2
    temporal = half // 4
    height = (half - temporal) // 2
    sections = [temporal, height, half - temporal - height]
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": sections}
    return {**_text_config(tokenizer, spec), "rope_parameters": rope}


def _qwen_vl_ids(tokenizer: tf.PreTrainedTokenizerFast) -> dict[str, int]:
    image, video, start, end = _ids(tokenizer, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    return {
        "image_token_id": image,
        "video_token_id": video,
        "vision_start_token_id": start,
        "vision_end_token_id": end,
    }


def _qwen_vl_processor(
    processor_class: type[tf.ProcessorMixin], tokenizer: tf.PreTrainedTokenizerFast, spec: TinyVLMSpec
) -> tf.ProcessorMixin:
    size = {"shortest_edge": spec.image_min_pixels, "longest_edge": spec.image_max_pixels}
    return processor_class(
        image_processor=tf.Qwen2VLImageProcessor(size=size, patch_size=spec.patch_size),
        tokenizer=tokenizer,
        video_processor=tf.Qwen2VLVideoProcessor(size=size, patch_size=spec.patch_size),
        chat_template=tokenizer.chat_template,
    )


def _qwen2_vl(tokenizer: tf.PreTrainedTokenizerFast, spec: TinyVLMSpec) -> Built:
    vision = {
        "depth": spec.vision_depth,
        "embed_dim": spec.vision_embed_dim,
        "hidden_size": spec.hidden_size,
        "num_heads": spec.vision_heads,
        "mlp_ratio": 2,
        "patch_size": spec.patch_size,
    }
    config = tf.Qwen2VLConfig(
        text_config=_qwen_text_config(tokenizer, spec),
        vision_config=vision,
        tie_word_embeddings=True,
        **_qwen_vl_ids(tokenizer),
    )
    return _qwen_vl_processor(tf.Qwen2VLProcessor, tokenizer, spec), config


def _qwen2_5_vl(tokenizer: tf.PreTrainedTokenizerFast, spec: TinyVLMSpec) -> Built:
    vision = {
        "depth": spec.vision_depth,
        "hidden_size": spec.vision_embed_dim,
        "intermediate_size": 2 * spec.vision_embed_dim,
        "num_heads": spec.vision_heads,
        "out_hidden_size": spec.hidden_size,
        "patch_size": spec.patch_size,
        "window_size": 4 * spec.patch_size,  # windows of 2 x 2 merged patches; the last block attends globally
        "fullatt_block_indexes": [spec.vision_depth - 1],
    }
    config = tf.Qwen2_5_VLConfig(
        text_config=_qwen_text_config(tokenizer, spec),
        vision_config=vision,
        tie_word_embeddings=True,
        **_qwen_vl_ids(tokenizer),
    )
    return _qwen_vl_processor(tf.Qwen2_5_VLProcessor, tokenizer, spec), config


def _llava(tokenizer: tf.PreTrainedTokenizerFast, spec: TinyVLMSpec) -> Built:
    side = {"height": spec.image_size, "width": spec.image_size}
    processor = tf.LlavaProcessor(
        image_processor=tf.CLIPImageProcessor(size={"shortest_edge": spec.image_size}, crop_size=side),
        tokenizer=tokenizer,
        patch_size=spec.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, which the "default" strategy drops again
        chat_template=tokenizer.chat_template,
    )
    config = tf.LlavaConfig(
        vision_config={**_vit_config(spec), "model_type": "clip_vision_model", "projection_dim": spec.hidden_size},
        text_config={**_text_config(tokenizer, spec), "model_type": "llama"},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(spec.image_size // spec.patch_size) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,  # LLaVA-1.5 reads the second-to-last; of 2 layers, the last should train too
    )
    return processor, config


def _idefics3(tokenizer: tf.PreTrainedTokenizerFast, spec: TinyVLMSpec) -> Built:
    scale = 2  # the connector's pixel shuffle merges 2 x 2 patches into one token
    edge = {"longest_edge": spec.image_size}
    processor = tf.Idefics3Processor(
        image_processor=tf.Idefics3ImageProcessor(do_image_splitting=False, size=edge, max_image_size=edge),
        tokenizer=tokenizer,
        image_seq_len=(spec.image_size // spec.patch_size) ** 2 // scale**2,
        chat_template=tokenizer.chat_template,
    )
    config = tf.Idefics3Config(
        vision_config=_vit_config(spec),
        text_config={**_text_config(tokenizer, spec), "model_type": "llama"},
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=scale,
        pad_token_id=tokenizer.pad_token_id,
    )
    return processor, config


def _internvl(tokenizer: tf.PreTrainedTokenizerFast, spec: TinyVLMSpec) -> Built:
    side = {"height": spec.image_size, "width": spec.image_size}
    seq_length = (spec.image_size // spec.patch_size) ** 2 // 4  # pixel shuffle at downsample ratio 0.5
    processor = tf.InternVLProcessor(
        image_processor=tf.GotOcr2ImageProcessor(size=side, crop_to_patches=False, max_patches=1),
        tokenizer=tokenizer,
        video_processor=tf.InternVLVideoProcessor(size=side),
        image_seq_length=seq_length,
        chat_template=tokenizer.chat_template,
    )
    patch = [spec.patch_size, spec.patch_size]
    config = tf.InternVLConfig(
        vision_config={**_vit_config(spec), "image_size": [spec.image_size] * 2, "patch_size": patch},
        text_config={**_text_config(tokenizer, spec), "model_type": "qwen2"},
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=seq_length,
        downsample_ratio=0.5,
        vision_feature_layer=-1,
    )
    return processor, config


def _gemma3(tokenizer: tf.PreTrainedTokenizerFast, spec: TinyVLMSpec) -> Built:
    tokens_per_image = (spec.image_size // spec.patch_size) ** 2 // 4  # 2 x 2 average pooling of the patches
    processor = tf.Gemma3Processor(
        image_processor=tf.Gemma3ImageProcessor(size={"height": spec.image_size, "width": spec.image_size}),
        tokenizer=tokenizer,
        image_seq_length=tokens_per_image,
        chat_template=tokenizer.chat_template,
    )
    head_dim = spec.hidden_size // spec.num_heads
    text = {**_text_config(tokenizer, spec), "head_dim": head_dim, "query_pre_attn_scalar": head_dim}
    boi, eoi, image = _ids(tokenizer, "<start_of_image>", "<end_of_image>", "<image_soft_token>")
    config = tf.Gemma3Config(
        text_config=text,
        vision_config={**_vit_config(spec), "model_type": "siglip_vision_model", "vision_use_head": False},
        mm_tokens_per_image=tokens_per_image,
        boi_token_index=boi,
        eoi_token_index=eoi,
        image_token_index=image,
    )
    return processor, config


@torch.no_grad()
def _gemma3_projector_sees_images(model: tf.PreTrainedModel) -> None:
    # Gemma3 starts its projector at zero (fine-tuning a trained tower): a random model would ignore every image.
    weight = model.model.multi_modal_projector.mm_input_projection_weight
    weight.normal_(0.0, model.config.initializer_range)


FAMILY_TABLE: dict[str, Family] = {
    "qwen2_vl": Family(QWEN_MARKUP, QWEN_TOKENS, QWEN_NAMED, tf.Qwen2VLForConditionalGeneration, _qwen2_vl),
    "qwen2_5_vl": Family(QWEN_MARKUP, QWEN_TOKENS, QWEN_NAMED, tf.Qwen2_5_VLForConditionalGeneration, _qwen2_5_vl),
    "llava": Family(
        ChatMarkup("<|im_start|>", "\n", "<|im_end|>", "<image>\n"),
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"),
        {"image_token": "<image>"},
        tf.LlavaForConditionalGeneration,
        _llava,
    ),
    "idefics3": Family(
        ChatMarkup("<|im_start|>", ":", "<end_of_utterance>", "<image>", {"user": "User", "assistant": "Assistant"}),
        ("<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>", "<global-img>"),
        {"image_token": "<image>"},
        tf.Idefics3ForConditionalGeneration,
        _idefics3,
    ),
    "internvl": Family(
        ChatMarkup("<|im_start|>", "\n", "<|im_end|>", "<IMG_CONTEXT>\n"),
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"),
        {
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",
        },
        tf.InternVLForConditionalGeneration,
        _internvl,
    ),
    "gemma3": Family(
        ChatMarkup("<start_of_turn>", "\n", "<end_of_turn>", "<start_of_image>", {"assistant": "model"}),
        ("<pad>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"),
        {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"},
        tf.Gemma3ForConditionalGeneration,
        _gemma3,
        _gemma3_projector_sees_images,
    ),
}
FAMILIES: tuple[str, ...] = tuple(FAMILY_TABLE)


def build_tiny_model(
    family: str, corpus: Iterable[str], out_dir: str | Path, spec: TinyVLMSpec | None = None, seed: int = 0
) -> Path:
    """Train a tokenizer on `corpus`, build a random-weight model of `family` around it and save both to `out_dir`."""
    if family not in FAMILY_TABLE:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    kind = FAMILY_TABLE[family]
    spec = spec or TinyVLMSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(corpus, spec.vocab_size, kind)
    processor, config = kind.build(tokenizer, spec)
    torch.manual_seed(seed)
    model = kind.model_class(config)
    if kind.after_init is not None:
        kind.after_init(model)
    text = config.get_text_config()
    model.generation_config.eos_token_id = text.eos_token_id
    model.generation_config.pad_token_id = text.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
