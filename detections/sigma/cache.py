"""A compiled-ruleset cache: what a cold load of thousands of rules computes (pySigma parsing, pipelines,
code generation, ``compile()``, witness analysis), stored once so the next start skips it.

Why a cache: a cold load of the SigmaHQ corpus spends seconds in pySigma and ``compile()``; the result depends
only on the rule files, the pipelines and this engine's own code. The cache is keyed by all three (file paths
and contents, pipeline contents, a hash of the engine's source files and of the library versions it relies on):
anything stale, corrupt, truncated or written by another version is rebuilt, never trusted.

Format: one file per rule set (named by the rule roots and options), ``HMAC-SHA256 || marshal(payload)``.
``marshal`` carries the generated functions' code objects (the expensive part) and plain data; it is only
read after the HMAC, keyed by a random per-directory key (``key``, mode 0600) that this process wrote, has
verified, so a file we did not write is never unmarshalled. Compiled constants (regexes, automata, networks)
are stored as data and rebuilt; any other matcher object the compiler puts in a rule's namespace is pickled
inside the same verified payload (never read before the HMAC check).

What is cached: detection rules, and correlation rules as the engine runs them (``CompiledCorrelation``: plain
fields, the extended condition as a tree). A warm start imports no pySigma. Load errors are stored with the rules
(a correlation the engine refuses is one), so a warm start reports them as a cold one does. Rule sets with filters
or duplicate rule ids are not cached at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import ipaddress
import marshal
import os
import pickle
import re
import sys
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ahocorasick

from temporal_siem.detections.alerts import RuleMeta
from temporal_siem.detections.sigma.files import LoadError, rule_files
from temporal_siem.detections.sigma.routing import LogSource
from temporal_siem.detections.sigma.runtime import RUNTIME, LazyMatch, LinearRegex
from temporal_siem.detections.sigma.witness_types import witnesses_from_plain, witnesses_to_plain

try:
    import re2
except ImportError:  # the compiler falls back to Python's re; so do we
    re2 = None

if TYPE_CHECKING:
    from temporal_siem.detections.correlation.compiled import CompiledCorrelation
    from temporal_siem.detections.sigma.ruleset import CompiledRule, Ruleset

FORMAT = 4  # 2: a rule not compiled yet is stored as its source (LazyMatch); 3: correlations as compiled data; 4: keywords
CACHE_ENV = "TSIEM_CACHE_DIR"  # where the cache lives; "off" disables it
_ENGINE_DIR = Path(__file__).resolve().parent
_CONSTANT = re.compile(r"_k\d+\Z")


class Uncacheable(Exception):
    """The built rule set holds something the cache cannot store as data; it is then simply not cached."""


def cache_dir() -> Path | None:
    """``$TSIEM_CACHE_DIR``, else the user's cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``)."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return None if configured.strip().lower() in ("", "off", "0", "none") else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "temporal-siem" / "rulesets"


_engine_version: str | None = None


def engine_version() -> str:
    """A hash of what a compiled rule depends on besides its file: this engine's source and data files,
    and the versions of Python and the libraries whose objects the generated code uses."""
    global _engine_version
    if _engine_version is None:
        digest = hashlib.sha256(f"format {FORMAT}\0{sys.version}\0".encode())
        for dist in ("pySigma", "pyahocorasick", "google-re2", "hyperscan"):
            try:
                digest.update(f"{dist} {metadata.version(dist)}\0".encode())
            except metadata.PackageNotFoundError:
                digest.update(f"{dist} -\0".encode())
        engine_files = (sorted(_ENGINE_DIR.glob("*.py")) + sorted((_ENGINE_DIR.parent / "pipelines").glob("*"))
                        + sorted((_ENGINE_DIR.parent / "correlation").glob("*.py")))
        engine_files.append(_ENGINE_DIR.parent / "alerts.py")
        for path in engine_files:
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        _engine_version = digest.hexdigest()
    return _engine_version


