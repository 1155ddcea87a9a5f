"""The simulation stage: the event engine, its state machines and KV-cache block memory."""
