"""Sigma correlation rules evaluated as a stream (docs/correlation.md)."""

from temporal_siem.detections.correlation.compiled import CompiledCorrelation, CorrelationRuleError, compile_rule, prepare_correlation_dict
from temporal_siem.detections.correlation.engine import CorrelationEngine, RejectedEvent

__all__ = ["CompiledCorrelation", "CorrelationEngine", "CorrelationRuleError", "RejectedEvent", "compile_rule",
           "prepare_correlation_dict"]