class RuleCache:
    """One cache directory. ``load_or_build`` is the only entry point the ruleset needs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.last: str = "off"  # "hit", "miss" or "off" (not cacheable): for benchmarks and tests

    # ---- key and file ------------------------------------------------------------------------------

    def _secret(self) -> bytes:
        """The per-directory HMAC key: created once with 0600, never leaves the directory."""
        path = self.directory / "key"
        try:
            data = path.read_bytes()
            if len(data) == 32:
                return data
        except FileNotFoundError:
            pass
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        secret = os.urandom(32)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".key-")
        try:
            os.write(fd, secret)
            os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path.read_bytes()  # another process may have won the race: use what is on disk

    @staticmethod
    def content_key(files: list[Path], filter_files: list[Path], pipelines: list[Path], builtin_pipeline: bool) -> str:
        digest = hashlib.sha256(f"{engine_version()}\0builtin-pipeline={builtin_pipeline}\0".encode())
        for label, group in (("rule", files), ("filter", filter_files), ("pipeline", pipelines)):
            for path in group:
                data = path.read_bytes()
                digest.update(f"{label}\0{path}\0{len(data)}\0".encode() + data)
        return digest.hexdigest()

    def _slot(self, roots: list[str | Path], filters: list[str | Path], pipelines: list[Path], builtin: bool) -> Path:
        name = hashlib.sha256(repr(([str(Path(r).resolve()) for r in roots], [str(Path(f).resolve()) for f in filters],
                                    [str(p.resolve()) for p in pipelines], builtin)).encode()).hexdigest()[:32]
        return self.directory / f"ruleset-{name}.bin"

    def _read(self, path: Path, key: str) -> dict[str, Any] | None:
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        if len(blob) < 32:
            return None
        mac, payload = blob[:32], blob[32:]
        try:
            secret = self._secret()
        except OSError:  # a cache directory we cannot write: work without the cache
            return None
        if not hmac.compare_digest(mac, hmac.new(secret, payload, hashlib.sha256).digest()):
            return None
        try:
            data = marshal.loads(payload)
        except (ValueError, EOFError, TypeError):
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
            return None
        return data

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        payload = marshal.dumps(data)
        mac = hmac.new(self._secret(), payload, hashlib.sha256).digest()
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".ruleset-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(mac + payload)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # ---- load or build -----------------------------------------------------------------------------

    def load_or_build(self, roots: list[str | Path], filters: list[str | Path], pipelines: list[str | Path],
                      builtin_pipeline: bool, build: Callable[..., tuple[Ruleset, Any]]) -> Ruleset:
        """The ruleset from the cache when its key matches, else ``build()`` (then stored for next time).

        ``build`` returns the ruleset and the loaded rules it came from (``build(listed=(files, filter_files))``
        reuses the listing the key was made from).
        """
        try:
            files = rule_files(roots)
            filter_files = rule_files(filters)
            pipeline_paths = [Path(p) for p in pipelines]
            key = self.content_key(files, filter_files, pipeline_paths, builtin_pipeline)
            slot = self._slot(roots, filters, pipeline_paths, builtin_pipeline)
        except OSError:  # an unreadable file: the normal path reports it as a load error
            self.last = "off"
            return build()[0]
        data = self._read(slot, key)
        if data is not None:
            try:
                ruleset = _restore(data)
            except Exception:
                ruleset = None
            if ruleset is not None:
                self.last = "hit"
                return ruleset
        ruleset, loaded = build(listed=(files, filter_files))
        try:
            payload = _describe(ruleset, loaded, key)
        except Uncacheable:
            self.last = "off"
            return ruleset
        self.last = "miss"
        with contextlib.suppress(OSError):
            self._write(slot, payload)
        return ruleset


# ---- ruleset <-> data ----------------------------------------------------------------------------------


def _describe(ruleset: Ruleset, loaded: Any, key: str) -> dict[str, Any]:
    if loaded.filters or ruleset.duplicate_ids:
        raise Uncacheable("filters or duplicate rule ids")
    rule_metas = {id(rule.meta) for rule in ruleset.rules}
    return {
        "format": FORMAT, "key": key, "rules": [_describe_rule(rule) for rule in ruleset.rules],
        # Compiled with the ruleset: one the engine refuses is a load error, stored with the others below.
        "correlations": [_describe_correlation(corr) for corr in ruleset.compiled_correlations],
        # The correlations' own entries (the rules' are rebuilt from the rules, as compile() adds them after these)
        "correlation_meta": [(name, _meta_to_plain(meta)) for name, meta in ruleset.correlation_meta.items()
                             if id(meta) not in rule_metas],
        "errors": [dataclasses.astuple(e) for e in ruleset.errors], "known_datasets": tuple(ruleset.known_datasets),
    }


def _meta_to_plain(meta: RuleMeta) -> tuple[Any, ...]:
    return (meta.id, meta.title, meta.description, meta.level, meta.tags, meta.references, meta.author, meta.status,
            meta.falsepositives, meta.source, dict(meta.extra))


def _meta_from_plain(plain: tuple[Any, ...]) -> RuleMeta:
    (rule_id, title, description, level, tags, references, author, status, falsepositives, source, extra) = plain
    return RuleMeta(id=rule_id, title=title, description=description, level=level, tags=tags, references=references,
                    author=author, status=status, falsepositives=falsepositives, source=source, extra=extra)


def _describe_correlation(corr: CompiledCorrelation) -> tuple[Any, ...]:
    """Every field but ``expression``, the predicate rebuilt from ``condition`` (its tree) on restore."""
    if corr.expression is not None and corr.condition is None:
        raise Uncacheable(f"correlation {corr.rule_id}: a condition without its tree")
    return (corr.rule_id, corr.name, _meta_to_plain(corr.meta), corr.kind, corr.refs, corr.ref_keys, corr.timespan_us,
            corr.group_by, corr.group_fields, corr.value_fields, corr.bounds.items, corr.percentile, corr.early,
            corr.generate, corr.fingerprint, corr.condition)


def _restore_correlation(plain: tuple[Any, ...]) -> CompiledCorrelation:
    from temporal_siem.detections.correlation.compiled import Bounds, CompiledCorrelation, condition_predicate

    (rule_id, name, meta, kind, refs, ref_keys, timespan_us, group_by, group_fields, value_fields, bounds, percentile,
     early, generate, fingerprint, condition) = plain
    return CompiledCorrelation(
        rule_id=rule_id, name=name, meta=_meta_from_plain(meta), kind=kind, refs=refs, ref_keys=ref_keys,
        timespan_us=timespan_us, group_by=group_by, group_fields=group_fields, value_fields=value_fields,
        bounds=Bounds(bounds), percentile=percentile,
        expression=None if condition is None else condition_predicate(condition), early=early, generate=generate,
        fingerprint=fingerprint, condition=condition)


def _describe_rule(rule: CompiledRule) -> tuple[Any, ...]:
    match = rule.match
    lazy = isinstance(match, LazyMatch) and rule.module_code is None
    if rule.module_code is None and not lazy:
        raise Uncacheable(f"rule {rule.id}")
    # A rule compiled on first use (not used yet) is stored as its source (``module_code`` None) and restored lazily.
    namespace = match.namespace if isinstance(match, LazyMatch) else match.__globals__
    constants = {name: _describe_constant(value) for name, value in namespace.items() if _CONSTANT.match(name)}
    logsource = rule.logsource
    witnesses = witnesses_to_plain(rule.witnesses)
    return (rule.id, rule.name, _meta_to_plain(rule.meta), rule.module_code, constants, rule.source_code, rule.fields,
            witnesses, rule.datasets, rule.warnings,
            None if logsource is None else (logsource.category, logsource.product, logsource.service), rule.generate,
            rule.keywords)


def _describe_constant(value: Any) -> tuple[Any, ...]:
    if isinstance(value, frozenset):
        return ("fs", value)
    if isinstance(value, re.Pattern):
        return ("re", value.pattern, value.flags)
    if isinstance(value, LinearRegex):
        return ("re2", value.pattern)
    if isinstance(value, ahocorasick.Automaton):
        if value.kind != ahocorasick.AHOCORASICK or any(v is not None for v in value.values()):
            raise Uncacheable("automaton with values")
        return ("ac", tuple(value.keys()))
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return ("net", str(value))
    if value is None or isinstance(value, str | int | float | bool | bytes | tuple):
        return ("v", value)
    # Any other matcher object the compiler creates (say, a wildcard matcher): pickled. Safe here because the
    # whole payload is only read after its HMAC verified, i.e. we wrote it; an object that does not pickle
    # makes the rule set uncacheable (it then loads as before).
    try:
        return ("pickle", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:
        raise Uncacheable(f"constant of type {type(value).__name__}: {exc}") from exc


def _constant(spec: tuple[Any, ...]) -> Any:
    kind = spec[0]
    if kind == "fs" or kind == "v":
        return spec[1]
    if kind == "re":
        return re.compile(spec[1], spec[2])
    if kind == "re2":
        if re2 is None:
            raise Uncacheable("re2 missing")
        return LinearRegex(spec[1])
    if kind == "ac":
        automaton = ahocorasick.Automaton()
        for word in spec[1]:
            automaton.add_word(word, None)
        automaton.make_automaton()
        return automaton
    if kind == "net":
        return ipaddress.ip_network(spec[1])
    if kind == "pickle":
        return pickle.loads(spec[1])  # our own bytes: the payload HMAC was verified before this
    raise Uncacheable(kind)


def _restore(data: dict[str, Any]) -> Ruleset | None:
    from temporal_siem.detections.sigma.ruleset import CompiledRule, Ruleset

    rules: list[CompiledRule] = []
    for item in data["rules"]:
        (rule_id, name, meta, code, constants, source_code, fields, witnesses, datasets, warnings, logsource, generate,
         keywords) = item
        namespace = dict(RUNTIME)
        for constant_name, spec in constants.items():
            namespace[constant_name] = _constant(spec)
        match: Any
        if code is None:  # stored before its first use: compiled on first use again
            match = LazyMatch(source_code, namespace, f"<rule {rule_id}>")
        else:
            exec(code, namespace)  # our own code object, HMAC-verified
            match = namespace["match"]
        rules.append(CompiledRule(
            index=len(rules), id=rule_id, name=name, meta=_meta_from_plain(meta),
            match=match, source_code=source_code, fields=fields,
            witnesses=witnesses_from_plain(witnesses),
            datasets=datasets, generate=generate, warnings=warnings, module_code=code,
            logsource=None if logsource is None else LogSource(*logsource),
            keywords=tuple((literal, cased) for literal, cased in keywords),
        ))
    errors = [LoadError(*fields) for fields in data["errors"]]
    correlation_meta = {name: _meta_from_plain(meta) for name, meta in data["correlation_meta"]}
    for entry in rules:
        correlation_meta.setdefault(entry.id, entry.meta)
        if entry.name:
            correlation_meta.setdefault(entry.name, entry.meta)
    return Ruleset(rules, [], correlation_meta, errors, tuple(data["known_datasets"]),
                   compiled_correlations=[_restore_correlation(plain) for plain in data["correlations"]])


def default_cache() -> RuleCache | None:
    try:
        directory = cache_dir()
    except (RuntimeError, KeyError):  # no home directory to find the user's cache in
        return None
    return RuleCache(directory) if directory is not None else None

