"""Detection split at the state boundary: one logic for replay (state in memory) and the Kafka daemon (keyed state).

Why: the daemon's members each see a share of the partitions, so state kept per process or per partition only sees
part of a user's, key's or namespace's events. The work is therefore split in two:

* :class:`StatelessStage` runs once per event wherever the record was read: stateless enrichers, every single-event
  rule that reads no remembered fact, rule alerts. It then names the **scopes** the event feeds, one
  :class:`ScopeMessage` each: a correlation group (``c|<component>|<group values>``) or a stateful enricher's entity
  (``e|<enricher>|<entity>``: an API key id, a namespace, a target user, an AWS role).
* :class:`ScopedStage` runs where a scope's state lives, reading and writing only that scope's state through a
  :class:`KeyedState` (a dict in replay, the stream engine's per-key store in the daemon). Events wait in their
  scope until the **watermark** passes them and are then applied in (event time, event id) order, so the result does
  not depend on which partition or member delivered them, nor in which order.

Alert ids are those of :mod:`detections.alerts` (rule id + event id; correlation id + group + window start), so the
same records give the same alert id set in replay and in any number of daemons.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from temporal_siem.detections.alerts import rule_alert
from temporal_siem.detections.base import Detector
from temporal_siem.detections.correlation.compiled import CompiledCorrelation
from temporal_siem.detections.correlation.engine import FOREVER, CorrelationEngine, RejectedEvent, freeze
from temporal_siem.detections.correlation.timeutil import BadTimestamp, parse_micros
from temporal_siem.detections.enrichment import ApiKeyRegistry, ClientCaRegistry, RoleRegistry, build_enrichers
from temporal_siem.detections.enrichment.api_keys import CREATE_OPERATIONS, USED_KEY_FIELDS, _key_ids, _operation, sighted_targets
from temporal_siem.detections.enrichment.base import Enricher
from temporal_siem.detections.enrichment.client_ca import _fingerprints
from temporal_siem.detections.enrichment.roles import _target
from temporal_siem.detections.enrichment.workload import WorkloadSessions, workload_scopes
from temporal_siem.detections.sigma.ruleset import Ruleset
from temporal_siem.detections.sigma.values import EventFolds
from temporal_siem.kernel.metrics import CORRELATION_GROUPS
from temporal_siem.kernel.records import DeadLetter

log = logging.getLogger("detections.scoped")

NEVER = -(1 << 62)
META_KEY = "__meta__"
# Events waiting in one registry scope for the watermark, in encoded bytes: a scope is one keyed-state value (one
# changelog message, 1 MB at most by default), and a busy key can receive more than that within the grace.
PENDING_MAX_BYTES = 64 * 1024


class KeyedState(Protocol):
    """Per-scope state: the one seam between the shared logic and where state is kept."""

    def get(self, key: str) -> Any | None: ...

    def set(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryState:
    """Replay's store: a dict (the daemon uses the stream engine's RocksDB store with a changelog instead)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any | None:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


# ---- stateful enrichers: who owns which entity --------------------------------------------------------------

def _audit(event: dict[str, Any]) -> bool:
    return event.get("event.dataset") in (None, "temporal_cloud.audit") and event.get("event.outcome") != "failure"


def _api_key_entities(event: dict[str, Any]) -> list[str]:
    dataset = event.get("event.dataset")
    if dataset is not None and dataset != "temporal_cloud.audit":
        return []
    keys: list[str] = []
    # Created keys, and every key a successful call acts on (a sighting: first-seen ages), belong to their key's
    # scope; a namespace, user or service account acted on is no key (ApiKeyRegistry's KEY_TARGET_TYPES).
    creates = "temporal.target.id" in event and _operation(event) in CREATE_OPERATIONS
    keys.extend(_key_ids(event.get("temporal.target.id")) if creates else sighted_targets(event))
    for name in USED_KEY_FIELDS:
        value = event.get(name)
        if value is not None:
            ids = _key_ids(value)
            if ids:
                keys.append(ids[0])
                break
    return list(dict.fromkeys(keys))


