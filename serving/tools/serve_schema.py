"""Strict validation of a Ray Serve config (the content of a RayService's serveConfigV2).

Ray's ``ServeDeploySchema`` checks types and values but silently ignores unknown keys
(``proxy_locaton: HeadOnly`` would deploy with the default). Here every key must be a
field of Ray's schema models, recursively, and each application's ``args`` must be a
valid settings tree of this project (``extra="forbid"`` at every level).
"""

from __future__ import annotations

import types
import typing
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ValidationError

# Ray's schema fields whose content is free-form by design (checked elsewhere or opaque).
OPAQUE_FIELDS = frozenset({"args", "runtime_env", "user_config", "autoscaling_policy"})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation accepts (through Optional/Union/List/Dict)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset, dict):
        args = typing.get_args(annotation)
        if origin is dict:
            args = args[1:]  # values only
        return [model for arg in args for model in _models_in(arg)]
    return []


def _field_names(model: type[BaseModel]) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        names[name] = field.annotation
        if field.alias:
            names[field.alias] = field.annotation
    return names


def unknown_keys(data: Any, model: type[BaseModel], path: str = "") -> list[str]:
    """Dotted paths of keys in ``data`` that ``model`` (recursively) does not define."""
    if not isinstance(data, Mapping):
        return []
    fields = _field_names(model)
    found: list[str] = []
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            found.append(where)
            continue
        if key in OPAQUE_FIELDS:
            continue
        models = _models_in(fields[key])
        if not models:
            continue
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            item_path = f"{where}[{index}]" if isinstance(value, list) else where
            # A Dict-or-model field: judge the mapping against the model (the strict reading).
            found.extend(unknown_keys(item, models[0], item_path))
    return found


def serve_config_problems(text_or_data: str | Mapping[str, Any]) -> list[str]:
    """Why a Serve config is invalid (empty list: valid), with the offending key paths."""
    from ray.serve.schema import ServeDeploySchema

    from serving.tools.render_serve_config import validate_args

    try:
        data = yaml.safe_load(text_or_data) if isinstance(text_or_data, str) else text_or_data
    except yaml.YAMLError as exc:
        return [f"serveConfigV2 is not YAML: {exc}"]
    if not isinstance(data, Mapping):
        return ["serveConfigV2 must be a mapping"]
    problems = [
        f"unknown key {key!r} (not in Ray's ServeDeploySchema)"
        for key in unknown_keys(data, ServeDeploySchema)
    ]
    try:
        ServeDeploySchema.model_validate(dict(data))
    except ValidationError as exc:
        problems.extend(f"ServeDeploySchema: {_loc(err)}: {err['msg']}" for err in exc.errors())
    for index, app in enumerate(data.get("applications") or []):
        if not isinstance(app, Mapping):
            continue
        try:
            validate_args(app.get("args") or {})
        except ValidationError as exc:
            problems.extend(f"applications[{index}].args.{_loc(err)}: {err['msg']}" for err in exc.errors())
    return problems


def _loc(error: Mapping[str, Any]) -> str:
    return ".".join(str(part) for part in error.get("loc", ()))
