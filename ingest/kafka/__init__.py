"""Kafka ingest: the consumer-group source (kafka-python or confluent-kafka) and the client options they
share. What consumes from it and keeps state (the daemon's runtime) lives in the application layer."""
