"""Loading the configuration: YAML files, `a.b=value` overrides, errors that name the key; and saving it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mstar_ray.config import ConfigError, MStarConfig


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-6` (no dot) as a string; config files and overrides mean a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=value` overrides (values parsed as YAML scalars) to a config dict."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        _set_dotted(tree, key.strip(), _parse_yaml(raw) if raw.strip() else None)
    return tree


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling and section)"
        lines.append(f"  {key}: {msg}" if key else f"  {msg}")
    return "invalid config:\n" + "\n".join(lines)


def config_from_dict(tree: dict[str, Any]) -> MStarConfig:
    """Build and validate a config, raising ConfigError with dotted key names."""
    try:
        return MStarConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_errors(err)) from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, section by section."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_tree(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML config file as a dict. A top-level `base: other.yaml` (or a list of files, merged in order; paths
    relative to the file) is read first and the file's own keys override it, section by section."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: `base` files include each other")
    loaded = _parse_yaml(path.read_text())
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    tree = dict(loaded or {})
    bases = tree.pop("base", [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: base must be the path of another config file, or a list of them")
    merged: dict[str, Any] = {}
    for base in bases:
        base_path = path.parent / base
        if not base_path.is_file():
            raise ConfigError(f"{path}: base file not found: {base_path}")
        merged = _merge(merged, read_tree(base_path, (*_seen, path)))
    return _merge(merged, tree)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> MStarConfig:
    """Load a YAML config file (or none) and apply overrides."""
    tree = read_tree(path) if path is not None else {}
    return config_from_dict(apply_overrides(tree, overrides or []))


def config_to_yaml(cfg: MStarConfig) -> str:
    """The resolved config as YAML."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
