"""Line numbers for rule problems, and "did you mean" suggestions.

The fast load path (libyaml, no marks kept) stays as it is: this module runs only when there is a problem to
report. It composes the file again with the pure-Python YAML composer, which keeps each node's start mark, and
finds the line of the key the problem is about (a field under ``detection``, the ``condition``, a top-level
attribute such as ``id``), falling back to the rule's ``title`` line. A problem an author cannot locate is a
problem they cannot fix quickly, so every message the CLI prints about a rule file carries ``file:line``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

# Files are read again on the error path only; keep the composed trees of the last few.
_CACHE: dict[tuple[str, float], list[Any]] = {}


def _documents(path: str | Path) -> list[Any]:
    file = Path(path)
    try:
        key = (str(file.resolve()), file.stat().st_mtime)
    except OSError:
        return []
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    try:
        nodes = [n for n in yaml.compose_all(file.read_text(encoding="utf-8"), Loader=yaml.SafeLoader) if n is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        nodes = []
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = nodes
    return nodes


def yaml_error_line(error: yaml.YAMLError) -> int | None:
    """1-based line of a YAML error (the problem's mark, else its context's)."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return int(mark.line) + 1 if mark is not None else None


def _mapping_items(node: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(node, yaml.MappingNode):
        yield from node.value


def _get(node: Any, key: str) -> tuple[Any, Any] | None:
    for key_node, value in _mapping_items(node):
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value
    return None


def _document(path: str | Path, title: str | None = None, ident: str | None = None) -> Any:
    """The document of a rule in a (possibly multi-document) file, by title or id; else the first one."""
    docs = _documents(path)
    for doc in docs:
        for key, wanted in (("id", ident), ("title", title)):
            found = _get(doc, key)
            if wanted and found is not None and isinstance(found[1], yaml.ScalarNode) and found[1].value == wanted:
                return doc
    return docs[0] if docs else None


def _walk_keys(node: Any) -> Iterator[Any]:
    """Every mapping key node under ``node`` (depth first, document order)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value in node.value:
            yield key_node
            yield from _walk_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _walk_keys(item)


def rule_line(path: str | Path, title: str | None = None, ident: str | None = None) -> int | None:
    """Line where the rule starts (its first key)."""
    doc = _document(path, title, ident)
    return int(doc.start_mark.line) + 1 if doc is not None else None


def key_line(path: str | Path, key: str, title: str | None = None, ident: str | None = None) -> int | None:
    """Line of a top-level key of a rule (``id``, ``name``, ``logsource``...), else the rule's first line."""
    doc = _document(path, title, ident)
    if doc is None:
        return None
    found = _get(doc, key)
    return int(found[0].start_mark.line) + 1 if found is not None else int(doc.start_mark.line) + 1


def field_line(path: str | Path, field: str, title: str | None = None, ident: str | None = None,
               section: str = "detection") -> int | None:
    """Line of the first detection key naming ``field`` (``field|modifier`` counts), else the section's line."""
    doc = _document(path, title, ident)
    if doc is None:
        return None
    found = _get(doc, section)
    if found is None:
        return int(doc.start_mark.line) + 1
    for key_node in _walk_keys(found[1]):
        if isinstance(key_node, yaml.ScalarNode) and str(key_node.value).split("|", 1)[0] == field:
            return int(key_node.start_mark.line) + 1
    return int(found[0].start_mark.line) + 1


def text_line(path: str | Path, needle: str, title: str | None = None, ident: str | None = None) -> int | None:
    """Line of the first key or scalar in the rule whose text contains ``needle`` (an unknown modifier...)."""
    doc = _document(path, title, ident)
    if doc is None or not needle:
        return None
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop(0)
        if isinstance(node, yaml.ScalarNode) and needle in str(node.value):
            return int(node.start_mark.line) + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value in node.value:
                stack.extend((key_node, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return None


def suggest(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """The nearest valid names (difflib ratio >= 0.75), closest first."""
    pool = list(dict.fromkeys(candidates))
    close = difflib.get_close_matches(name, pool, n=limit, cutoff=0.75)
    if not close:
        return []
    # Only the names about as close as the best: one clear suggestion reads better than three vague ones.
    best = difflib.SequenceMatcher(None, name, close[0]).ratio()
    return [c for c in close if difflib.SequenceMatcher(None, name, c).ratio() >= best - 0.02]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` or the empty string."""
    close = suggest(name, candidates)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