def _namespace_entities(event: dict[str, Any]) -> list[str]:
    namespace = event.get("temporal.namespace")
    if not _audit(event) or not isinstance(namespace, str) or not namespace or _fingerprints(event) is None:
        return []
    return [namespace.lower()]


def _workload_entities(event: dict[str, Any]) -> list[str]:
    """One scope per role: a session ARN names its role, so a session and its role's workload flag (the two keys a
    stamp reads) live together, and no scope holds every session (one value: one changelog message)."""
    return workload_scopes(event)


def _role_entities(event: dict[str, Any]) -> list[str]:
    roles = event.get("user.changes.roles")
    if roles is None or not _audit(event):
        return []
    target = _target(event)
    return [target] if target is not None else []


@dataclass(frozen=True)
class StatefulEnricher:
    """A remembering enricher: its fields, the entities an event touches, and the map its snapshot keeps them in."""

    name: str
    factory: Callable[[], Enricher]
    outputs: frozenset[str]
    entities: Callable[[dict[str, Any]], list[str]]
    map_key: str
    # The enricher for one scope (entity) when it must know which: it then keeps only that entity's state itself and
    # stamps an event only in the first scope ``entities`` names, the one where the rules reading its fields run.
    for_entity: Callable[[str], Enricher] | None = None


STATEFUL_ENRICHERS: tuple[StatefulEnricher, ...] = (
    StatefulEnricher(ApiKeyRegistry.name, ApiKeyRegistry, frozenset({"temporal.api_key.created_at", "temporal.api_key.age_days",
                                                                     "temporal.api_key.first_seen", "temporal.api_key.age_source"}),
                     _api_key_entities, "created"),
    StatefulEnricher(WorkloadSessions.name, WorkloadSessions, frozenset({"temporal.session.origin", "temporal.session.human",
                                                                         "temporal.session.assumed_by", "temporal.session.workload_role"}),
                     _workload_entities, "sessions", lambda role: WorkloadSessions(only_role=role)),
    StatefulEnricher(ClientCaRegistry.name, ClientCaRegistry, frozenset({"temporal.client_ca_changed", "temporal.client_ca_added"}),
                     _namespace_entities, "bundles"),
    StatefulEnricher(RoleRegistry.name, RoleRegistry, frozenset({"temporal.roles_changed", "temporal.roles_added"}),
                     _role_entities, "roles"),
)
_STATEFUL_NAMES = frozenset(s.name for s in STATEFUL_ENRICHERS)


# ---- the plan: computed once per ruleset ----------------------------------------------------------------------

@dataclass
class Component:
    """Correlations chained to each other (an alert of one feeds another) share a scope, so chains stay whole."""

    name: str
    compiled: list[CompiledCorrelation]
    keyed: bool  # False: one scope for the whole component (group-by fields differ along the chain)
    refs: frozenset[str]


@dataclass
class ScopePlan:
    ruleset: Ruleset
    options: dict[str, Any]
    components: list[Component] = field(default_factory=list)
    component_of_ref: dict[str, list[Component]] = field(default_factory=dict)
    dependent: dict[str, frozenset[int]] = field(default_factory=dict)  # enricher name -> rule indices reading its fields
    stateful_rules: frozenset[int] = frozenset()

    @classmethod
    def build(cls, ruleset: Ruleset, options: dict[str, Any] | None = None) -> ScopePlan:
        plan = cls(ruleset, dict(options or {}))
        for spec in STATEFUL_ENRICHERS:
            plan.dependent[spec.name] = frozenset(r.index for r in ruleset.rules if spec.outputs & set(r.fields))
        plan.stateful_rules = frozenset(i for rules in plan.dependent.values() for i in rules)
        if ruleset.compiled_correlations:
            engine = CorrelationEngine(ruleset.compiled_correlations, {})
            plan.components = _components(engine.rules())
            for component in plan.components:
                for ref in component.refs:
                    plan.component_of_ref.setdefault(ref, []).append(component)
        return plan

    def engine(self, component: Component) -> CorrelationEngine:
        """A correlation engine over one component whose events wait for :meth:`CorrelationEngine.advance`."""
        options = dict(self.options.get("correlation") or {})
        options["allowed_lateness_seconds"] = -1  # unbounded: events wait for advance() (the watermark of the scope)
        return CorrelationEngine(list(component.compiled), options)


