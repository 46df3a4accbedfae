"""The LLaVA / MathV360K conversation format: the rows `mstar split` writes.

A row looks like `{"id", "image": "rel/path.png", "conversations": [{"from": "human", "value": "<image>\\n..."},
{"from": "gpt", "value": "..."}]}`; "image" may also list several paths. Reading such rows (and every other
format) goes through `mstar_ray.data.formats.load_prompts`, re-exported here for callers that import it from this
module; the turns are parsed by `mstar_ray.data.rows.parse_turns`.
"""

from __future__ import annotations

from mstar_ray.config import OnBadRow
from mstar_ray.core.records import Prompt
from mstar_ray.data.formats import BadRowError, LoadReport, load_prompts

__all__ = ["BadRowError", "LoadReport", "OnBadRow", "llava_row", "load_prompts"]


def llava_row(prompt: Prompt) -> dict:
    """The LLaVA row of a prompt: absolute image paths, one `<image>` tag per image, the reference (or else the
    answer) as the gpt turn, and the gold answer as an "answer" field, which the loader reads back exactly."""
    human = "<image>\n" * len(prompt.images) + prompt.question
    return {
        "id": prompt.id,
        "image": prompt.images[0] if len(prompt.images) == 1 else list(prompt.images),
        "conversations": [
            {"from": "human", "value": human},
            {"from": "gpt", "value": prompt.reference or prompt.answer},
        ],
        "answer": prompt.answer,
    }
