"""Loads Sigma rules, correlation rules and filters from files, one file at a time.

One broken file (bad YAML, bad rule, unknown modifier) becomes a :class:`LoadError` naming the file and the
reason; every other file still loads. Filters (``filter:`` documents, from ``--filters`` directories or
mixed into rule directories) are applied to the rules they name without editing them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sigma import types as sigma_types
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.modifiers import SigmaUTF16BEModifier, SigmaUTF16Modifier, SigmaWideModifier, modifier_mapping
from sigma.rule import SigmaRule
from sigma.types import SigmaString

from temporal_siem.detections.sigma import locate
from temporal_siem.detections.sigma.condition import parse_condition
from temporal_siem.detections.sigma.files import BUILTIN_RULES as BUILTIN_RULES
from temporal_siem.detections.sigma.files import RULE_SUFFIXES as RULE_SUFFIXES
from temporal_siem.detections.sigma.files import SAFE_LOADER as SAFE_LOADER
from temporal_siem.detections.sigma.files import TEST_SUFFIXES as TEST_SUFFIXES
from temporal_siem.detections.sigma.files import LoadError as LoadError
from temporal_siem.detections.sigma.files import rule_files as rule_files


class _EncodedString(SigmaString):
    """A Sigma string that stands for bytes which are not UTF-8 text (a UTF-16 encoding, maybe behind a BOM).

    pySigma's base64 modifiers encode ``bytes(value)``, which is the UTF-8 of the string: its utf16 modifier's BOM
    U+FEFF became EF BB BF instead of FF FE, and non-ASCII characters were refused. Here ``bytes()`` is the exact
    encoding; the text form (latin-1 of those bytes, one character per byte) keeps plain comparisons working.
    """

    raw: bytes

    def __bytes__(self) -> bytes:
        return self.raw


def _encode_utf16(val: SigmaString, encoding: str, bom: bytes) -> SigmaString:
    if val.contains_special():  # wildcards cannot be base64-encoded anyway: widen the plain parts, keep the rest
        parts: list[Any] = [bom.decode("latin-1")] if bom else []
        parts.extend(part.encode(encoding).decode("latin-1") if isinstance(part, str) else part for part in val.s)
        widened = SigmaString()
        widened.s = parts
        return widened
    raw = bom + "".join(part for part in val.s if isinstance(part, str)).encode(encoding, "surrogatepass")
    encoded = _EncodedString()
    encoded.s = [raw.decode("latin-1")]
    encoded.raw = raw
    return encoded


class Utf16LEModifier(SigmaWideModifier):
    """``utf16le`` / ``wide``: UTF-16LE without a byte-order mark (Sigma specification)."""

    def modify(self, val: SigmaString) -> SigmaString:
        return _encode_utf16(val, "utf-16le", b"")


class Utf16BEModifier(SigmaUTF16BEModifier):
    """``utf16be``: UTF-16BE without a byte-order mark."""

    def modify(self, val: SigmaString) -> SigmaString:
        return _encode_utf16(val, "utf-16be", b"")


class Utf16Modifier(SigmaUTF16Modifier):
    """``utf16``: the specification's "prepends a byte order mark and encodes UTF16" - FF FE, then UTF-16LE."""

    def modify(self, val: SigmaString) -> SigmaString:
        return _encode_utf16(val, "utf-16le", b"\xff\xfe")


# The Sigma specification names ``utf16le`` as the explicit spelling of ``wide``; pySigma 1.5.1 only knows ``wide``.
# The UTF-16 family is replaced by byte-exact versions (above). These are the changes we make to pySigma's global state.
modifier_mapping["utf16le"] = Utf16LEModifier
modifier_mapping["wide"] = Utf16LEModifier
modifier_mapping["utf16be"] = Utf16BEModifier
modifier_mapping["utf16"] = Utf16Modifier

_sigma_string_parse = SigmaString.__init__


def _sigma_string_init(self: SigmaString, s: str | None = None, escape: bool = True) -> None:
    """pySigma's ``SigmaString(s)``, with the answer for a value without wildcards computed by ``str`` methods.

    Why: pySigma parses every value one character at a time in Python (wildcards ``*`` ``?`` and ``\\``
    escapes), ~100,000 values for SigmaHQ (~6 % of a cold load). Without a wildcard, its result is the string
    itself, where each escaped backslash (``\\\\``, left to right) is one backslash and any other backslash
    stays. Anything else (a wildcard, a non-str) goes to pySigma's parser; checked equal by hypothesis.
    """
    if s.__class__ is str and "*" not in s and "?" not in s:  # type: ignore[operator]
        self.original = s  # type: ignore[assignment]
        self.s = ([s.replace("\\\\", "\\") if escape and "\\" in s else s]  # type: ignore[union-attr, operator]
                  if s else [])
        return
    _sigma_string_parse(self, s, escape)