def _components(compiled: list[CompiledCorrelation]) -> list[Component]:
    identities = {c.rule_id: c for c in compiled}
    identities.update({c.name: c for c in compiled if c.name})
    parent = {c.rule_id: c.rule_id for c in compiled}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for corr in compiled:
        for keys in corr.ref_keys:
            for key in keys:
                upstream = identities.get(key)
                if upstream is not None:
                    parent[find(upstream.rule_id)] = find(corr.rule_id)
    groups: dict[str, list[CompiledCorrelation]] = {}
    for corr in compiled:
        groups.setdefault(find(corr.rule_id), []).append(corr)
    components = []
    for members in groups.values():
        members.sort(key=lambda c: c.rule_id)
        names = {c.group_by for c in members}
        chained = {k for c in members for k in (c.rule_id, c.name) if k}
        keyed = len(names) == 1
        if keyed and len(members) > 1:
            # Along a chain the upstream alert carries the group-by fields under their own names: no alias there.
            for corr in members:
                for index, keys in enumerate(corr.ref_keys):
                    if keys & chained and corr.group_fields[index] != corr.group_by:
                        keyed = False
        refs = frozenset(k for c in members for keys in c.ref_keys for k in keys if k not in chained)
        components.append(Component(members[0].rule_id, members, keyed, refs))
    return components


# ---- messages between the stages -------------------------------------------------------------------------------

@dataclass(slots=True)
class ScopeMessage:
    """One event for one scope. ``refs``: the rules it matched that this scope's correlations listen to."""

    key: str
    event: dict[str, Any]
    time: int  # event time, microseconds (NEVER when unusable: applied at once by enrichers)
    refs: list[str] = field(default_factory=list)
    forwarded: bool = False  # derived in another scope from an event accepted on time: never late

    def to_bytes(self) -> bytes:
        doc = {"e": self.event, "t": self.time, "r": self.refs, "f": self.forwarded}
        return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS, default=str)

    @classmethod
    def from_bytes(cls, key: str, data: bytes) -> ScopeMessage:
        doc = orjson.loads(data)
        return cls(key, doc["e"], int(doc["t"]), list(doc.get("r") or ()), bool(doc.get("f")))


def event_time_micros(event: dict[str, Any]) -> int:
    """``@timestamp`` in microseconds, NEVER when absent or unusable."""
    try:
        return parse_micros(event.get("@timestamp"))
    except BadTimestamp:
        return NEVER


def _event_id(event: dict[str, Any]) -> str:
    return CorrelationEngine._event_id(event)


def correlation_messages(plan: ScopePlan, event: dict[str, Any], refs: Iterable[str], when: int) -> list[ScopeMessage]:
    """The correlation scopes an event feeds: one message per (component, group values)."""
    matched = set(refs)
    out: dict[str, set[str]] = {}
    for component in {id(c): c for ref in matched for c in plan.component_of_ref.get(ref, ())}.values():
        for corr in component.compiled:
            for index, keys in enumerate(corr.ref_keys):
                hit = keys & matched
                if not hit:
                    continue
                if component.keyed:
                    values = []
                    for name in corr.group_fields[index]:
                        value = event.get(name)
                        if value is None or value == [] or value == ():
                            break
                        values.append(freeze(value))
                    else:
                        scope = "c|" + component.name + "|" + json.dumps(values, separators=(",", ":"), default=str)
                        out.setdefault(scope, set()).update(hit)
                else:
                    out.setdefault("c|" + component.name + "|*", set()).update(hit)
    return [ScopeMessage(key, event, when, sorted(hit)) for key, hit in out.items()]


def _entity_datasets() -> frozenset[str | None] | None:
    """The datasets the registries declare they work on (``Enricher.datasets``, held to ``enrich()`` by
    tests/rules/test_enricher_datasets.py): an ``entities`` function names an entity only for an event its enricher
    would take. None when one registry declares none (every event may then name an entity)."""
    found: set[str | None] = set()
    for spec in STATEFUL_ENRICHERS:
        declared = getattr(spec.factory, "datasets", None)
        if declared is None:
            return None
        found |= declared
    return frozenset(found)


