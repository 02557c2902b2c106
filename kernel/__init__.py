"""The kernel every stage shares: records and dead letters, the ECS schema, flattening, metrics, the
configuration models, secret handling and retry backoff. It imports no stage (an import-linter contract
checks it), so ingest, parsers, detections and sinks can all depend on it without depending on each other."""
