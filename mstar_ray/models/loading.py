"""Loading a policy checkpoint and its processor, with remote code only when the config allows it.

Native transformers architectures load through `AutoModelForImageTextToText` / `AutoProcessor`. A checkpoint whose
`config.json` maps its classes to Python files shipped beside the weights (`auto_map`: MiniCPM-V, Phi-3.5-Vision,
InternVL2) runs that code on every Ray worker that loads it, so it loads only with `model.trust_remote_code: true`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, ProcessorMixin

from mstar_ray.config.checks import check_remote_code, remote_code_classes

# Auto classes tried, in order, for a remote-code checkpoint whose auto_map lacks AutoModelForImageTextToText.
_REMOTE_AUTO_CLASSES = (
    ("AutoModelForImageTextToText", AutoModelForImageTextToText),
    ("AutoModelForCausalLM", AutoModelForCausalLM),
    ("AutoModel", AutoModel),
)


def load_processor(path: str | Path, trust_remote_code: bool = False) -> ProcessorMixin:
    """The checkpoint's processor (tokenizer, image processor, chat template)."""
    check_remote_code(path, trust_remote_code)
    return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)


def load_policy(path: str | Path, dtype: str = "float32", trust_remote_code: bool = False) -> torch.nn.Module:
    """The image-text-to-text model of a checkpoint, in `dtype`."""
    check_remote_code(path, trust_remote_code)
    kwargs = {"dtype": getattr(torch, dtype), "trust_remote_code": trust_remote_code}
    auto_map = remote_code_classes(path)
    if auto_map:
        for name, auto_class in _REMOTE_AUTO_CLASSES:
            if name in auto_map:
                return auto_class.from_pretrained(path, **kwargs)
    return AutoModelForImageTextToText.from_pretrained(path, **kwargs)