#: See :func:`_entity_datasets`; ``tests/stream/test_scoped.py`` holds the gate below to the ``entities`` functions.
ENTITY_DATASETS = _entity_datasets()


def enrichment_messages(event: dict[str, Any], when: int) -> list[ScopeMessage]:
    """One message per registry scope the event touches. Most events (Windows, server logs, identity providers)
    touch none, and one set test says so where four ``entities`` calls would each find out (~0.7 µs an event)."""
    if ENTITY_DATASETS is not None:
        dataset = event.get("event.dataset")
        if dataset.__class__ is str and dataset not in ENTITY_DATASETS:
            return []
    return [ScopeMessage(f"e|{spec.name}|{entity}", event, when)
            for spec in STATEFUL_ENRICHERS for entity in spec.entities(event)]


# ---- stage 1: stateless ---------------------------------------------------------------------------------------

class StatelessStage:
    """Stateless enrichers and rules, once per event, then the scope messages (no state: runs on any member)."""

    def __init__(self, plan: ScopePlan) -> None:
        self.plan = plan
        self.enrichers = [e for e in build_enrichers() if e.name not in _STATEFUL_NAMES]
        self.events = 0
        self.matched = 0
        self.enrichment_errors = 0

    def process(self, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[ScopeMessage]]:
        """``enrich`` then ``match``: one record's events (the daemon's per-record path, ScopedDetector)."""
        self.enrich(events)
        alerts, messages, _ = self.match(events)
        return alerts, messages

    def enrich(self, events: list[dict[str, Any]]) -> None:
        """The stateless enrichers, each on its own event alone: a poll's events can go through in one call (the
        clock-skew gate then checks the poll's shared ``event.ingested`` stamp once) and match record by record."""
        for enricher in self.enrichers:
            try:
                enricher.enrich(events)
            except Exception:
                self.enrichment_errors += 1
                log.exception("enricher %s failed on a batch; matching without it", enricher.name)

    def match(self, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[ScopeMessage], int]:
        """Rules on enriched events: their alerts, their scope messages, and the latest event time among them
        (NEVER if none has a usable one), which moves the record's partition mark."""
        latest = NEVER
        ruleset = self.plan.ruleset
        rules, functions, dependent = ruleset.rules, ruleset.functions, self.plan.dependent
        alerts: list[dict[str, Any]] = []
        messages: list[ScopeMessage] = []
        for original in events:
            when = event_time_micros(original)
            if when > latest:
                latest = when
            remembered = enrichment_messages(original, when)
            # A rule reading a registry's fields runs in the registry's scope for the events the registry takes;
            # for every other event the registry adds nothing, so it runs here like any rule.
            skip: frozenset[int] | set[int] = frozenset()
            if remembered:
                skip = set()
                for name in {m.key.split("|", 2)[1] for m in remembered}:
                    skip.update(dependent.get(name, ()))
            event = ruleset.view(original)
            lane = ruleset.lane_for(event)
            cache = EventFolds(event)
            try:
                candidates = lane.index.candidates(event, cache)
            except Exception:
                candidates = set(lane.rules)
            hits = []
            for i in sorted(candidates):
                if i in skip:
                    continue
                try:
                    if functions[i](event, cache):
                        hits.append(i)
                except Exception:
                    continue
            refs: set[str] = set()
            for i in hits:
                rule = rules[i]
                self.matched += 1
                if rule.generate:
                    alerts.append(rule_alert(rule.meta, original))
                refs.update(rule.refs)
            if refs and self.plan.component_of_ref:
                messages.extend(correlation_messages(self.plan, original, refs, when))
            messages.extend(remembered)
        self.events += len(events)
        return alerts, messages, latest


# ---- stage 2: where a scope's state lives ------------------------------------------------------------------------

@dataclass
class ScopedResult:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    forward: list[ScopeMessage] = field(default_factory=list)  # enrichment-dependent matches feeding correlations
    dead: list[DeadLetter] = field(default_factory=list)


