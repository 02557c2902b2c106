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


_scalar_type = _SCALARS.__contains__


def flatten_json(obj: dict[str, Any]) -> dict[str, Any]:
    """:func:`flatten` of an object decoded from JSON text (so every key is a ``str``): a record with no nested
    value (a Windows or Sysmon event, most plain JSON logs) is copied whole after one pass in C over its value
    types, ~1 µs less than the per-key loop (a twentieth of such a record's parse). Anything else is ``flatten``."""
    event = flatten_owned(obj)
    return event.copy() if event is obj else event


def flatten_owned(obj: dict[str, Any]) -> dict[str, Any]:
    """:func:`flatten_json` of an object nothing else holds (just decoded, never seen by another stage): a flat
    one is the event itself, without the copy that :func:`flatten_json` makes so a caller's object stays as it was."""
    if type(obj) is dict and all(map(_scalar_type, map(type, obj.values()))):
        return obj
    return flatten(obj)


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


#: How a flat key nests, decided once per distinct key: documents repeat the same few hundred keys, and splitting
#: and classifying every key again for every alert was most of what writing it cost (and half the bulk sinks'
#: client-side cost).
_TOP: tuple[str, ...] = ("top",)  # no dot, or ``@``-prefixed: a root key
_KEEP: tuple[str, ...] = ("keep",)  # more parts than MAX_KEY_PARTS: kept dotted
_KEY_PATHS: dict[str, tuple[str, ...]] = {}
#: Bounded, because keys are data: a stream of records with ever new vendor keys must not grow it for ever.
MAX_CACHED_KEYS = 1 << 16


def _key_path(key: str) -> tuple[str, ...]:
    if key.startswith("@") or "." not in key:
        path = _TOP
    else:
        path = tuple(key.split("."))
        if len(path) > MAX_KEY_PARTS:
            path = _KEEP
    if len(_KEY_PATHS) < MAX_CACHED_KEYS:
        _KEY_PATHS[key] = path
    return path


#: Nesting plans, one per shape of keys (documents of one rule and one format repeat the same key tuple: the mixed
#: bench corpus's 10,296 alerts have 68 shapes). A plan is a generated function that builds the nested document
#: from the values in one dict display: ~0.05 µs a key, where the loop below costs ~0.25. Compiled once a shape has
#: been seen ``_PLAN_AFTER`` times (compiling costs a few hundred documents' worth of the loop), at most
#: ``_MAX_PLANS`` of them, and only for shapes whose nesting cannot depend on the values (no name that is both a leaf
#: and an object; all keys text): the rest, and every shape past the bounds, take the loop. Keys are data, so the
#: source holds them only as ``repr`` literals.
_PLAN_AFTER = 8
_MAX_PLANS = 256
_MAX_SIGHTINGS = 4096
_MAX_PLAN_KEYS = 1024  # a hostile record's 100,000 keys would be one huge function: those take the loop
_PLANS: dict[tuple[Any, ...], Any] = {}
_SIGHTINGS: dict[tuple[Any, ...], int] = {}
_NO_PLAN = object()


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Nest dotted keys. ``@timestamp`` and keys that collide with a scalar stay dotted rather than lost:
    a dotted key under a root that holds a scalar stays dotted, a root key meeting an object merges into it
    (a scalar root key meeting an object becomes its ``value``). Keys keep their order. The result shares
    the document's inner dicts (a root key's object is merged into, not copied)."""
    shape = tuple(flat)
    plan = _PLANS.get(shape)
    if plan is not None:
        if plan is not _NO_PLAN:
            return plan(*flat.values())  # type: ignore[no-any-return]
    elif len(_PLANS) < _MAX_PLANS:
        seen = _SIGHTINGS.get(shape, 0) + 1
        if seen >= _PLAN_AFTER:
            _SIGHTINGS.pop(shape, None)
            _PLANS[shape] = _plan(shape)
        elif seen > 1 or len(_SIGHTINGS) < _MAX_SIGHTINGS:
            _SIGHTINGS[shape] = seen
    return _unflatten(flat)


def _plan(shape: tuple[Any, ...]) -> Any:
    """The function that nests a document of this key tuple as :func:`_unflatten` does, or ``_NO_PLAN``."""
    if len(shape) > _MAX_PLAN_KEYS or not all(type(key) is str for key in shape):
        return _NO_PLAN
    tree: dict[str, Any] = {}  # name -> leaf index (int) or subtree (dict), in first-seen order
    for index, key in enumerate(shape):
        path = _KEY_PATHS.get(key) or _key_path(key)
        parts: tuple[str, ...] = (key,) if path is _TOP or path is _KEEP else path
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                return _NO_PLAN  # a leaf met as an object: the loop decides by the values
            node = child
        if parts[-1] in node:
            return _NO_PLAN  # an object met as a leaf (or the same name twice)
        node[parts[-1]] = index
    names = [f"v{i}" for i in range(len(shape))]

    def display(node: dict[str, Any]) -> str:
        return "{" + ", ".join(f"{name!r}: {names[v] if isinstance(v, int) else display(v)}" for name, v in node.items()) + "}"

    namespace: dict[str, Any] = {}
    exec(f"def plan({', '.join(names)}):\n    return {display(tree)}\n", namespace)  # keys as repr literals only
    return namespace["plan"]


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    paths = _KEY_PATHS
    for key, value in flat.items():
        path = paths.get(key) or _key_path(key)
        if path is _TOP:
            current = nested.get(key)
            if not isinstance(current, dict):
                nested[key] = value
            elif isinstance(value, dict):
                current.update(value)
            else:
                current["value"] = value
        elif path is _KEEP:
            nested[key] = value
        elif len(path) == 2:  # most ECS fields: one level
            head, leaf = path
            child = nested.get(head)
            if child is None:
                nested[head] = {leaf: value}
            elif isinstance(child, dict):
                child[leaf] = value
            else:
                nested[key] = value
        else:
            node = nested
            for part in path[:-1]:
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
                elif not isinstance(child, dict):
                    nested[key] = value
                    break
                node = child
            else:
                node[path[-1]] = value
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
