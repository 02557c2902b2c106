"""The Kafka runtime of the daemon, on Quix Streams: the topology (stateless detection, a repartition by state scope,
keyed state with changelogs) and the dead-letter topic. It sits in the application layer because it wires stages
together (parsers, the scoped detection logic, sinks); ``ingest`` only reads records."""
