"""The meeting-rotations domain: free of Kafka and databases."""
