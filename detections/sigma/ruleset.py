"""The compiled ruleset and the matching API.

A :class:`Ruleset` is built once (load, pipeline, compile, witness analysis) and shared: the Kafka daemon
keeps one detector per partition, so everything per-detector (counters, correlation windows) lives in the
detector and everything heavy (functions, indexes) lives here.

Routing: each rule has the datasets its logsource maps to (``tsiem.dataset`` from the pipeline) or none
(unrouted). An event goes to the lane of its ``event.dataset``: the rules routed to that dataset, or, when
no rule claims it (``json``, missing, unknown), the unrouted rules. Each lane has its own candidate index,
built on first use and cached.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporal_siem.detections.alerts import RuleMeta
from temporal_siem.detections.sigma.cache import RuleCache
from temporal_siem.detections.sigma.files import BUILTIN_RULES, LoadError
from temporal_siem.detections.sigma.index import CandidateIndex
from temporal_siem.detections.sigma.pipelines import (
    DATASET_ATTRIBUTE,
    build_pipeline,
    dataset_matches,
    dataset_patterns,
    pipeline_datasets,
)
from temporal_siem.detections.sigma.routing import EventTag, LogSource, LogsourceTagger, WindowsEventView
from temporal_siem.detections.sigma.runtime import LazyMatch
from temporal_siem.detections.sigma.values import EventFolds
from temporal_siem.detections.sigma.witness_types import Witnesses
from temporal_siem.kernel.flatten import flatten

if TYPE_CHECKING:  # pySigma (~80 ms to import with pyparsing) is imported where rules are loaded and compiled:
    # a ruleset restored from the compiled-ruleset cache never needs it
    from sigma.correlations import SigmaCorrelationRule
    from sigma.processing.pipeline import ProcessingPipeline
    from sigma.rule import SigmaRule

    from temporal_siem.detections.correlation.compiled import CompiledCorrelation

DATASET_FIELD = "event.dataset"
_LANE_CACHE_LIMIT = 4096
#: Value types a lane memo key may hold: hashable, and equal only when the tagger reads them alike given the type.
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


def _same(event: dict[str, Any]) -> dict[str, Any]:
    """``Ruleset.viewer()`` without a Windows view: the event as it is."""
    return event


@dataclass
class Lane:
    key: int
    rules: tuple[int, ...]
    index: CandidateIndex


_UNROUTED = Lane(-1, (), CandidateIndex((), {}))  # marker: "no dataset route, use the event tag"


@dataclass(slots=True)
class CompiledRule:
    index: int
    id: str
    name: str | None
    meta: RuleMeta
    match: Callable[[dict[str, Any], dict[int, Any]], bool]
    source_code: str
    fields: tuple[str, ...]
    witnesses: Witnesses
    datasets: tuple[str, ...] | None
    generate: bool = True
    warnings: tuple[str, ...] = ()
    rule: SigmaRule | None = field(default=None, repr=False)
    module_code: Any = field(default=None, repr=False)  # what ``match`` was built from (the ruleset cache stores it)
    logsource: LogSource | None = None  # after the pipeline: what event-side routing compares
    #: Each keyword (a value bound to no field, searched in every value) as (its literal characters, wildcards left
    #: out, folded unless the keyword is cased; whether it is cased), (None, False) for a number. A keyword holding
    #: a character some text cannot hold can never match that text (``SigmaDetector.accepts_deferred``).
    keywords: tuple[tuple[str | None, bool], ...] = ()

    @property
    def refs(self) -> tuple[str, ...]:
        return (self.id, self.name) if self.name else (self.id,)


@dataclass(frozen=True, slots=True)
class MatchedRule:
    """One rule that matched an event (what :meth:`SigmaEngine.match` returns)."""

    id: str
    title: str
    level: str
    meta: RuleMeta


def rule_meta(rule: SigmaRule | SigmaCorrelationRule, rule_id: str) -> RuleMeta:
    source = str(rule.source.path) if rule.source is not None and rule.source.path is not None else ""
    level = rule.level.name.lower() if rule.level is not None else "medium"
    status = rule.status.name.lower() if rule.status is not None else ""
    return RuleMeta(
        id=rule_id,
        title=rule.title,
        description=(rule.description or "").strip(),
        level=level,
        tags=tuple(str(t) for t in rule.tags),
        references=tuple(str(r) for r in rule.references),
        author=rule.author or "",
        status=status,
        falsepositives=tuple(str(f) for f in rule.falsepositives),
        source=source,
        extra={"name": rule.name} if rule.name else {},
    )


def rule_identifier(rule: SigmaRule | SigmaCorrelationRule) -> str:
    if rule.id is not None:
        return str(rule.id)
    if rule.name:
        return rule.name
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sigma:{rule.title}:{rule.source.path if rule.source else ''}"))


_PLACEHOLDER = re.compile(r"%[^%\s']+%")  # a Sigma placeholder named in a warning: where the file holds it


class Ruleset:
    """Compiled rules + lanes. Thread-safe for matching; build lanes lazily under a lock."""

    def __init__(self, rules: list[CompiledRule], correlations: list[SigmaCorrelationRule],
                 correlation_meta: dict[str, RuleMeta], errors: list[LoadError], known_datasets: tuple[str, ...] = (),
                 use_event_tags: bool = True, compiled_correlations: list[CompiledCorrelation] | None = None) -> None:
        """``compiled_correlations``: ``correlations`` as the engine runs them (``compile()`` and the cache hand them
        over; otherwise they are compiled here, raising ``CorrelationRuleError`` for one the engine refuses)."""
        self.rules = rules
        self.correlations = correlations  # pySigma's objects (empty in a ruleset restored from the cache)
        self.correlation_meta = correlation_meta
        if compiled_correlations is None and correlations:
            from temporal_siem.detections.correlation.compiled import compile_correlations

            compiled_correlations = compile_correlations(correlations, correlation_meta)
        #: What the correlation engine runs (immutable, shared by every detector of this ruleset).
        self.compiled_correlations: list[CompiledCorrelation] = compiled_correlations or []
        self.errors = errors
        self.known_datasets = tuple(known_datasets)
        self.duplicate_ids = 0
        self.functions = [r.match for r in rules]
        for rule in rules:  # a lazily compiled rule replaces its entry here on first use
            if isinstance(rule.match, LazyMatch):
                rule.match.rule, rule.match.functions = rule, self.functions
        self._patterns = sorted({p for r in rules for p in (r.datasets or ())} | set(known_datasets))
        self._lanes_by_rules: dict[tuple[int, ...], Lane] = {}
        self._lane_by_dataset: dict[Any, Lane] = {}
        self._generic_lanes: dict[EventTag | None, Lane] = {}
        self.tagger: LogsourceTagger | None = LogsourceTagger.load() if use_event_tags else None
        # Unrouted events (raw Windows JSON: all of them) by the values the tagger reads, to their lane: tagging
        # (lowering, a tuple key, a dataclass hash) was ~1 µs of each such event; this is two C maps and a probe.
        self._tag_fields: tuple[str, ...] = self.tagger.key_fields if self.tagger is not None else ()
        self._lane_by_tag_values: dict[tuple[Any, ...], Lane] = {}
        self._views = WindowsEventView.load() if use_event_tags else None
        self._lock = threading.Lock()

    # ---- construction ----------------------------------------------------------------------------------

    @classmethod
    def from_paths(cls, paths: Iterable[str | Path] = (), *, builtin_rules: bool = True,
                   pipelines: Iterable[str | Path] = (), filters: Iterable[str | Path] = (),
                   builtin_pipeline: bool = True, cache: RuleCache | None = None) -> Ruleset:
        """``cache``: a compiled-ruleset cache (detections/sigma/cache.py) for the detection path; the
        rule commands that need pySigma's objects (explain, validate, convert) load without one."""
        roots: list[str | Path] = [BUILTIN_RULES] if builtin_rules and BUILTIN_RULES.is_dir() else []
        roots.extend(paths)
        filters = list(filters)
        pipelines = list(pipelines)

        def build(files: Iterable[str | Path] = roots, filter_files: Iterable[str | Path] = filters,
                  listed: tuple[list[Path], list[Path]] | None = None) -> tuple[Ruleset, Any]:
            from temporal_siem.detections.sigma.loader import load_rules

            loaded = load_rules(files, filter_files, listed=listed)
            pipeline = build_pipeline(pipelines, builtin=builtin_pipeline)
            return cls.compile(loaded.rules, loaded.correlations, pipeline, loaded.errors, loaded.conditions), loaded

        with gc_paused():
            if cache is None:
                return build()[0]
            return cache.load_or_build(roots, filters, pipelines, builtin_pipeline, build)

    @classmethod
    def from_yaml(cls, text: str, *, pipelines: Iterable[str | Path] = (), builtin_pipeline: bool = True) -> Ruleset:
        """Rules from one YAML text (several documents allowed); for tests and the library API."""
        import yaml
        from sigma.collection import SigmaCollection
        from sigma.correlations import SigmaCorrelationRule
        from sigma.rule import SigmaRule

        _pysigma_fixes()

        collection = SigmaCollection.from_dicts(list(yaml.safe_load_all(text)), collect_errors=True)
        rules = [r for r in collection.rules if isinstance(r, SigmaRule) and not r.errors]
        correlations = [r for r in collection.rules if isinstance(r, SigmaCorrelationRule) and not r.errors]
        errors = [LoadError("<yaml>", "; ".join(str(e) for e in r.errors)) for r in collection.rules if r.errors]
        errors += [LoadError("<yaml>", str(e)) for e in collection.errors]
        return cls.compile(rules, correlations, build_pipeline(pipelines, builtin=builtin_pipeline), errors)

    @classmethod
    def compile(cls, rules: list[SigmaRule], correlations: list[SigmaCorrelationRule], pipeline: ProcessingPipeline,
                errors: list[LoadError] | None = None, parsed: dict[int, list[Any]] | None = None) -> Ruleset:
        """``parsed``: the condition trees the loader parsed, by ``id(rule)`` (``LoadedRules.conditions``), used
        for the rules no pipeline item changes (pySigma's parse is a deepcopy and a tree walk, every time)."""
        from temporal_siem.detections.sigma.compiler import (
            LAZY_MAX_DEPTH,
            LAZY_MAX_SOURCE,
            RuleCompileError,
            RuleCompiler,
            check_rule_size,
            condition_depth,
        )
        from temporal_siem.detections.sigma.witness import rule_witnesses

        _pysigma_fixes()
        errors = list(errors or [])
        compiler = RuleCompiler()
        referenced_only_quietly = _quiet_rules(correlations)
        compiled: list[CompiledRule] = []
        seen_ids: dict[str, str] = {}  # id or name -> file of the rule that has it
        duplicates = 0
        for rule in rules:
            source = _source_path(rule)
            rule_id = rule_identifier(rule)
            clash = _clash(rule, rule_id, seen_ids)
            if clash is not None:
                kind, key = clash
                errors.append(LoadError(source, f"rule {rule.title!r}: duplicate rule {kind} {key}: {seen_ids[key]} has it too "
                                                "(the first one loaded is kept; give this rule its own)",
                                        _key_line(source, kind, rule)))
                duplicates += 1
                continue
            try:
                check_rule_size(rule)
                processed = rule  # the pipeline edits the rule in place: compile() owns the rules it is given
                pipeline.apply(processed)
                # The loader's parse of the conditions still holds when no pipeline item touched the rule.
                trees = parsed.get(id(rule)) if parsed is not None and not any(pipeline.applied) else None
                if trees is None:  # pySigma re-parses on every access: once here, after the pipeline
                    trees = [condition.parsed for condition in processed.detection.parsed_condition]
                code = compiler.compile_source(processed, trees)
                function: Any
                if condition_depth(trees) <= LAZY_MAX_DEPTH and len(code.source) <= LAZY_MAX_SOURCE:
                    function, module = LazyMatch(code.source, code.namespace, f"<rule {rule_id}>"), None
                else:  # as compiler.build, keeping the code
                    module = compile(code.source, f"<rule {rule_id}>", "exec")
                    namespace = dict(code.namespace)
                    exec(module, namespace)
                    function = namespace["match"]
                witnesses = rule_witnesses(processed, trees)
            except RuleCompileError as exc:
                errors.append(LoadError(source, f"rule {rule.title!r}: {exc}"))
                continue
            except Exception as exc:  # a pipeline or pySigma error for this rule only
                errors.append(LoadError(source, f"rule {rule.title!r}: {type(exc).__name__}: {exc}"))
                continue
            seen_ids[rule_id] = source
            if rule.name:
                seen_ids.setdefault(rule.name, source)
            compiled.append(CompiledRule(
                index=len(compiled), id=rule_id, name=rule.name, meta=rule_meta(rule, rule_id), match=function,
                source_code=code.source, fields=code.fields, witnesses=witnesses,
                datasets=dataset_patterns(processed.custom_attributes.get(DATASET_ATTRIBUTE)),
                generate=not (rule_id in referenced_only_quietly or (rule.name or "\x00") in referenced_only_quietly),
                warnings=tuple(code.warnings), rule=processed, module_code=module,
                logsource=LogSource.of(processed.logsource), keywords=code.keywords,
            ))
        processed_correlations: list[SigmaCorrelationRule] = []
        correlation_meta: dict[str, RuleMeta] = {}
        cycle = _correlation_cycle(correlations)
        for corr in correlations:
            source = _source_path(corr)
            if id(corr) in cycle:  # pySigma would recurse through the references until the stack runs out
                errors.append(LoadError(source, f"correlation {corr.title!r}: correlation rules reference each other in a cycle: "
                                                f"{' -> '.join(cycle[id(corr)])}", _key_line(source, "correlation", corr)))
                continue
            try:
                processed_corr = copy.deepcopy(corr)
                pipeline.apply(processed_corr)
            except Exception as exc:
                errors.append(LoadError(source, f"correlation {corr.title!r}: {type(exc).__name__}: {exc}"))
                continue
            processed_correlations.append(processed_corr)
            corr_id = rule_identifier(corr)
            correlation_meta[corr_id] = rule_meta(corr, corr_id)
            if corr.name:
                correlation_meta[corr.name] = correlation_meta[corr_id]
        for entry in compiled:
            correlation_meta.setdefault(entry.id, entry.meta)
            if entry.name:
                correlation_meta.setdefault(entry.name, entry.meta)
        # What the engine runs, compiled here so that a correlation it cannot evaluate (a percentile past 100, a
        # numeric type over several fields...) is a load error with its file and line like any other, not an
        # exception when a detector is built.
        from temporal_siem.detections.correlation.compiled import CorrelationRuleError, compile_correlations

        runnable: list[SigmaCorrelationRule] = []
        compiled_correlations: list[CompiledCorrelation] = []
        for corr in processed_correlations:
            try:
                compiled_correlations.extend(compile_correlations([corr], correlation_meta))
            except CorrelationRuleError as exc:
                source = _source_path(corr)
                errors.append(LoadError(source, str(exc), _key_line(source, "correlation", corr)))
                corr_id = rule_identifier(corr)
                for name in (corr_id, corr.name or ""):
                    if name in correlation_meta and correlation_meta[name].id == corr_id:
                        del correlation_meta[name]
                continue
            runnable.append(corr)
        ruleset = cls(compiled, runnable, correlation_meta, errors, pipeline_datasets(pipeline),
                      compiled_correlations=compiled_correlations)
        ruleset.duplicate_ids = duplicates
        return ruleset

    def load_warnings(self) -> list[LoadError]:
        """Rules that loaded but cannot match as written (today: an unresolved ``|expand`` placeholder, whose value
        matches nothing), one entry per warning with ``file:line`` (the placeholder's line, else the rule's).

        Why: such a rule runs, so it is no load error that stops the run, but a rule the user named must not be
        silently inert either. ``replay`` prints these and the daemon logs them (``rules list`` also shows them)."""
        return [LoadError(rule.meta.source or "<yaml>", f"{rule.meta.title}: {warning}", line)
                for rule in self.rules for warning, line in self.rule_warnings(rule)]

    @staticmethod
    def rule_warnings(rule: CompiledRule) -> list[tuple[str, int | None]]:
        """One rule's warnings, each with its line in the rule's file (None for a rule given as text)."""
        from temporal_siem.detections.sigma import locate

        source = rule.meta.source
        found: list[tuple[str, int | None]] = []
        for warning in rule.warnings:
            line = None
            if source and source != "<yaml>":
                placeholder = _PLACEHOLDER.search(warning)
                if placeholder is not None:
                    line = locate.text_line(source, placeholder.group(), rule.meta.title, rule.id)
                if line is None:
                    line = locate.rule_line(source, rule.meta.title, rule.id)
            found.append((warning, line))
        return found

    # ---- lanes -----------------------------------------------------------------------------------------

    def routing_reads(self, fields: frozenset[str]) -> bool:
        """Whether choosing an event's lane may read one of ``fields``: its dataset, the Windows tag's fields,
        or a name the Windows view makes from one (rules read the view). What a parser leaves pending until an
        event needs it (``SigmaDetector.accepts_deferred``) must be none of these."""
        if "event.dataset" in fields or not fields.isdisjoint(self._tag_fields):
            return True
        return self._views is not None and self._views.derives_from(fields)

    def view(self, event: dict[str, Any]) -> dict[str, Any]:
        """What the rules see: the event, or for wrapped Windows events (evtx JSON, Winlogbeat) a copy with the
        plain Sigma names added. Alerts are built from the event itself."""
        return self._views.view(event) if self._views is not None else event

    def viewer(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """:meth:`view` as the one call it makes: a loop over a batch saves a Python frame an event."""
        return self._views.view if self._views is not None else _same

    def lane_for(self, event: dict[str, Any]) -> Lane:
        """The lane of an event: its dataset's routed rules, or the unrouted rules its logsource tag admits."""
        dataset = event.get(DATASET_FIELD)
        try:
            lane = self._lane_by_dataset.get(dataset)
        except TypeError:  # unhashable dataset value (a list): resolve without the cache
            lane = None
        if lane is None:
            lane = self._resolve_dataset(dataset)
        if lane is not _UNROUTED:
            return lane
        values = tuple(map(event.get, self._tag_fields))
        types = tuple(map(type, values))  # part of the key: True == 1 as a key, yet the tagger reads "True" and "1"
        key: tuple[Any, ...] | None = (values, types) if _PLAIN_TYPES.issuperset(types) else None  # lists: unhashable
        if key is not None:
            generic = self._lane_by_tag_values.get(key)
            if generic is not None:
                return generic
        tag = self.tagger.tag(event) if self.tagger is not None else None
        generic = self._generic_lanes.get(tag)
        if generic is None:
            generic = self._generic_lane(tag)
        if key is not None and len(self._lane_by_tag_values) < _LANE_CACHE_LIMIT:
            self._lane_by_tag_values[key] = generic
        return generic

    def lane(self, dataset: Any) -> Lane:
        """The lane for a dataset value alone (untagged events)."""
        return self.lane_for({DATASET_FIELD: dataset})

    def _resolve_dataset(self, dataset: Any) -> Lane:
        text = dataset if isinstance(dataset, str) else (str(dataset[0]) if isinstance(dataset, list) and dataset else "")
        claimed = [p for p in self._patterns if text and dataset_matches(p, text)]
        if claimed:
            members = tuple(r.index for r in self.rules
                            if r.datasets is not None and any(dataset_matches(p, text) for p in r.datasets))
            lane = self._lane(members)
        else:
            lane = _UNROUTED
        try:
            if len(self._lane_by_dataset) < _LANE_CACHE_LIMIT:
                self._lane_by_dataset[dataset] = lane
        except TypeError:
            pass
        return lane

    def _generic_lane(self, tag: EventTag | None) -> Lane:
        members = tuple(r.index for r in self.rules
                        if r.datasets is None and (tag is None or r.logsource is None or tag.admits(r.logsource)))
        lane = self._lane(members)
        self._generic_lanes[tag] = lane
        return lane

    def _lane(self, members: tuple[int, ...]) -> Lane:
        with self._lock:
            lane = self._lanes_by_rules.get(members)
            if lane is None:
                index = CandidateIndex.build([(i, self.rules[i].witnesses, self.rules[i].fields) for i in members])
                lane = Lane(len(self._lanes_by_rules), members, index)
                self._lanes_by_rules[members] = lane
        return lane

    @property
    def lanes(self) -> list[Lane]:
        return list(self._lanes_by_rules.values())

    # ---- matching --------------------------------------------------------------------------------------

    def candidates(self, event: dict[str, Any], cache: dict[int, Any] | None = None) -> set[int]:
        event = self.view(event)
        lane = self.lane_for(event)
        return lane.index.candidates(event, EventFolds(event) if cache is None else cache)

    def match_indices(self, event: dict[str, Any], *, full_scan: bool = False) -> list[int]:
        """Indices of the rules that match a flat event (``full_scan`` skips the index: the reference)."""
        event = self.view(event)
        lane = self.lane_for(event)
        cache = EventFolds(event)
        pool = lane.rules if full_scan else sorted(lane.index.candidates(event, cache))
        functions = self.functions
        return [i for i in pool if functions[i](event, cache)]

    def match_many(self, events: list[dict[str, Any]]) -> list[list[int]]:
        """``[match_indices(e) for e in events]`` the way the detector selects candidates: each lane's events in
        one ``candidates_many`` call (the differential tests hold it to the full scan, the flat bench times it)."""
        views = list(map(self.viewer(), events))
        groups: dict[int, tuple[Lane, list[int]]] = {}
        for position, event in enumerate(views):
            lane = self.lane_for(event)
            groups.setdefault(lane.key, (lane, []))[1].append(position)
        functions = self.functions
        out: list[list[int]] = [[] for _ in events]
        for lane, positions in groups.values():
            batch = [views[p] for p in positions]
            caches = [EventFolds(event) for event in batch]
            found = lane.index.candidates_many(batch, caches)
            for p, event, cache, candidates in zip(positions, batch, caches, found, strict=True):
                if candidates:
                    out[p] = [i for i in sorted(candidates) if functions[i](event, cache)]
        return out


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a rule set is built, back on (if it was) afterwards.

    Why: a load allocates about a million objects that all stay alive (pySigma's rules, condition trees,
    generated namespaces); each automatic collection rescans the growing heap for cycles it cannot find, which
    was a fifth of a cold load of the SigmaHQ corpus. Reference counting still frees everything acyclic; the few
    cycles the load leaves behind (pySigma's parent links) wait for the next automatic collection.

    On the way out, everything the load allocated is moved straight to the oldest generation
    (``gc.freeze()`` then ``gc.unfreeze()``: a list splice, no scan). Otherwise the first allocation after
    re-enabling ran a young collection over the whole new heap (~0.27 s of a corpus load, rescanning a million
    live objects to free the ~90,000 in those cycles), and its survivors were scanned once more by the middle
    generation. Now the rule set and that garbage wait for the next full collection, which scans them either way.
    Skipped when something else froze objects (the ``unfreeze`` would thaw them too).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


def _clash(rule: SigmaRule, rule_id: str, seen: dict[str, str]) -> tuple[str, str] | None:
    """("id"|"name", key) when this rule's id or name is already taken by a loaded rule."""
    if rule_id in seen:
        return "id", rule_id
    if rule.name and rule.name in seen:
        return "name", rule.name
    return None


def _source_path(rule: SigmaRule | SigmaCorrelationRule) -> str:
    """The file a rule came from, or ``<yaml>`` for one given as text (what a load error names)."""
    return str(rule.source.path) if rule.source is not None and rule.source.path is not None else "<yaml>"


def _correlation_cycle(correlations: list[SigmaCorrelationRule]) -> dict[int, list[str]]:
    """The correlation rules (by ``id()``) that reach themselves through the rules they reference, each with the
    cycle it is on (names as written); empty when there is none."""
    by_key: dict[str, SigmaCorrelationRule] = {}
    for corr in correlations:
        for key in (str(corr.id) if corr.id else None, corr.name):
            if key:
                by_key.setdefault(key, corr)

    def targets(corr: SigmaCorrelationRule) -> list[SigmaCorrelationRule]:
        refs = [getattr(ref, "reference", ref) for ref in corr.rules or []]
        return [by_key[str(ref)] for ref in refs if str(ref) in by_key]

    def label(corr: SigmaCorrelationRule) -> str:
        return corr.name or (str(corr.id) if corr.id else corr.title)

    found: dict[int, list[str]] = {}
    for start in correlations:
        path = [start]
        stack = [iter(targets(start))]
        seen = {id(start)}
        while stack:  # depth first from ``start``, looking for ``start`` again
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                path.pop()
                continue
            if step is start:
                found[id(start)] = [label(c) for c in path] + [label(start)]
                break
            if id(step) not in seen:
                seen.add(id(step))
                path.append(step)
                stack.append(iter(targets(step)))
    return found


def _key_line(source: str, key: str, rule: SigmaRule | SigmaCorrelationRule) -> int | None:
    from temporal_siem.detections.sigma import locate

    return locate.key_line(source, key, rule.title, str(rule.id) if rule.id else None) if source != "<yaml>" else None


def _pysigma_fixes() -> None:
    """The loader's changes to pySigma (exact UTF-16 modifiers, its faster string parse: ``loader.py``) apply on
    import. Rules parsed outside the loader (``from_yaml``, a library caller's own ``SigmaCollection``) had them
    because importing this package imported the loader; it no longer does (a warm start does without pySigma),
    so the paths that parse or compile rules import it."""
    import temporal_siem.detections.sigma.loader  # noqa: F401  (imported for its effect on pySigma)


def building_block_refs(correlations: list[SigmaCorrelationRule]) -> set[str]:
    """Ids/names of the building blocks: base rules that only feed correlations (``generate: false``) and raise
    no alert of their own (``rules convert`` exports them as such)."""
    return _quiet_rules(correlations)


def _quiet_rules(correlations: list[SigmaCorrelationRule]) -> set[str]:
    """Ids/names of base rules referenced only by correlations with ``generate: false``."""
    quiet: set[str] = set()
    loud: set[str] = set()
    for corr in correlations:
        for ref in corr.rules or []:
            target = getattr(ref, "rule", None)
            keys = {ref.reference}
            if target is not None:
                if target.id is not None:
                    keys.add(str(target.id))
                if target.name:
                    keys.add(target.name)
            (loud if corr.generate else quiet).update(keys)
    return quiet - loud


def as_flat_event(event: Any) -> dict[str, Any]:
    """Accepts a flat dict, a nested dict or a pydantic model."""
    if hasattr(event, "model_dump"):
        event = event.model_dump(by_alias=True, exclude_none=True)
    if not isinstance(event, dict):
        raise TypeError(f"an event must be a dict or a pydantic model, not {type(event).__name__}")
    if any(isinstance(v, dict) for v in event.values()) or any(
            isinstance(v, list) and any(isinstance(m, dict) for m in v) for v in event.values()):
        return flatten(event)
    return event


class SigmaEngine:
    """Library API: ``SigmaEngine.from_paths([...]).match(event) -> list[MatchedRule]``."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset

    @classmethod
    def from_paths(cls, paths: Iterable[str | Path] = (), **kwargs: Any) -> SigmaEngine:
        kwargs.setdefault("builtin_rules", False)
        return cls(Ruleset.from_paths(paths, **kwargs))

    @classmethod
    def from_yaml(cls, text: str, **kwargs: Any) -> SigmaEngine:
        return cls(Ruleset.from_yaml(text, **kwargs))

    @property
    def errors(self) -> list[LoadError]:
        return self.ruleset.errors

    def match(self, event: Any) -> list[MatchedRule]:
        flat = as_flat_event(event)
        rules = self.ruleset.rules
        return [MatchedRule(rules[i].id, rules[i].meta.title, rules[i].meta.level, rules[i].meta)
                for i in self.ruleset.match_indices(flat)]
