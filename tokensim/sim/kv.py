"""KV-cache block manager: one model instance's paged KV memory, counted in blocks.

A request holding ``t`` tokens occupies ``ceil(t / block_tokens)`` blocks. Physical block
identity is not modelled (only counts per request), except for prefix caching, where a full
prompt block is named by its hash and shared by reference count.

Every block of the instance is in exactly one state:

* *used*: held by at least one running request (a shared prefix block counts once);
* *cached*: a prefix block no running request holds; its content is kept for later hits and
  it is evicted, least recently released first, when memory is needed (so it counts as
  available);
* *free*.

``used + cached + free == capacity``. Swapped-out requests hold blocks in host memory
(``swapped_blocks``), not on the device. Below the prefix cache may lie lower tiers
(:mod:`tokensim.sim.tiers`): the blocks it evicts go down to them, and a prompt's blocks
found there are loaded instead of recomputed (the caller prices the copy). Calls are O(1)
except those that walk a prompt's hashes (admission, hit queries) and
:meth:`BlockManager.check`.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Hashable, Sequence

CHECK_ENV = "TOKENSIM_CHECK"


def checking_enabled() -> bool:
    """Whether invariant checks are on (environment variable ``TOKENSIM_CHECK=1``).

    It reads the environment on every call: call it once when building an engine and keep the
    answer, not once per event.
    """
    return os.environ.get(CHECK_ENV) == "1"


class KvError(RuntimeError):
    """A misuse of the block manager by its caller: a bug in the engine, not in a spec."""


class _Running:
    """A running request: ``tokens`` held, ``blocks`` it implies, ``shared`` prefix hashes.

    ``shared`` lists, in prompt order, the hashes of the prompt blocks held through the prefix
    cache; the other ``blocks - len(shared)`` blocks are private to the request.
    """

    __slots__ = ("tokens", "blocks", "shared")

    def __init__(self, tokens: int, blocks: int, shared: tuple[Hashable, ...]):
        self.tokens = tokens
        self.blocks = blocks
        self.shared = shared


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(f"KV invariant broken: {message}")


class BlockManager:
    """The KV block pool of one model instance.

    ``capacity_blocks`` blocks of ``block_tokens`` tokens each. Admission (new prompts and
    swap-ins) must leave ``watermark_blocks`` blocks available; growth of running requests may
    use every block. ``prefix_cache`` turns on sharing of full prompt blocks by hash.
    ``swap_capacity_blocks`` is the host swap space in blocks (0: swapping is not allowed).
    """

    def __init__(
        self,
        capacity_blocks: int,
        block_tokens: int,
        watermark_blocks: int = 0,
        prefix_cache: bool = False,
        swap_capacity_blocks: int = 0,
        tiers: Sequence = (),
    ):
        if capacity_blocks < 0:
            raise ValueError(f"capacity_blocks must be >= 0, got {capacity_blocks}")
        if block_tokens < 1:
            raise ValueError(f"block_tokens must be >= 1, got {block_tokens}")
        if not 0 <= watermark_blocks <= capacity_blocks:
            raise ValueError(
                f"watermark_blocks must be in 0..{capacity_blocks}, got {watermark_blocks}"
            )
        if swap_capacity_blocks < 0:
            raise ValueError(f"swap_capacity_blocks must be >= 0, got {swap_capacity_blocks}")
        self.capacity_blocks = capacity_blocks
        self.block_tokens = block_tokens
        self.watermark_blocks = watermark_blocks
        self.prefix_cache = prefix_cache
        self.swap_capacity_blocks = swap_capacity_blocks
        self._running: dict[Hashable, _Running] = {}
        self._private = 0  # blocks held by running requests outside the prefix cache
        self._unsettled = 0  # of which reserved in bulk and not yet attributed (reserve)
        self._refs: dict[Hashable, int] = {}  # prefix block hash -> running holders (> 0)
        self._lru: OrderedDict[Hashable, None] = OrderedDict()  # unheld cached, oldest first
        self._swapped: dict[Hashable, int] = {}  # request -> tokens kept in host memory
        self._swapped_blocks = 0
        # lower tiers, fastest first: the first takes what the cache evicts
        self.tiers = tuple(tiers)
        self._through = tuple(t for t in self.tiers if t.through)
        self.loads: dict = {}  # tier -> blocks the last admission loads from it

    def emptied(self) -> BlockManager:
        """A manager of the same geometry and lower tiers, holding nothing: this one's
        device after a failure (its cache and swap space lost; the tiers outlive it)."""
        return BlockManager(
            self.capacity_blocks,
            self.block_tokens,
            self.watermark_blocks,
            self.prefix_cache,
            self.swap_capacity_blocks,
            self.tiers,
        )

    # -- counts ---------------------------------------------------------------------------

    def blocks_for(self, tokens: int) -> int:
        """Blocks needed to hold ``tokens`` tokens: ``ceil(tokens / block_tokens)``."""
        return -(-tokens // self.block_tokens)

    @property
    def used_blocks(self) -> int:
        """Blocks held by running requests (a shared prefix block counts once)."""
        return self._private + len(self._refs)

    @property
    def cached_blocks(self) -> int:
        """Blocks held only by the prefix cache: unreferenced and evictable."""
        return len(self._lru)

    @property
    def free_blocks(self) -> int:
        """Blocks neither used nor cached."""
        return self.capacity_blocks - self._private - len(self._refs) - len(self._lru)

    @property
    def available_blocks(self) -> int:
        """Blocks a new allocation may take: free plus evictable cached blocks."""
        return self.capacity_blocks - self._private - len(self._refs)

    @property
    def swapped_blocks(self) -> int:
        """Blocks of swapped-out requests held in host memory."""
        return self._swapped_blocks

    @property
    def running_requests(self) -> int:
        """Requests holding device blocks here (admitted or swapped in, not released)."""
        return len(self._running)

    def __contains__(self, request_id: Hashable) -> bool:
        """Whether ``request_id`` is running here (holds device blocks)."""
        return request_id in self._running

    def is_swapped(self, request_id: Hashable) -> bool:
        """Whether ``request_id`` is swapped out to host memory."""
        return request_id in self._swapped

    def tokens_of(self, request_id: Hashable) -> int:
        """Tokens held by a running or swapped request."""
        r = self._running.get(request_id)
        if r is not None:
            return r.tokens
        if request_id in self._swapped:
            return self._swapped[request_id]
        raise KvError(f"request {request_id!r} holds no KV cache here")

    def fits(self, tokens: int) -> bool:
        """Whether a request of ``tokens`` tokens could ever be admitted (into empty memory)."""
        return self.blocks_for(tokens) <= self.capacity_blocks - self.watermark_blocks

    def all_free(self) -> bool:
        """True when no request holds blocks here or in swap (cached blocks are allowed)."""
        return not self._running and not self._swapped and not self._unsettled

    # -- admission ------------------------------------------------------------------------

    def _hashes(self, hashes: Sequence[Hashable] | None, tokens: int) -> tuple[Hashable, ...]:
        if tokens < 1:
            raise KvError(f"a prompt holds at least 1 token, got {tokens}")
        if hashes is None:
            return ()
        hashes = tuple(hashes)
        if len(hashes) > tokens // self.block_tokens:
            raise KvError(
                f"{len(hashes)} block hashes for {tokens} tokens: at most one per full block "
                f"of {self.block_tokens} tokens"
            )
        if len(set(hashes)) != len(hashes):
            raise KvError("block hashes of one prompt must be distinct (prefix-chained)")
        return hashes

    def _hit_blocks(self, hashes: tuple[Hashable, ...], tokens: int) -> int:
        """Leading prompt blocks found in the cache, leaving at least one token to compute."""
        if not self.prefix_cache:
            return 0
        limit = min(len(hashes), (tokens - 1) // self.block_tokens)
        refs, lru = self._refs, self._lru
        k = 0
        while k < limit and (hashes[k] in refs or hashes[k] in lru):
            k += 1
        return k

    def _lower_hits(self, hashes: tuple[Hashable, ...], k: int, tokens: int) -> list:
        """The tier each prompt block after the ``k`` cached ones is loaded from, while a
        lower tier holds it (the fastest that does), leaving at least one token to compute."""
        if not self.tiers:
            return []
        limit = min(len(hashes), (tokens - 1) // self.block_tokens)
        found = []
        for h in hashes[k:limit]:
            tier = next((t for t in self.tiers if h in t), None)
            if tier is None:
                break
            found.append(tier)
        return found

    def _shortfall(self, request_id: Hashable, tokens: int, hashes) -> tuple[tuple, int, int]:
        """(hashes, hit blocks, blocks over the watermark that admission would take)."""
        if request_id in self._running or request_id in self._swapped:
            raise KvError(f"request {request_id!r} is already admitted here")
        hashes = self._hashes(hashes, tokens)
        k = self._hit_blocks(hashes, tokens)
        idle_hits = sum(1 for h in hashes[:k] if h in self._lru)
        need = self.blocks_for(tokens) - k
        over = need - (self.available_blocks - idle_hits - self.watermark_blocks)
        return hashes, k, over

    def hit_tokens(self, hashes: Sequence[Hashable] | None, tokens: int) -> int:
        """Prompt tokens of a ``tokens``-token prompt already cached here (no state change).

        A multiple of ``block_tokens``, below ``tokens``; 0 without prefix caching. Blocks
        a lower tier would load count.
        """
        hashes = self._hashes(hashes, tokens)
        k = self._hit_blocks(hashes, tokens)
        return (k + len(self._lower_hits(hashes, k, tokens))) * self.block_tokens

    def can_admit(
        self, request_id: Hashable, tokens: int, hashes: Sequence[Hashable] | None = None
    ) -> bool:
        """Whether a ``tokens``-token prompt can be admitted now, leaving the watermark.

        Cached hits need no new block; evictable cached blocks count as available.
        ``hashes``: one hashable id per full prompt block, prefix-chained.
        """
        if hashes is None and request_id not in self._running and request_id not in self._swapped:
            # no prefix to share: the fast path of _shortfall (called for every waiting head)
            need = -(-tokens // self.block_tokens)
            return need <= self.available_blocks - self.watermark_blocks
        return self._shortfall(request_id, tokens, hashes)[2] <= 0

    def admit(
        self,
        request_id: Hashable,
        tokens: int,
        hashes: Sequence[Hashable] | None = None,
        lower: bool = True,
    ) -> int:
        """Allocate a ``tokens``-token prompt's blocks; return its prefix-cache hit in tokens.

        Raises :class:`KvError` if the request is already here or :meth:`can_admit` is false.
        Full blocks with a hash that miss the cache enter it (held by this request); a hashed
        block past the hit whose hash is already cached is allocated privately. With
        ``lower``, the blocks after the hit that a lower tier holds are loaded from it (they
        take new blocks, and count in the hit): :attr:`loads` says how many from which tier.
        Write-through tiers keep every block computed here.
        """
        hashes, k, over = self._shortfall(request_id, tokens, hashes)
        loaded = self._lower_hits(hashes, k, tokens) if lower else []
        self.loads = {}
        for i, tier in enumerate(loaded):
            tier.hit(hashes[k + i])
            self.loads[tier] = self.loads.get(tier, 0) + 1
        if over > 0:
            raise KvError(
                f"request {request_id!r} ({tokens} tokens) does not fit: {over} blocks short "
                f"with a watermark of {self.watermark_blocks}"
            )
        refs, lru = self._refs, self._lru
        shared = list(hashes[:k])
        for h in shared:
            if h in lru:
                del lru[h]
                refs[h] = 1
            else:
                refs[h] += 1
        blocks = self.blocks_for(tokens)
        self._evict(blocks - k - self.free_blocks)
        if self.prefix_cache:
            through = self._through
            for i, h in enumerate(hashes[k:], k):
                if h not in refs and h not in lru:
                    refs[h] = 1
                    shared.append(h)
                    if i >= k + len(loaded):  # computed here, not loaded
                        for tier in through:
                            tier.put(h)
        self._private += blocks - len(shared)
        self._running[request_id] = _Running(tokens, blocks, tuple(shared))
        return (k + len(loaded)) * self.block_tokens

    def _evict(self, n: int) -> None:
        """Drop the ``n`` least recently released cached blocks (nothing if ``n <= 0``);
        with lower tiers, each goes down to the first."""
        lru = self._lru
        if self.tiers:
            first = self.tiers[0]
            for _ in range(n):
                first.put(lru.popitem(last=False)[0])
            return
        for _ in range(n):
            lru.popitem(last=False)

    # -- growth and release ---------------------------------------------------------------

    def _get(self, request_id: Hashable) -> _Running:
        r = self._running.get(request_id)
        if r is None:
            raise KvError(f"request {request_id!r} is not running here")
        return r

    def blocks_needed_to_grow(self, request_id: Hashable, tokens: int) -> int:
        """New blocks a running request needs to hold ``tokens`` tokens (0 within its blocks)."""
        return max(0, self.blocks_for(tokens) - self._get(request_id).blocks)

    def grow(self, request_id: Hashable, tokens: int) -> bool:
        """The running request now holds ``tokens`` tokens; allocate blocks across boundaries.

        Returns False, changing nothing, when free plus evictable blocks are too few (the
        engine then preempts someone). The watermark does not apply.
        """
        r = self._get(request_id)
        if tokens < r.tokens:
            raise KvError(f"request {request_id!r} cannot shrink from {r.tokens} to {tokens}")
        need = -(-tokens // self.block_tokens) - r.blocks
        if need > 0:
            if not self._take(need):
                return False
            r.blocks += need
        r.tokens = tokens
        return True

    def _take(self, n: int) -> bool:
        """Allocate ``n`` private blocks, evicting cached ones if free ones run out; False,
        changing nothing, when free plus evictable blocks are too few."""
        free = self.free_blocks
        if n > free + len(self._lru):
            return False
        if n > free:
            self._evict(n - free)
        self._private += n
        return True

    def reserve(self, blocks: int) -> bool:
        """Grant ``blocks`` new blocks to running requests without saying to whom yet.

        A decode batch grows many sequences at once; it reserves their new blocks in one
        call and attributes them with :meth:`settle` when a sequence leaves it. Returns
        False, changing nothing, when free plus evictable blocks are too few. The
        watermark does not apply (as for :meth:`grow`).
        """
        if blocks <= 0:
            return True
        if not self._take(blocks):
            return False
        self._unsettled += blocks
        return True

    def settle(self, request_id: Hashable, tokens: int) -> None:
        """The running request now holds ``tokens`` tokens, its new blocks taken from those
        :meth:`reserve` granted. Raises :class:`KvError` when too few were reserved."""
        r = self._get(request_id)
        if tokens < r.tokens:
            raise KvError(f"request {request_id!r} cannot shrink from {r.tokens} to {tokens}")
        need = -(-tokens // self.block_tokens) - r.blocks
        if need > self._unsettled:
            raise KvError(f"request {request_id!r} needs {need} blocks; {self._unsettled} reserved")
        r.blocks += need
        r.tokens = tokens
        self._unsettled -= need

    @property
    def unsettled_blocks(self) -> int:
        """Blocks :meth:`reserve` granted that no :meth:`settle` has attributed yet."""
        return self._unsettled

    def _drop(self, r: _Running, more: Sequence[Hashable] = ()) -> None:
        """Give back a running request's blocks; its unheld prefix blocks become cached,
        and so do the private full blocks after its prompt that ``more`` names.

        Released tail-first, so a sequence's last blocks are evicted before its first ones.
        """
        self._private -= r.blocks - len(r.shared)
        refs, lru = self._refs, self._lru
        if more:
            if len(more) > r.blocks - len(r.shared):
                raise KvError(f"{len(more)} blocks named past the prompt's; fewer are held")
            for h in reversed(more):
                if h not in refs and h not in lru:
                    lru[h] = None
                    for tier in self._through:
                        tier.put(h)
        for h in reversed(r.shared):
            count = refs[h] - 1
            if count:
                refs[h] = count
            else:
                del refs[h]
                lru[h] = None

    def release(self, request_id: Hashable, more: Sequence[Hashable] = ()) -> None:
        """Free a finished (or aborted) request's blocks, device or swapped.

        With prefix caching its hashed prompt blocks stay cached (evictable once unheld),
        and so do the full blocks after them that ``more`` names, in order (a conversation's
        answer, which its next turn's prompt starts with).
        """
        r = self._running.pop(request_id, None)
        if r is not None:
            self._drop(r, more if self.prefix_cache else ())
        elif request_id in self._swapped:
            self._swapped_blocks -= self.blocks_for(self._swapped.pop(request_id))
        else:
            raise KvError(f"request {request_id!r} holds no KV cache here")

    # -- swap -----------------------------------------------------------------------------

    def can_swap_out(self, request_id: Hashable) -> bool:
        """Whether the running request's blocks fit in the remaining host swap space."""
        blocks = self._get(request_id).blocks
        return self._swapped_blocks + blocks <= self.swap_capacity_blocks

    def swap_out(self, request_id: Hashable) -> int:
        """Move a running request's blocks to host memory; return the blocks copied.

        Its device blocks are given back as by :meth:`release`. Raises :class:`KvError` when
        swapping is disabled or the host swap space is full (see :meth:`can_swap_out`).
        """
        if self.swap_capacity_blocks == 0:
            raise KvError("swapping is disabled here (swap_capacity_blocks=0)")
        if not self.can_swap_out(request_id):
            raise KvError(f"host swap space is full: cannot swap out {request_id!r}")
        r = self._running.pop(request_id)
        self._drop(r)
        self._swapped[request_id] = r.tokens
        self._swapped_blocks += r.blocks
        return r.blocks

    def swap_in(self, request_id: Hashable) -> bool:
        """Bring a swapped request back (all blocks private, no prefix sharing).

        Returns False, changing nothing, if that would not leave the watermark available.
        """
        tokens = self._swapped.get(request_id)
        if tokens is None:
            raise KvError(f"request {request_id!r} is not swapped out here")
        blocks = self.blocks_for(tokens)
        if self.available_blocks - blocks < self.watermark_blocks:
            return False
        self._evict(blocks - self.free_blocks)
        self._private += blocks
        self._running[request_id] = _Running(tokens, blocks, ())
        del self._swapped[request_id]
        self._swapped_blocks -= blocks
        return True

    # -- invariants -----------------------------------------------------------------------

    def check(self) -> None:
        """Assert every invariant (O(requests + cached blocks)); raise AssertionError if broken."""
        used, cached, cap = self.used_blocks, self.cached_blocks, self.capacity_blocks
        _expect(0 <= used <= cap, f"used {used} outside 0..{cap}")
        _expect(self.free_blocks >= 0, f"used {used} + cached {cached} > capacity {cap}")
        private = 0
        holders: dict[Hashable, int] = {}
        for rid, r in self._running.items():
            _expect(r.tokens >= 1, f"request {rid!r} holds {r.tokens} tokens")
            _expect(r.blocks == self.blocks_for(r.tokens), f"request {rid!r} block count")
            _expect(len(r.shared) <= r.tokens // self.block_tokens, f"{rid!r} shares a partial")
            private += r.blocks - len(r.shared)
            for h in r.shared:
                holders[h] = holders.get(h, 0) + 1
        _expect(self._unsettled >= 0, f"{self._unsettled} unsettled blocks")
        private += self._unsettled
        _expect(private == self._private, f"private blocks {self._private}, requests {private}")
        _expect(holders == self._refs, "reference counts differ from the requests holding them")
        _expect(all(c > 0 for c in self._refs.values()), "a held block has refcount 0")
        _expect(not any(h in self._refs for h in self._lru), "a cached block is also held")
        _expect(self.prefix_cache or not (self._refs or self._lru), "cache without prefix_cache")
        swapped = sum(self.blocks_for(t) for t in self._swapped.values())
        _expect(swapped == self._swapped_blocks, f"swapped {self._swapped_blocks} != {swapped}")
        _expect(swapped <= self.swap_capacity_blocks, "swap space over capacity")
        _expect(not self._swapped.keys() & self._running.keys(), "request running and swapped")

    def __repr__(self) -> str:
        return (
            f"BlockManager(used={self.used_blocks}, cached={self.cached_blocks}, "
            f"free={self.free_blocks}, capacity={self.capacity_blocks}, "
            f"swapped={self._swapped_blocks}, requests={len(self._running)})"
        )
