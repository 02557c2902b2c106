"""Kafka ingest: the consumer-group source, the dead-letter topic, correlation-state snapshots, and the
producer behind ``temporal-siem replay --to-kafka``."""
