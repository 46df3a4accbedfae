"""docs/configuration.md, written from the schema so it cannot drift: `python -m mstar_ray.config.reference`."""

from __future__ import annotations

import sys
import types
import typing
from enum import Enum
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from mstar_ray.config.schema import MStarConfig

HEADER = """# Configuration reference

Every key of a run's config, by section: its type, its default and what it does. A config is a YAML file
(`mstar run --config FILE`, which may name `base:` files it extends) plus `key.sub=value` overrides on the
command line. Unknown keys and wrong types are errors that name the key; cross-field rules are checked before
any cluster resource is taken. Required keys have no default.

This page is generated from the schema (`mstar_ray/config/schema.py`) by `python -m mstar_ray.config.reference`;
a test fails when it is out of date.
"""


def _type_name(annotation: object) -> str:
    """A short readable name of a field's type."""
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    if isinstance(annotation, type):
        return annotation.__name__
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return str(annotation)


def _default(field) -> str:
    if field.default is PydanticUndefined:
        return "required"
    value = field.default
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, list):
        value = [v.value if isinstance(v, Enum) else v for v in value]
    if isinstance(value, bool):
        value = str(value).lower()  # as YAML writes it
    return "null" if value is None else f"`{value}`"


def _section(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    """The table of one section, then its sub-sections."""
    rows, subsections = [], []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            subsections.append((f"{prefix}{name}", annotation))
            continue
        description = (field.description or "").replace("\n", " ").replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | {_type_name(annotation)} | {_default(field)} | {description} |")
    if rows:
        out += [f"## `{prefix.rstrip('.')}`", ""]
        if model.__doc__ and model is not MStarConfig:
            out += [" ".join(model.__doc__.split()), ""]
        out += ["| key | type | default | description |", "| --- | --- | --- | --- |", *rows, ""]
    for path, sub in subsections:
        _section(sub, path + ".", out)


def reference() -> str:
    """The whole reference page."""
    out = [HEADER]
    _section(MStarConfig, "", out)
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:] or ["docs/configuration.md"])[0])
    out.write_text(reference())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