class ScopedStage:
    """Applies scope messages to their scope's state, in event-time order once the watermark has passed them.

    The caller owns the watermark (a minimum over sources, each minus its grace) and calls :meth:`advance` when
    it moves; :meth:`observe` refuses events older than it (late: counted and dead-lettered; their single-event
    rules already ran in the stateless stage). Which scopes have work waiting, and from when, is kept in the
    ``__meta__`` entry of the same store (so it moves and recovers with the scopes it describes).
    """

    #: How many correlation scopes keep their engine in memory between messages (see ``_apply_correlation``).
    ENGINE_CACHE = 4096

    def __init__(self, plan: ScopePlan) -> None:
        self.plan = plan
        self.components = {c.name: c for c in plan.components}
        self.enrichers = {s.name: s for s in STATEFUL_ENRICHERS}
        self.late = 0
        self.early = 0  # registry events applied before the watermark passed them (their scope's wait was full)
        self.applied = 0
        self.dirty = False
        self._engines: OrderedDict[str, tuple[str, CorrelationEngine]] = OrderedDict()

    # meta: {"w": watermark, "due": {scope: earliest time anything is due}}. ``dirty`` says whether it must be written
    # back: a scope became due or was applied. A watermark that moved without applying anything need not be durable
    # (after a restart the marks of the sources bring it back).
    @staticmethod
    def meta(store: KeyedState) -> dict[str, Any]:
        meta = store.get(META_KEY)
        if not isinstance(meta, dict):
            meta = {"w": NEVER, "due": {}}
        return meta

    def observe(self, store: KeyedState, meta: dict[str, Any], message: ScopeMessage) -> ScopedResult:
        result = ScopedResult()
        late = message.time != NEVER and message.time < meta["w"] and not message.forwarded
        if late and message.key.startswith("e|"):
            # A remembered fact must not miss an event (replay applies it whatever its time): applied at once,
            # out of event-time order, and counted.
            self.late += 1
            message.time = NEVER
        elif late:
            self.late += 1
            result.dead.append(RejectedEvent(message.event, "scope_late_event",
                                             f"event time is older than the watermark of scope {message.key}",
                                             list(message.refs)).to_dead_letter())
            return result
        state = store.get(message.key) or {}
        pending = state.setdefault("p", [])
        entry = [message.time, _event_id(message.event), message.event, message.refs]
        watermark = meta["w"]
        if message.key.startswith("e|"):
            entry.append(len(orjson.dumps(message.event, option=orjson.OPT_NON_STR_KEYS, default=str)))
            pending.append(entry)
            cut = _early_cut(pending)
            if cut > watermark:
                self.early += sum(1 for p in pending if NEVER < p[0] < cut and p[0] >= watermark)
                watermark = cut
        else:
            pending.append(entry)
        self._apply(store, meta, message.key, state, watermark, result)
        return result

    def advance(self, store: KeyedState, meta: dict[str, Any], watermark: int) -> ScopedResult:
        """Move the watermark; apply what it passed in every scope that has work due before it."""
        result = ScopedResult()
        if watermark <= meta["w"]:
            return result
        meta["w"] = watermark
        due = meta["due"]
        for key in sorted(k for k, t in due.items() if t < watermark):
            state = store.get(key)
            if state is None:
                due.pop(key, None)
                continue
            self._apply(store, meta, key, state, watermark, result)
        return result

    def _apply(self, store: KeyedState, meta: dict[str, Any], key: str, state: dict[str, Any], watermark: int,
               result: ScopedResult) -> None:
        self.dirty = True
        kind, name, _ = key.split("|", 2)
        if kind == "e":
            next_due = self._apply_enrichment(self.enrichers[name], key, state, watermark, result)
        else:
            next_due = self._apply_correlation(self.components[name], key, state, watermark, result)
        if next_due is None:
            meta["due"].pop(key, None)
        else:
            meta["due"][key] = next_due
        if state:
            store.set(key, state)
        else:
            store.delete(key)

    def _apply_enrichment(self, spec: StatefulEnricher, key: str, state: dict[str, Any], watermark: int,
                          result: ScopedResult) -> int | None:
        pending = state.get("p") or []
        ready = sorted((p for p in pending if p[0] < watermark or p[0] == NEVER), key=lambda p: (p[0], p[1]))
        if not ready:
            return min(p[0] for p in pending) if pending else None
        keep = [p for p in pending if not (p[0] < watermark or p[0] == NEVER)]
        entity = key.split("|", 2)[2]
        enricher = spec.factory() if spec.for_entity is None else spec.for_entity(entity)
        if state.get("r"):
            enricher.restore(state["r"].encode())
        ruleset = self.plan.ruleset
        dependent = self.plan.dependent.get(spec.name, frozenset())
        for item in ready:
            event = item[2]
            self.applied += 1
            try:
                enricher.enrich([event])
            except Exception:
                log.exception("enricher %s failed on an event", spec.name)
                continue
            if not dependent:
                continue
            if spec.for_entity is not None and spec.entities(event)[:1] != [entity]:
                continue  # the event's rules run in the one scope that stamps it
            view = ruleset.view(event)
            lane = ruleset.lane_for(view)
            cache = EventFolds(view)
            refs: set[str] = set()
            for i in sorted(dependent.intersection(lane.rules)):
                try:
                    if not ruleset.functions[i](view, cache):
                        continue
                except Exception:
                    continue
                rule = ruleset.rules[i]
                if rule.generate:
                    result.alerts.append(rule_alert(rule.meta, event))
                refs.update(rule.refs)
            if refs and self.plan.component_of_ref:
                for forward in correlation_messages(self.plan, event, refs, event_time_micros(event)):
                    forward.forwarded = True
                    result.forward.append(forward)
        snapshot = orjson.loads(enricher.snapshot() or b"{}")
        if entity != "*" and spec.for_entity is None:
            # keep this entity's entries of every map (creation, first sighting...), nobody else's
            snapshot = {name: ({k: v for k, v in value.items() if k == entity} if isinstance(value, dict) else value)
                        for name, value in snapshot.items()}
        if any(isinstance(value, dict) and value for value in snapshot.values()):
            state["r"] = orjson.dumps(snapshot).decode()
        else:
            state.pop("r", None)
        if keep:
            state["p"] = keep
        else:
            state.pop("p", None)
        return min(p[0] for p in keep) if keep else None

    def _apply_correlation(self, component: Component, key: str, state: dict[str, Any], watermark: int,
                           result: ScopedResult) -> int | None:
        saved = state.get("c")
        cached = self._engines.pop(key, None)
        if cached is not None and saved and cached[0] == saved:
            # The engine that wrote this very snapshot, kept in memory: restoring it again (parse, freeze every key and
            # waiting value, rebuild every group) was most of a scope message's cost, and grew with the scope's state.
            # Compared by content, so a snapshot another member wrote meanwhile (a rebalance), or one a failed
            # checkpoint rolled back, is restored as before.
            engine = cached[1]
        else:
            engine = self.plan.engine(component)
            if saved:
                engine.restore(saved.encode())
                # The open-groups gauge already counts this scope's groups: take back what restore() added, publish the change.
                CORRELATION_GROUPS.dec(engine._group_count)
                engine._published_groups = engine._group_count
        for t, _, event, refs in state.pop("p", None) or ():
            if NEVER < t < engine.watermark:  # forwarded from an enrichment scope: accepted on time there
                engine.watermark = t
            engine.observe(event, refs)
        result.alerts.extend(engine.finish() if watermark >= FOREVER else engine._run(watermark))
        result.dead.extend(r.to_dead_letter() for r in engine.take_rejected())
        engine._publish_groups()
        due = _next_due(engine)
        if due is None:
            state.pop("c", None)
        else:
            snapshot = state["c"] = engine.snapshot().decode()
            if self.ENGINE_CACHE > 0:
                self._engines[key] = (snapshot, engine)
                if len(self._engines) > self.ENGINE_CACHE:
                    self._engines.popitem(last=False)
        return due


