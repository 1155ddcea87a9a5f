"""Replay measured benchmark runs in the simulator: read results (:mod:`.results`),
simulate the same requests on a spec's deployment (:mod:`.replay`), fit the engine's
host and front-end figures and its kernels' factors (:mod:`.fit`)."""
