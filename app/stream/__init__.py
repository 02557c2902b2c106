"""The Kafka runtime of the daemon: per-partition detection state, its snapshot topic and the dead-letter
topic. It sits in the application layer because it wires stages together (a Detector, a Sink, the Kafka
source); ``ingest`` only reads records."""