def _early_cut(pending: list[list[Any]]) -> int:
    """A watermark for one registry scope whose waiting events pass :data:`PENDING_MAX_BYTES`: everything but the
    newest half of the budget is applied now (in event-time order; for events that arrive in order, as one key's
    mostly do, nothing changes). NEVER when they fit."""
    if sum(p[4] for p in pending if len(p) > 4) <= PENDING_MAX_BYTES:
        return NEVER
    kept = 0
    for p in sorted(pending, key=lambda p: (p[0], p[1]), reverse=True):
        kept += p[4] if len(p) > 4 else 0
        if kept > PENDING_MAX_BYTES // 2:
            return int(p[0]) + 1
    return NEVER


def _next_due(engine: CorrelationEngine) -> int | None:
    """The earliest watermark at which this engine has something to do; None when it holds nothing."""
    due = FOREVER
    holds = False
    for runner in engine._runners:
        if runner.pending:
            holds = True
            due = min(due, runner.pending[0][0])
        if runner.groups:
            holds = True
            front = runner.front_time()
            due = min(due, front + runner.corr.timespan_us if front < FOREVER else FOREVER)
    return due if holds else None


# ---- replay: both stages in one process, state in memory ----------------------------------------------------------

class ScopedDetector(Detector):
    """The daemon's detection logic run in one process with a :class:`MemoryState`.

    The watermark is the single source's: the latest event time minus ``correlation.allowed_lateness_seconds``
    (negative: unbounded, everything waits for :meth:`finish`).
    """

    def __init__(self, ruleset: Ruleset, options: dict[str, Any] | None = None) -> None:
        self.plan = ScopePlan.build(ruleset, options)
        self.stateless = StatelessStage(self.plan)
        self.scoped = ScopedStage(self.plan)
        self.store = MemoryState()
        lateness = (self.plan.options.get("correlation") or {}).get("allowed_lateness_seconds", 300.0)
        self.lateness = FOREVER if lateness is None or float(lateness) < 0 else int(float(lateness) * 1_000_000)
        self.max_seen = NEVER
        self._dead: list[DeadLetter] = []

    def process(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = []
        for event in events:
            single, messages = self.stateless.process([event])
            alerts.extend(single)
            meta = self.scoped.meta(self.store)
            queue = list(messages)
            while queue:
                result = self.scoped.observe(self.store, meta, queue.pop(0))
                alerts.extend(result.alerts)
                queue.extend(result.forward)
                self._dead.extend(result.dead)
            when = event_time_micros(event)
            if when != NEVER and when > self.max_seen:
                self.max_seen = when
                if self.lateness < FOREVER:
                    alerts.extend(self._advance(meta, when - self.lateness))
            self.store.set(META_KEY, meta)
        return alerts

    def _advance(self, meta: dict[str, Any], watermark: int) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = []
        result = self.scoped.advance(self.store, meta, watermark)
        queue = list(result.forward)
        alerts.extend(result.alerts)
        self._dead.extend(result.dead)
        while queue:
            more = self.scoped.observe(self.store, meta, queue.pop(0))
            alerts.extend(more.alerts)
            queue.extend(more.forward)
            self._dead.extend(more.dead)
            if meta["w"] > NEVER:
                again = self.scoped.advance(self.store, meta, meta["w"] + 1)
                alerts.extend(again.alerts)
                queue.extend(again.forward)
        return alerts

    def finish(self) -> list[dict[str, Any]]:
        meta = self.scoped.meta(self.store)
        alerts = self._advance(meta, FOREVER)
        self.store.set(META_KEY, meta)
        return alerts

    def take_dead_letters(self) -> list[DeadLetter]:
        dead, self._dead = self._dead, []
        return dead

    def rule_titles(self) -> dict[str, str]:
        titles = {r.id: r.meta.title for r in self.plan.ruleset.rules}
        titles.update({k: m.title for k, m in self.plan.ruleset.correlation_meta.items()})
        return titles

    def stats(self) -> dict[str, Any]:
        return {"events": self.stateless.events, "late_events": self.scoped.late, "scoped_applied": self.scoped.applied,
                "scopes": len(self.store.data) - (META_KEY in self.store.data)}
