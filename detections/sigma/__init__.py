"""The Sigma engine: load rules, apply processing pipelines, compile each rule to one Python function,
select candidates with a witness index, and match. See docs/engine.md.

    from temporal_siem.detections.sigma import SigmaEngine
    engine = SigmaEngine.from_paths(["my-rules/"])
    engine.match({"user.name": "alice", "event.action": "DeleteNamespace"})  # -> [MatchedRule, ...]
"""

from temporal_siem.detections.sigma.files import LoadError
from temporal_siem.detections.sigma.ruleset import CompiledRule, MatchedRule, Ruleset, SigmaEngine, as_flat_event

__all__ = ["CompiledRule", "LoadError", "MatchedRule", "Ruleset", "SigmaEngine", "as_flat_event"]
