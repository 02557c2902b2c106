"""Flat dotted-key events: the shape the hot path carries.

Detection looks fields up by their dotted ECS name (``user.name``); a flat dict makes that one probe
instead of a walk. Outputs are nested again (the form Elasticsearch and ECS readers expect) by
:func:`unflatten`. Arrays of objects are flattened the way Elasticsearch indexes them: each sub-field
becomes a list of the members' values, so ``target.type`` matches if any target has that type.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 32
TOO_DEEP = "[nested deeper than 32 levels: see the raw record]"
#: A dotted key with more parts than this stays dotted when nested again: a vendor key such as
#: ``k.k.k...`` (300 parts) would otherwise nest 300 levels deep, past what any JSON encoder accepts.
MAX_KEY_PARTS = MAX_DEPTH


#: Value types that are stored as they are: checked by ``type(value) in`` first, because most fields of most records
#: are one of these and the ``isinstance`` chain below cost ~0.25 µs a field (a third of the generic parser).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def flatten(obj: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """Flatten nested dicts to dotted keys. Deeper than ``MAX_DEPTH`` is kept as an opaque value."""
    if out is None:
        out = {}
    scalars = _SCALARS
    for key, value in obj.items():
        name = prefix + key if type(key) is str else f"{prefix}{key}"
        if type(value) in scalars:
            out[name] = value
        elif isinstance(value, dict) and value and depth < MAX_DEPTH:
            flatten(value, name + ".", out, depth + 1)
        elif isinstance(value, list) and value and depth < MAX_DEPTH and any(isinstance(v, dict) for v in value):
            _flatten_object_list(value, name, out, depth + 1)
        elif depth >= MAX_DEPTH and isinstance(value, (dict, list)) and value:
            out[name] = TOO_DEEP
        elif type(value) is list:
            out[name] = bound_depth(value, depth)
        else:
            out[name] = value
    return out


def bound_depth(value: Any, depth: int) -> Any:
    """``value`` with whatever sits deeper than ``MAX_DEPTH`` replaced by :data:`TOO_DEEP`.

    Lists of lists are kept as values (not flattened), so without this a ``[[[...]]]`` 300 deep would reach
    the sinks whole and fail to encode. A flat list (the common case) is returned as is after one scan.
    """
    if type(value) is list:
        if depth >= MAX_DEPTH:
            return TOO_DEEP if value else value
        for member in value:  # a plain loop, not any(<generator>): this runs for every list of every event
            kind = type(member)
            if kind is list or kind is dict:
                return [bound_depth(v, depth + 1) for v in value]
        return value
    if type(value) is dict:
        if depth >= MAX_DEPTH:
            return TOO_DEEP if value else value
        return {k: bound_depth(v, depth + 1) for k, v in value.items()}
    return value


def _flatten_object_list(items: list[Any], name: str, out: dict[str, Any], depth: int) -> None:
    scalars: list[Any] = []
    merged: dict[str, list[Any]] = {}
    for item in items:
        if isinstance(item, dict):
            for sub_key, sub_value in flatten(item, "", None, depth).items():
                bucket = merged.setdefault(sub_key, [])
                if isinstance(sub_value, list):
                    bucket.extend(sub_value)
                else:
                    bucket.append(sub_value)
        else:
            scalars.append(item)
    if scalars:
        out[name] = scalars
    for sub_key, values in merged.items():
        out[f"{name}.{sub_key}"] = values


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Nest dotted keys. ``@timestamp`` and keys that collide with a scalar stay dotted rather than lost."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if key.startswith("@") or "." not in key:
            if key in nested and isinstance(nested[key], dict) and isinstance(value, dict):
                nested[key].update(value)
            elif key not in nested or not isinstance(nested[key], dict):
                nested[key] = value
            else:
                nested[key]["value"] = value
            continue
        parts = key.split(".")
        if len(parts) > MAX_KEY_PARTS:
            nested[key] = value
            continue
        node = nested
        collided = False
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                collided = True
                break
            node = child
        if collided:
            nested[key] = value
        else:
            node[parts[-1]] = value
    return nested


def get_path(obj: dict[str, Any], path: str) -> Any:
    """Read a dotted path from a nested or flat dict (flat keys win)."""
    if path in obj:
        return obj[path]
    node: Any = obj
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node