if sigma_types.char_mapping.keys() == {"*", "?"} and sigma_types.escape_char == "\\":  # the parse copied above
    SigmaString.__init__ = _sigma_string_init  # type: ignore[method-assign]

MAX_RULE_FILE_CHARS = 4 * 1024 * 1024
#: A rule file with more lines is refused before YAML parsing (the largest SigmaHQ rule has ~4,500 values; a
#: rule with 100k |re values took 1.9 GB and 27 s to load).
MAX_RULE_FILE_LINES = 50_000
MAX_YAML_ALIASES = 16  # Sigma rules use none; an alias bomb uses many


_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"


def _construct_unique_mapping(loader: Any, base: Any, node: Any, deep: bool = False) -> Any:
    """pySigma's rule: a duplicate key is an error. ``base`` is named explicitly (no zero-argument ``super()``)
    because the same check runs on two unrelated loader classes (libyaml's and the pure-Python one)."""
    keys = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        try:
            keys.add(key)
        except TypeError:
            pass
    return base.construct_mapping(loader, node, deep)


class RuleYamlLoader(SAFE_LOADER):  # type: ignore[misc, valid-type]
    """libyaml's parser (5x faster on the corpus) with pySigma's rule: a duplicate key is an error."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        return _construct_unique_mapping(self, SAFE_LOADER, node, deep)


_IMPLICIT_RESOLVERS: dict[str, tuple[tuple[str, Any], ...]] = {
    first: tuple(resolvers) for first, resolvers in RuleYamlLoader.yaml_implicit_resolvers.items() if first is not None}


def _resolve(self: Any, kind: Any, value: Any, implicit: Any) -> str:
    """``BaseResolver.resolve`` for a loader without path resolvers or first-character-less implicit resolvers
    (the safe loader's case, checked below): the same tag, without building a resolver list per scalar.
    libyaml's composer asks it once per node (~240,000 times for SigmaHQ)."""
    if kind is yaml.ScalarNode:
        if implicit[0]:
            for tag, regexp in _IMPLICIT_RESOLVERS.get(value[:1], ()):  # "" for the empty scalar, as PyYAML
                if regexp.match(value):
                    tag_: str = tag
                    return tag_
        return _STR_TAG
    return _SEQ_TAG if kind is yaml.SequenceNode else _MAP_TAG


def _no_path_resolvers(self: Any, *args: Any) -> None:
    """``descend_resolver`` / ``ascend_resolver`` without path resolvers: nothing to track (called per node)."""


if not RuleYamlLoader.yaml_path_resolvers and None not in RuleYamlLoader.yaml_implicit_resolvers:
    RuleYamlLoader.resolve = _resolve
    RuleYamlLoader.descend_resolver = _no_path_resolvers
    RuleYamlLoader.ascend_resolver = _no_path_resolvers


class _PythonRuleYamlLoader(yaml.SafeLoader):
    """The pure-Python parser, used on the error path only: its messages quote the offending line."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        return _construct_unique_mapping(self, yaml.SafeLoader, node, deep)




class _NotPlain(Exception):
    """The document holds something :func:`_load_plain` leaves to PyYAML's constructor (whose result is the truth)."""


def _load_plain(text: str) -> list[Any] | None:
    """The documents of an alias-free rule file, as ``yaml.load_all(text, Loader=RuleYamlLoader)`` returns them,
    or None when that must be asked instead (a duplicate key, a merge key, a tag, any error, very deep nesting).

    Why: PyYAML's constructor walks every node through generic dispatch (a third of the YAML time); nearly all
    of a rule file is string scalars in plain maps and lists, built here directly. Every other scalar (numbers,
    booleans, null, dates) goes through PyYAML's own constructor, so values and types are the same.
    """
    loader = RuleYamlLoader(text)
    try:
        documents = []
        while loader.check_node():
            documents.append(_build_plain(loader, loader.get_node()))
        return documents
    except (_NotPlain, yaml.YAMLError, RecursionError):
        return None
    finally:
        loader.dispose()


def _build_plain(loader: Any, node: Any) -> Any:
    """One node of :func:`_load_plain` (a module function, not a closure: no reference cycle to collect)."""
    kind = node.__class__
    if kind is yaml.ScalarNode:
        return node.value if node.tag == _STR_TAG else loader.construct_object(node, deep=True)
    if kind is yaml.SequenceNode:
        if node.tag != _SEQ_TAG:
            raise _NotPlain
        return [_build_plain(loader, item) for item in node.value]
    if node.tag != _MAP_TAG:
        raise _NotPlain
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if key_node.__class__ is not yaml.ScalarNode or key_node.tag != _STR_TAG or key_node.value in mapping:
            raise _NotPlain  # other keys (merge keys, numbers...) and duplicates: PyYAML's way and message
        mapping[key_node.value] = _build_plain(loader, value_node)
    return mapping


def _yaml_error_with_context(text: str, error: yaml.YAMLError) -> yaml.YAMLError:
    """libyaml's messages lack the offending line; on the error path only, ask the pure-Python parser."""
    try:
        list(yaml.load_all(text, Loader=_PythonRuleYamlLoader))
    except yaml.YAMLError as detailed:
        return detailed
    return error


@dataclass
class LoadedRules:
    rules: list[SigmaRule] = field(default_factory=list)
    correlations: list[SigmaCorrelationRule] = field(default_factory=list)
    filters: list[SigmaFilter] = field(default_factory=list)
    errors: list[LoadError] = field(default_factory=list)
    #: Parsed condition trees of ``rules`` by ``id(rule)``, as loaded (before any pipeline; none once a filter
    #: applied), for :meth:`Ruleset.compile`.
    conditions: dict[int, list[Any]] = field(default_factory=dict)


def _read_file(path: Path, conditions: dict[int, list[Any]] | None = None
               ) -> tuple[list[SigmaRule | SigmaCorrelationRule | SigmaFilter], list[LoadError]]:
    """The rules, correlations and filters of one file, and its errors. ``conditions`` receives each loaded
    rule's parsed condition trees (by ``id(rule)``), so compiling does not parse them a second time."""
    if not path.exists():
        return [], [LoadError(str(path), "no such rule directory or file")]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [LoadError(str(path), f"cannot read: {exc}")]
    if len(text) > MAX_RULE_FILE_CHARS:
        return [], [LoadError(str(path), f"file too large for a rule file ({len(text)} characters, limit {MAX_RULE_FILE_CHARS})")]
    lines = text.count("\n")
    if lines > MAX_RULE_FILE_LINES:
        return [], [LoadError(str(path), f"file too long for a rule file ({lines} lines, limit {MAX_RULE_FILE_LINES})")]
    aliases = _alias_count(text)
    if aliases > MAX_YAML_ALIASES:
        return [], [LoadError(str(path), f"{aliases} YAML aliases (limit {MAX_YAML_ALIASES}): refusing a possible alias bomb")]
    try:
        docs = [d for d in (_load_plain(text) if aliases == 0 else None) or yaml.load_all(text, Loader=RuleYamlLoader)
                if d is not None]
    except yaml.YAMLError as exc:
        detailed = _yaml_error_with_context(text, exc)
        return [], [LoadError(str(path), f"invalid YAML: {detailed}", locate.yaml_error_line(detailed))]
    if not docs:
        return [], [LoadError(str(path), "empty file")]
    if not all(isinstance(d, dict) for d in docs):
        return [], [LoadError(str(path), "a YAML document is not a mapping")]
    docs = [_prepare(d) for d in docs]
    try:
        collection = SigmaCollection.from_dicts(docs, collect_errors=True, source=SigmaRuleLocation(path),
                                                collect_filters=True, resolve_references=False)
    except (SigmaError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return [], [LoadError(str(path), f"{type(exc).__name__}: {exc}")]
    items: list[SigmaRule | SigmaCorrelationRule | SigmaFilter] = []
    per_rule = {id(e) for rule in [*collection.rules, *collection.filters] for e in rule.errors}
    errors = [LoadError(str(path), _describe(e), _error_line(path, e)) for e in collection.errors if id(e) not in per_rule]
    for rule in [*collection.rules, *collection.filters]:
        rule_errors = list(rule.errors) or _condition_errors(rule, conditions)
        if rule_errors:
            title = getattr(rule, "title", "") or "?"
            errors.append(LoadError(str(path), f"rule {title!r}: " + "; ".join(_describe(e) for e in rule_errors),
                                    _error_line(path, rule_errors[0], title, str(getattr(rule, "id", "") or ""))))
        else:
            items.append(rule)
    return items, errors


def _condition_errors(rule: SigmaRule | SigmaCorrelationRule | SigmaFilter,
                      conditions: dict[int, list[Any]] | None = None) -> list[Exception]:
    """pySigma parses a condition on first use; parse it now so a malformed condition is a load error of this
    file (with its line) rather than a crash in whatever touches the rule first. The trees go to ``conditions``."""
    if not isinstance(rule, SigmaRule):
        return []
    try:
        trees = [parse_condition(condition) for condition in rule.detection.parsed_condition]
    except SigmaError as exc:
        return [exc]
    if conditions is not None:
        conditions[id(rule)] = trees
    return []


def _error_line(path: Path, error: Exception, title: str | None = None, ident: str | None = None) -> int | None:
    """Best line for a pySigma error: the condition, the quoted key or value it names, else the rule's start."""
    from sigma.exceptions import SigmaConditionError

    if isinstance(error, SigmaConditionError):
        return locate.field_line(path, "condition", title, ident)
    for quoted in re.findall(r"'([^'\n]{1,200})'", str(error)):
        line = locate.text_line(path, quoted, title, ident)
        if line is not None:
            return line
    return locate.rule_line(path, title, ident)


def _alias_count(text: str) -> int:
    """YAML aliases in the text; only looked at when an anchor can exist (``&`` and ``*`` both present)."""
    if "&" not in text or "*" not in text:
        return 0
    count = 0
    try:
        for event in yaml.parse(text, Loader=SAFE_LOADER):
            if isinstance(event, yaml.AliasEvent):
                count += 1
                if count > MAX_YAML_ALIASES:
                    break
    except yaml.YAMLError:
        return 0  # the real load reports the syntax error
    return count


def _prepare(document: dict[str, Any]) -> dict[str, Any]:
    """Correlation documents with what pySigma 1.5.1 cannot parse (a two-operator range condition) are
    rewritten by the correlation package, which keeps the full condition for itself."""
    if "correlation" not in document:
        return document
    try:
        from temporal_siem.detections.correlation import prepare_correlation_dict
    except ImportError:
        return document
    prepared: dict[str, Any] = prepare_correlation_dict(document)
    return prepared


def _describe(error: Exception) -> str:
    # pySigma ends messages with " in <file>": the file (and its line) already lead our message.
    text = re.sub(r" in \S+\.ya?ml$", "", str(error))
    if text.startswith("Unknown modifier '"):  # pySigma's wording; add the nearest real modifiers
        name = text.split("'")[1]
        text = text.replace(f"'{name}'", f"'{name}'{locate.did_you_mean(name, modifier_mapping)}", 1)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def load_rules(paths: Iterable[str | Path], filter_paths: Iterable[str | Path] = (),
               listed: tuple[list[Path], list[Path]] | None = None) -> LoadedRules:
    """``listed``: ``rule_files(paths)`` and ``rule_files(filter_paths)`` when the caller already made them (the
    rule cache lists the files for its key: the load then reads exactly the files the key was made of)."""
    loaded = LoadedRules()
    items: list[SigmaRule | SigmaCorrelationRule | SigmaFilter] = []
    files, filter_files = listed if listed is not None else (rule_files(paths), rule_files(filter_paths))
    for path in [*files, *filter_files]:
        found, errors = _read_file(path, loaded.conditions)
        items.extend(found)
        loaded.errors.extend(errors)
    loaded.filters = [i for i in items if isinstance(i, SigmaFilter)]
    if loaded.filters:  # a filter edits the conditions of the rules it names: those trees are stale
        loaded.conditions.clear()
    rules: list[SigmaRule | SigmaCorrelationRule] = [i for i in items if not isinstance(i, SigmaFilter)]
    collection = SigmaCollection(rules, resolve_references=False)  # type: ignore[arg-type]
    known = {str(r.id) for r in rules if r.id} | {r.name for r in rules if r.name}
    for flt in loaded.filters:
        loaded.errors.extend(_unknown_filter_targets(flt, known))
        try:
            collection.apply_filters([flt])
        except (SigmaError, ValueError, KeyError) as exc:
            loaded.errors.append(LoadError(str(flt.source.path if flt.source else "?"), f"filter {flt.title!r}: {exc}"))
    for rule in collection.rules:
        if isinstance(rule, SigmaCorrelationRule):
            try:
                rule.resolve_rule_references(collection)
            except (SigmaError, ValueError, KeyError) as exc:
                source = _source(rule)
                line = _error_line(Path(source), exc, rule.title, str(rule.id) if rule.id else None) if source else None
                loaded.errors.append(LoadError(source, f"correlation {rule.title!r}: {_describe(exc)}", line))
                continue
            loaded.correlations.append(rule)
        else:
            loaded.rules.append(rule)
    return loaded


def _unknown_filter_targets(flt: SigmaFilter, known: set[str]) -> list[LoadError]:
    """A filter naming a rule that is not loaded would silently filter nothing: each such name is an error."""
    targets = flt.filter.rules
    if isinstance(targets, str):  # "any"
        return []
    path = str(flt.source.path) if flt.source is not None and flt.source.path is not None else "?"
    errors = []
    for reference in targets:
        name = str(reference.reference)
        if name not in known:
            line = locate.text_line(path, name, flt.title) if path != "?" else None
            errors.append(LoadError(path, f"filter {flt.title!r} names rule {name!r}, which is not loaded{locate.did_you_mean(name, known)}",
                                    line))
    return errors


def _source(rule: SigmaRule | SigmaCorrelationRule) -> str:
    return str(rule.source.path) if rule.source is not None and rule.source.path is not None else ""
