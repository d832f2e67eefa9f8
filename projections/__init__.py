"""Read models kept from the event store's notification log, exactly once."""
