"""Replay measured benchmark runs in the simulator: read results (:mod:`.results`), lay a
server's launch command on a spec (:mod:`.serve`), simulate the same requests on the spec's
deployment (:mod:`.replay`), fit the engine's host and front-end times and kernel factors
(:mod:`.fit`); the commands ``calibrate --bench`` (:mod:`.command`) and ``validate --bench``
(:mod:`.page`)."""
