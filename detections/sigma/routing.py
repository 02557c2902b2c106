"""Event-side logsource tags for unrouted events (data: detections/pipelines/logsources.yml).

Rules are pruned only on conflict (rsigma's rule): a rule that sets a product/service/category different
from the event's tag is skipped; an untagged event keeps every rule. Besides speed this removes false
matches: a ``file_event`` rule testing ``Image|endswith`` would otherwise fire on process-creation events.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from temporal_siem.detections.sigma.files import SAFE_LOADER  # libyaml's parser: the pure-Python one took ~9 ms a read

LOGSOURCES_FILE = Path(__file__).resolve().parents[1] / "pipelines" / "logsources.yml"


class LogSource(NamedTuple):
    """A rule's logsource after its pipeline, as routing compares it: the three names of pySigma's
    ``SigmaLogSource``, kept as plain data so that a ruleset restored from the compiled-ruleset cache carries
    no pySigma object (and a start from it does not import pySigma)."""

    category: str | None = None
    product: str | None = None
    service: str | None = None

    @classmethod
    def of(cls, logsource: Any) -> LogSource | None:
        """The plain form of a pySigma ``SigmaLogSource`` (or of anything with those three attributes)."""
        if logsource is None:
            return None
        return cls(logsource.category, logsource.product, logsource.service)


@dataclass(frozen=True, slots=True)
class EventTag:
    product: str | None
    service: str | None
    categories: frozenset[str] | None  # None: unknown (no pruning); empty: in no category

    def admits(self, logsource: LogSource) -> bool:
        product = (logsource.product or "").lower()
        service = (logsource.service or "").lower()
        category = (logsource.category or "").lower()
        if product and self.product is not None and product != self.product:
            return False
        if service and self.service is not None and service != self.service:
            return False
        return not (category and self.categories is not None and category not in self.categories)


@dataclass(frozen=True, slots=True)
class _Source:
    product: str | None
    service: str | None
    category_by: str | None
    categories: dict[str, frozenset[str]]


class LogsourceTagger:
    """Maps an event to an :class:`EventTag` with a couple of dict probes."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self._by_field: dict[str, dict[str, _Source]] = {}
        for entry in entries:
            source = _Source(
                product=_lower(entry.get("product")),
                service=_lower(entry.get("service")),
                category_by=entry.get("category_by"),
                categories={str(k): frozenset(str(c).lower() for c in v) for k, v in (entry.get("categories") or {}).items()},
            )
            self._by_field.setdefault(str(entry["field"]), {})[str(entry["value"]).lower()] = source
        self._fields = tuple(self._by_field.items())
        #: Every event key ``tag`` reads: the fields, then the ``category_by`` keys. The tag is a function of
        #: their values alone (what lets the ruleset memoise lanes by them).
        self.key_fields: tuple[str, ...] = tuple(dict.fromkeys(
            [*self._by_field, *(s.category_by for table in self._by_field.values() for s in table.values() if s.category_by)]))
        self._tags: dict[tuple[Any, ...], EventTag] = {}

    @property
    def products(self) -> frozenset[str]:
        """The products events are tagged with (``windows``)."""
        return frozenset(s.product for table in self._by_field.values() for s in table.values() if s.product)

    def categories(self, product: str) -> frozenset[str]:
        """Every category some tag of ``product`` puts events in."""
        return frozenset(c for table in self._by_field.values() for s in table.values() if s.product == product
                         for members in s.categories.values() for c in members)

    def recognises(self, logsource: LogSource) -> bool:
        """Whether some tag admits a rule of this logsource on purpose: an entry with its product, its service
        (when it names one) and its category among the entry's (when it names one). What ``rules validate`` asks
        of a rule no dataset routes: such a rule runs on the events so tagged."""
        product = (logsource.product or "").lower()
        service = (logsource.service or "").lower() or None
        category = (logsource.category or "").lower() or None
        for table in self._by_field.values():
            for source in table.values():
                if not product or source.product != product or (service is not None and source.service != service):
                    continue
                if category is None or any(category in members for members in source.categories.values()):
                    return True
        return False

    @classmethod
    def load(cls, path: Path = LOGSOURCES_FILE) -> LogsourceTagger:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER) or {}
        return cls(list(data.get("event_logsources") or []))

    def tag(self, event: dict[str, Any]) -> EventTag | None:
        for field, table in self._fields:
            value = event.get(field)
            if value.__class__ is not str:
                continue
            source = table.get(value.lower())  # type: ignore[union-attr]
            if source is None:
                continue
            key_value = event.get(source.category_by) if source.category_by else None
            if key_value.__class__ is float and key_value.is_integer():  # type: ignore[union-attr]
                key_value = int(key_value)  # type: ignore[arg-type]
            key = (id(source), str(key_value).strip() if key_value is not None else None)
            cached = self._tags.get(key)
            if cached is None:
                categories = source.categories.get(key[1]) if key[1] is not None else None
                if categories is None and key[1] is not None:
                    categories = frozenset()
                cached = EventTag(source.product, source.service, categories)
                if len(self._tags) < 65536:
                    self._tags[key] = cached
            return cached
        return None


def _lower(value: Any) -> str | None:
    return str(value).lower() if value is not None else None


class WindowsEventView:
    """Plain Sigma field names for Windows events wrapped as evtx JSON or Winlogbeat (data: logsources.yml)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.markers = tuple(spec.get("markers") or ())
        self._marker_set = frozenset(self.markers)  # one C-level test per event instead of a loop over the markers
        self.strip = tuple(spec.get("strip") or ())
        self.rename = {str(k): str(v) for k, v in (spec.get("rename") or {}).items()}
        self.pairs = [(str(p["names"]), str(p["values"])) for p in spec.get("pairs") or ()]
        self.aliases = {str(k): str(v) for k, v in (spec.get("aliases") or {}).items()}

    @classmethod
    def load(cls, path: Path = LOGSOURCES_FILE) -> WindowsEventView | None:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER) or {}
        spec = data.get("event_views")
        return cls(spec) if spec else None

    def derives_from(self, fields: frozenset[str]) -> bool:
        """Whether a name this view adds may take its value from one of ``fields``."""
        sources = {*self.rename, *self.aliases, *(key for pair in self.pairs for key in pair)}
        return not fields.isdisjoint(sources) or any(name.startswith(self.strip) for name in fields)

    def view(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event itself when it is not wrapped; else a copy with the plain names added (originals win). A name
        with spaces (Defender's "Threat Name") is also added without them, the name Sigma rules use for it (the
        rules specification: a field "as it appears in the log source", all spaces stripped)."""
        if event.keys().isdisjoint(self._marker_set):
            return event
        out = dict(event)
        added: dict[str, Any] = {}
        for key, value in event.items():
            target = self.rename.get(key)
            if target is None:
                for prefix in self.strip:
                    if key.startswith(prefix):
                        target = key[len(prefix):]
                        break
            if target:
                added.setdefault(target, value)
        for names_key, values_key in self.pairs:
            names, values = event.get(names_key), event.get(values_key)
            if isinstance(names, list) and isinstance(values, list) and len(names) == len(values):
                for name, value in zip(names, values, strict=True):
                    if isinstance(name, str):
                        added.setdefault(name, value)
            elif isinstance(names, str):
                added.setdefault(names, values)
        for key, value in added.items():
            out.setdefault(key, value)
            if " " in key:  # Sigma's name for it: as shown, spaces removed ("Threat Name" -> ThreatName)
                out.setdefault(key.replace(" ", ""), value)
        for source, target in self.aliases.items():
            if source in out and target not in out:
                out[target] = out[source]
        return out
