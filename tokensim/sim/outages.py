"""What an instance does when a request leaves it early or the instance itself fails.

A mixin of :class:`~tokensim.sim.instance.Instance`: a client's timeout cancels a request
wherever it is (:meth:`Outages.cancel`), and a failure empties the instance, letting go of
every request it holds (:meth:`Outages.fail`), both ends of the KV copies in flight
included. The simulation decides what becomes of the requests (``Simulation.cancel``,
``Simulation.failed``).
"""

from __future__ import annotations

from tokensim.sim.batch import DecodeBatch
from tokensim.sim.request import Request, State


class Outages:
    """Cancellations and failures of an instance (mixed into ``Instance``, whose state it
    reads and resets)."""

    def cancel(self, req: Request, why: str) -> None:
        """``req``'s client gave up: drop it now if it waits (in the queue or swapped out),
        at the front end's hand-over if it is being taken in, when its KV arrives if it is
        on its way here, else at the end of the step it is in."""
        if req.state is State.QUEUED and req in self.waiting:
            self.waiting.remove(req)
        elif req.state is State.SWAPPED:
            self.swapped.remove(req)
            self.kv.release(req.id)
        elif req.state in (State.PREFILL, State.DECODE):
            self.cancelling.append((req, why))
            self._wake(True)
            return
        else:  # taken in by the front end, or its KV on its way: dropped on arrival
            return
        self._count(-1)
        self.sim.cancel(req, why)
        if len(self.waiting):
            self._wake(self._may_admit_now())

    @property
    def routable(self) -> bool:
        """Whether a router may send it a request: serving, not failed, not draining."""
        return self.serving and not self.down and not self.draining

    def fail(self) -> list[Request]:
        """This instance fails: its in-flight step is lost, its KV cache and swap space are
        emptied, and it lets go of every request it holds (queued, running, swapped, or
        with KV on its way in or out: the other end of such a copy lets go of it too);
        returns them. Requests its front end is still taking in are let go of when it
        hands them over (:meth:`enqueue`)."""
        held: list[Request] = []
        while len(self.waiting):
            held.append(self.waiting.pop())
        held += list(self.running)
        held += self.swapped
        for req, source in self.incoming:  # copies not started: the source lets go
            source.sent(req)
            held.append(req)
        for req in list(self.receiving):  # copies in flight: their arrival is ignored
            self._sources.pop(req).sent(req)
            held.append(req)
        held += self.ready
        for req in list(self.sending):  # KV on its way out: the decode side lets go
            target = req.decode_instance
            if target is not None and target is not self:
                target.drop_copy(req)
            held.append(req)
        self._count(-len(held) + len(self.sending))
        self.running.clear()
        self.prefilling.clear()
        self.swapped.clear()
        self.incoming.clear()
        self.receiving.clear()
        self.ready.clear()
        self.sending.clear()
        self.lagging.clear()
        self.cancelling.clear()
        self.batch = DecodeBatch(self.kv.block_tokens, self.batch.clip)
        self.kv = self.kv.emptied()
        self._abandon_step()
        self.down = True
        self._load_fabric(None)
        self._sample(0)
        return held

    def drop_copy(self, req: Request) -> None:
        """The instance ``req``'s KV was coming from has failed: forget the copy (and the
        blocks reserved here for it)."""
        entry = next((e for e in self.incoming if e[0] is req), None)
        if entry is not None:
            self.incoming.remove(entry)
        elif req in self.receiving:
            self.receiving.remove(req)
            del self._sources[req]
            self.kv.release(req.id)
        else:
            return
        self._count(-1)

    def _drop_cancelled(self) -> None:
        """Drop the running requests whose clients gave up (those still running here)."""
        for req, why in self.cancelling:
            if req.state is State.DECODE and req in self.running:
                self._leave(req)
            elif req.state is State.PREFILL and req in self.running:
                self.prefilling.remove(req)
            else:
                continue  # finished, or handed off, meanwhile
            del self.running[req]
            if req in self.lagging:
                self.lagging.remove(req)
            self.kv.release(req.id)
            self._count(-1)
            self.sim.cancel(req, why)
        self.cancelling.clear()

    def _drop_arrived_cancelled(self) -> None:
        """Drop the requests whose KV arrived after their clients gave up, freeing it
        (before the copies waiting for memory are started)."""
        keep = []
        for req in self.ready:
            if req.cancelled:
                self.kv.release(req.id)
                self._count(-1)
                self.sim.cancel(req, req.cancelled)
            else:
                keep.append(req)
        self.ready = keep
