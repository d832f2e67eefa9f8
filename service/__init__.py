"""The meeting-rotations application and its edges (Kafka, store, CLI)."""
