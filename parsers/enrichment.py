"""ECS fields every parser's output gets in one place: ``user_agent.*`` and, when configured, ``source.geo/as``.

Why here and not in each parser: six formats carry a user agent and five a client IP; one pass after parsing
fills the same fields the same way Elastic's ``user_agent`` and ``geoip`` ingest processors do, so documents
indexed next to Elastic's integrations carry the same values.

* ``user_agent.name``, ``.version``, ``.os.name``, ``.os.version``, ``.os.full``, ``.device.name`` from
  ``user_agent.original`` with the maintained ``ua-parser`` (uap-core rules, the same ones Elasticsearch's
  processor uses), on its google-re2 native matcher. Like Elasticsearch, an agent or
  device the rules do not know is named ``Other``. Results are cached per distinct string (a fleet sends a handful
  of agents, so repeats cost a dictionary lookup). Strings over :data:`MAX_USER_AGENT` characters are not parsed.
  Fields a parser already set (Okta's own ``user_agent.os.name``) are kept.
* ``source.geo.*`` (``city_name``, ``continent_name``, ``country_iso_code``, ``country_name``,
  ``region_iso_code``, ``region_name``, ``location``) and ``source.as.number`` / ``source.as.organization.name``
  from MaxMind-format databases (GeoLite2/GeoIP2 City or Country, and ASN) named in the ``parsing.geoip`` config.
  No database configured, or one that cannot be opened, means no geo fields and never an error (a warning is
  logged once). Geo the vendor already wrote (Okta's ``geographicalContext``) is kept. Lookups are cached per IP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the config models pull in pydantic-settings; the hot path needs none of it
    from temporal_siem.kernel.config import GeoIPConfig

log = logging.getLogger(__name__)

MAX_USER_AGENT = 2048
_VENDOR_GEO_KEYS = ("source.geo.country_name", "source.geo.country_iso_code", "source.geo.city_name", "source.geo.location")

Fields = tuple[tuple[str, Any], ...]


@lru_cache(maxsize=1)
def _ua_parse() -> Callable[[str], Any] | None:
    """ua-parser on the google-re2 matcher (linear-time, already a dependency), built on first use.

    Measured against its Rust matcher (ua-parser-rs) on this code base: 0.094 vs 0.078 ms per uncached string but
    27 vs 45 MB resident after loading the rules, and every repeat is a cache hit here anyway; without re2 the
    library's default (pure Python, ~2.5 ms per string) is used. The matchers are the lazy ones: re2 picks the
    rule, and only that rule's Python pattern is compiled to extract the groups (the eager loader compiled all
    ~1,500 at start-up: 0.22 s of every replay and daemon start, for the same results).
    """
    try:
        import ua_parser
    except ImportError:  # pragma: no cover - a declared dependency; degrade to no user_agent.* fields
        log.warning("ua-parser is not installed: user_agent.* stays unparsed")
        return None
    try:
        from ua_parser.loaders import load_lazy_builtins
        from ua_parser.re2 import Resolver

        parse: Callable[[str], Any] = ua_parser.Parser(Resolver(load_lazy_builtins())).parse
    except ImportError:  # pragma: no cover - google-re2 is a declared dependency
        parse = ua_parser.parse
    return parse


def _version(*parts: str | None) -> str | None:
    """``major.minor.patch`` up to the first missing part, as Elasticsearch writes it."""
    kept: list[str] = []
    for part in parts:
        if not part:
            break
        kept.append(part)
    return ".".join(kept) or None


@lru_cache(maxsize=8192)
def user_agent_fields(original: str) -> Fields:
    """The ECS ``user_agent.*`` fields for one user-agent string (cached; an empty tuple when not parseable)."""
    parse = _ua_parse()
    if parse is None or not original or len(original) > MAX_USER_AGENT:
        return ()
    result = parse(original)
    fields: list[tuple[str, Any]] = []
    agent = result.user_agent
    fields.append(("user_agent.name", agent.family if agent and agent.family else "Other"))
    if agent:
        version = _version(agent.major, agent.minor, agent.patch, agent.patch_minor)
        if version:
            fields.append(("user_agent.version", version))
    system = result.os
    if system and system.family and system.family != "Other":
        fields.append(("user_agent.os.name", system.family))
        version = _version(system.major, system.minor, system.patch, system.patch_minor)
        if version:
            fields.append(("user_agent.os.version", version))
            fields.append(("user_agent.os.full", f"{system.family} {version}"))
        else:
            fields.append(("user_agent.os.full", system.family))
    device = result.device
    fields.append(("user_agent.device.name", device.family if device and device.family else "Other"))
    return tuple(fields)


class GeoIP:
    """Lookups in MaxMind-format databases; a database that is absent or unreadable contributes nothing."""

    def __init__(self, city_database: Path | None = None, asn_database: Path | None = None) -> None:
        self._city = self._open(city_database)
        self._asn = self._open(asn_database)
        self.lookup: Callable[[str], Fields] = lru_cache(maxsize=65536)(self._lookup)

    @property
    def enabled(self) -> bool:
        return self._city is not None or self._asn is not None

    @staticmethod
    def _open(path: Path | None) -> Any:
        if path is None:
            return None
        try:
            import maxminddb

            return maxminddb.open_database(str(path))
        except ImportError:  # pragma: no cover - a declared dependency
            log.warning("maxminddb is not installed: no geo fields")
        except (OSError, ValueError, RuntimeError) as exc:  # missing file; not a MaxMind DB (InvalidDatabaseError)
            log.warning("GeoIP database %s not usable (%s): no geo fields from it", path, exc)
        return None

    def _lookup(self, ip: str) -> Fields:
        fields: list[tuple[str, Any]] = []
        city = self._get(self._city, ip)
        if city:
            country = _mapping(city.get("country"))
            iso = _text(country.get("iso_code"))
            _add(fields, "source.geo.continent_name", _name(city.get("continent")))
            _add(fields, "source.geo.country_iso_code", iso)
            _add(fields, "source.geo.country_name", _name(country))
            subdivisions = city.get("subdivisions")
            region = _mapping(subdivisions[0]) if isinstance(subdivisions, list) and subdivisions else {}
            region_code = _text(region.get("iso_code"))
            if iso and region_code:
                fields.append(("source.geo.region_iso_code", f"{iso}-{region_code}"))
            _add(fields, "source.geo.region_name", _name(region))
            _add(fields, "source.geo.city_name", _name(city.get("city")))
            location = _mapping(city.get("location"))
            lat, lon = location.get("latitude"), location.get("longitude")
            if isinstance(lat, (int, float)) and isinstance(lon, (int, float)):
                fields.append(("source.geo.location", {"lat": float(lat), "lon": float(lon)}))
        asn = self._get(self._asn, ip)
        if asn:
            number = asn.get("autonomous_system_number")
            if isinstance(number, int) and not isinstance(number, bool):
                fields.append(("source.as.number", number))
            _add(fields, "source.as.organization.name", _text(asn.get("autonomous_system_organization")))
        return tuple(fields)

    @staticmethod
    def _get(reader: Any, ip: str) -> dict[str, Any] | None:
        if reader is None:
            return None
        try:
            record = reader.get(ip)
        except (ValueError, RuntimeError):  # not an IP this database can look up, or a corrupt data section
            return None
        return record if isinstance(record, dict) else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _name(value: Any) -> str | None:
    names = _mapping(_mapping(value).get("names"))
    return _text(names.get("en"))


def _add(fields: list[tuple[str, Any]], key: str, value: Any) -> None:
    if value is not None:
        fields.append((key, value))


class Enricher:
    """Applied by the router to every parsed event; cheap when there is nothing to add."""

    def __init__(self, geoip: GeoIPConfig | None = None) -> None:
        self.geoip: GeoIP | None = None
        if geoip is not None and (geoip.city_database or geoip.asn_database):
            candidate = GeoIP(geoip.city_database, geoip.asn_database)
            self.geoip = candidate if candidate.enabled else None

    def enrich(self, event: dict[str, Any]) -> None:
        original = event.get("user_agent.original")
        if isinstance(original, str) and "user_agent.name" not in event:
            for key, value in user_agent_fields(original):
                event.setdefault(key, value)
        if self.geoip is not None:
            ip = event.get("source.ip")
            if isinstance(ip, str) and not any(key in event for key in _VENDOR_GEO_KEYS):
                for key, value in self.geoip.lookup(ip):
                    event.setdefault(key, value)
