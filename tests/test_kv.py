"""The KV block manager: hand-computed cases, then a state machine against a shadow model."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tokensim.sim.kv import BlockManager, KvError, checking_enabled


def counts(m: BlockManager) -> tuple[int, int, int]:
    """(used, cached, free) blocks, after asserting the invariants."""
    m.check()
    return m.used_blocks, m.cached_blocks, m.free_blocks


def chain(*names: str) -> list[tuple[str, ...]]:
    """Prefix-chained block ids: block i is named by the names of blocks 0..i."""
    return [tuple(names[: i + 1]) for i in range(len(names))]


# -- block arithmetic, admission, growth, release ---------------------------------------------


def test_block_arithmetic():
    m = BlockManager(100, 16)
    assert [m.blocks_for(t) for t in (0, 1, 15, 16, 17, 32, 33)] == [0, 1, 1, 1, 2, 2, 3]
    assert BlockManager(10, 1).blocks_for(7) == 7


def test_admit_takes_ceil_blocks_and_release_frees_them():
    m = BlockManager(10, 4)
    assert m.admit("a", 9) == 0  # 3 blocks
    assert counts(m) == (3, 0, 7)
    assert m.tokens_of("a") == 9 and "a" in m
    m.release("a")
    assert counts(m) == (0, 0, 10)
    assert m.all_free() and "a" not in m


def test_watermark_refuses_admission_at_the_edge():
    m = BlockManager(10, 4, watermark_blocks=2)
    assert m.can_admit("a", 32)  # 8 blocks leave exactly 2
    assert not m.can_admit("a", 33)  # 9 blocks leave 1
    with pytest.raises(KvError, match="does not fit"):
        m.admit("a", 33)
    assert counts(m) == (0, 0, 10)
    m.admit("a", 32)
    assert not m.can_admit("b", 1)
    assert m.fits(32) and not m.fits(33)


def test_grow_across_a_boundary_allocates_exactly_one_block():
    m = BlockManager(10, 4)
    m.admit("a", 4)
    assert m.blocks_needed_to_grow("a", 4) == 0
    assert m.grow("a", 4) and m.used_blocks == 1
    assert m.blocks_needed_to_grow("a", 5) == 1
    assert m.grow("a", 5) and m.used_blocks == 2
    assert m.grow("a", 8) and m.used_blocks == 2
    assert m.grow("a", 9) and m.used_blocks == 3
    assert m.tokens_of("a") == 9


def test_grow_uses_the_watermark_but_fails_without_allocating_when_full():
    m = BlockManager(3, 4, watermark_blocks=1)
    m.admit("a", 8)  # 2 blocks, 1 left = watermark
    assert m.grow("a", 12)  # growth may take the watermark
    assert counts(m) == (3, 0, 0)
    assert not m.grow("a", 13)
    assert m.tokens_of("a") == 12 and counts(m) == (3, 0, 0)
    assert m.blocks_needed_to_grow("a", 20) == 2


# -- prefix caching ----------------------------------------------------------------------------


def test_reserve_grants_blocks_in_bulk_and_settle_attributes_them():
    m = BlockManager(10, 4, prefix_cache=True)
    m.admit("a", 4)  # 1 block, full
    m.admit("b", 6)  # 2 blocks
    m.release("b")  # no hashes: its blocks are simply free
    assert counts(m) == (1, 0, 9)
    assert m.reserve(3) and m.unsettled_blocks == 3
    assert counts(m) == (4, 0, 6)  # reserved blocks are used, by nobody yet
    assert not m.all_free()
    m.settle("a", 9)  # 9 tokens need 3 blocks: 2 of the 3 reserved
    assert m.unsettled_blocks == 1 and m.tokens_of("a") == 9
    with pytest.raises(KvError, match="needs 2 blocks; 1 reserved"):
        m.settle("a", 17)
    assert not m.reserve(7)  # 6 free: refused, nothing changes
    assert counts(m) == (4, 0, 6) and m.unsettled_blocks == 1
    m.settle("a", 13)
    m.release("a")
    assert counts(m) == (0, 0, 10) and m.all_free()


def test_reserve_evicts_cached_blocks_when_free_ones_run_out():
    m = BlockManager(4, 4, prefix_cache=True)
    m.admit("a", 8, chain("x", "y"))
    m.release("a")  # both blocks stay cached
    m.admit("b", 4)
    assert counts(m) == (1, 2, 1)
    assert m.reserve(3)  # 1 free + 2 evicted
    assert counts(m) == (4, 0, 0)


def test_second_request_hits_all_full_blocks_but_the_last_token():
    m = BlockManager(20, 4, prefix_cache=True)
    hashes = chain("p0", "p1", "p2")  # 12 tokens = 3 full blocks
    assert m.admit("a", 12, hashes) == 0
    assert counts(m) == (3, 0, 17)
    # The whole prompt is cached: the last block is recomputed (a private copy).
    assert m.hit_tokens(hashes, 12) == 8
    assert m.admit("b", 12, hashes) == 8
    assert counts(m) == (4, 0, 16)  # 3 shared once + b's private last block
    m.release("a")
    assert counts(m) == (3, 1, 16)  # b holds p0, p1 and its copy of p2; a's p2 is cached
    m.release("b")
    assert counts(m) == (0, 3, 17)
    assert m.all_free()


def test_partial_block_prompts_hit_every_full_block():
    m = BlockManager(20, 4, prefix_cache=True)
    hashes = chain("p0", "p1")
    m.admit("a", 10, hashes)  # 2 full blocks + 2 tokens in a third
    assert counts(m) == (3, 0, 17)
    assert m.admit("b", 11, hashes) == 8  # both full blocks hit; 3 tokens computed
    assert counts(m) == (4, 0, 16)  # 2 shared + 2 partial blocks
    assert m.hit_tokens(hashes[:1], 5) == 4
    assert m.hit_tokens(hashes, 8) == 4  # a prompt of exactly 2 blocks leaves one to compute


def test_diverging_prefixes_hit_only_the_common_part():
    m = BlockManager(20, 4, prefix_cache=True)
    m.admit("a", 16, chain("s", "x1", "x2", "x3"))
    other = chain("s", "y1", "y2", "y3")
    assert m.hit_tokens(other, 17) == 4
    assert m.admit("b", 17, other) == 4
    assert counts(m) == (4 + 4, 0, 12)  # "s" shared, 3 + 3 own full blocks, b's partial block
    m.release("a")
    m.release("b")
    assert counts(m) == (0, 7, 13)


def test_hit_stops_at_the_first_miss():
    m = BlockManager(20, 4, prefix_cache=True)
    m.admit("a", 12, chain("p0", "p1", "p2"))
    m.release("a")
    hashes = chain("p0", "p1", "p2")
    hashes[1] = ("other",)  # block 2 is cached but its prefix is not
    assert m.hit_tokens(hashes, 13) == 4


def test_lru_evicts_the_least_recently_released_first_and_tails_first():
    m = BlockManager(6, 4, prefix_cache=True)
    m.admit("a", 8, chain("a0", "a1"))
    m.admit("b", 8, chain("b0", "b1"))
    m.release("b")
    m.release("a")  # LRU: b1, b0, a1, a0 (tail blocks first within a release)
    assert counts(m) == (0, 4, 2)
    m.admit("c", 12)  # 3 blocks: 2 free + evict b1
    assert counts(m) == (3, 3, 0)
    assert m.hit_tokens(chain("b0", "b1"), 9) == 4  # b0 kept, b1 evicted
    m.admit("d", 4)  # evicts b0
    assert m.hit_tokens(chain("b0"), 5) == 0
    assert m.hit_tokens(chain("a0", "a1"), 9) == 8
    assert m.grow("d", 5)  # evicts a1
    assert m.hit_tokens(chain("a0", "a1"), 9) == 4
    assert counts(m) == (5, 1, 0)


def test_a_hit_refreshes_recency():
    m = BlockManager(4, 4, prefix_cache=True)
    m.admit("a", 4, chain("a0"))
    m.admit("b", 4, chain("b0"))
    m.release("a")
    m.release("b")  # LRU: a0, b0
    assert m.admit("c", 5, chain("a0")) == 4  # a0 held again, one new block
    m.release("c")  # LRU: b0, a0
    assert counts(m) == (0, 2, 2)
    m.admit("d", 12)  # 3 blocks: 2 free + evict b0
    assert m.hit_tokens(chain("b0"), 5) == 0
    assert m.hit_tokens(chain("a0"), 5) == 4
    assert counts(m) == (3, 1, 0)


def test_shared_blocks_are_counted_once_and_refcounted():
    m = BlockManager(20, 4, prefix_cache=True)
    hashes = chain("p0", "p1")
    for rid in "abc":
        m.admit(rid, 9, hashes)
    assert counts(m) == (2 + 3, 0, 15)  # 2 shared blocks + one partial block each
    m.release("a")
    m.release("b")
    assert counts(m) == (3, 0, 17)
    m.release("c")
    assert counts(m) == (0, 2, 18)


def test_cached_blocks_count_as_available_for_admission():
    m = BlockManager(5, 4, watermark_blocks=1, prefix_cache=True)
    m.admit("a", 12, chain("x0", "x1", "x2"))
    m.release("a")
    assert counts(m) == (0, 3, 2)
    assert m.can_admit("b", 16) and not m.can_admit("b", 17)
    # hits take no new block, but the cached blocks they hold no longer count as available
    assert not m.can_admit("c", 17, chain("x0", "x1", "x2"))  # 3 hits + 2 new leave 0
    assert m.admit("c", 13, chain("x0", "x1", "x2")) == 12  # 3 hits + 1 new leave 1
    assert counts(m) == (4, 0, 1)


def test_without_prefix_cache_hashes_are_ignored():
    m = BlockManager(20, 4)
    hashes = chain("p0", "p1")
    m.admit("a", 9, hashes)
    assert m.hit_tokens(hashes, 9) == 0
    assert m.admit("b", 9, hashes) == 0
    m.release("a")
    m.release("b")
    assert counts(m) == (0, 0, 20)


# -- swap --------------------------------------------------------------------------------------


def test_swap_out_and_in_round_trip():
    m = BlockManager(10, 4, swap_capacity_blocks=5)
    m.admit("a", 10)
    assert m.grow("a", 13)
    assert m.swap_out("a") == 4
    assert counts(m) == (0, 0, 10) and m.swapped_blocks == 4
    assert m.is_swapped("a") and "a" not in m and not m.all_free()
    m.admit("b", 32)  # 8 blocks: only 2 left
    assert not m.swap_in("a")
    assert m.is_swapped("a") and counts(m) == (8, 0, 2)
    m.release("b")
    assert m.swap_in("a")
    assert counts(m) == (4, 0, 6) and m.swapped_blocks == 0 and m.tokens_of("a") == 13
    m.release("a")
    assert m.all_free()


def test_swap_in_respects_the_watermark_and_swap_space_is_limited():
    m = BlockManager(10, 4, watermark_blocks=2, swap_capacity_blocks=4)
    m.admit("a", 12)
    m.admit("b", 8)
    assert m.swap_out("a") == 3
    assert not m.can_swap_out("b")  # 3 + 2 > 4
    with pytest.raises(KvError, match="full"):
        m.swap_out("b")
    m.admit("c", 16)  # 2 + 4 used: 4 available, 3 needed would leave 1 < watermark
    assert not m.swap_in("a")
    m.release("a")  # a swapped request can be dropped
    assert m.swapped_blocks == 0


def test_swapped_out_prefix_blocks_stay_cached():
    m = BlockManager(10, 4, prefix_cache=True, swap_capacity_blocks=10)
    m.admit("a", 9, chain("p0", "p1"))
    assert m.swap_out("a") == 3
    assert counts(m) == (0, 2, 8)
    assert m.swap_in("a")  # comes back private
    assert counts(m) == (3, 2, 5)
    m.release("a")
    assert counts(m) == (0, 2, 8)


# -- misuse ------------------------------------------------------------------------------------


def test_errors_on_misuse():
    m = BlockManager(10, 4, prefix_cache=True)
    m.admit("a", 4)
    with pytest.raises(KvError, match="already admitted"):
        m.admit("a", 4)
    with pytest.raises(KvError, match="already admitted"):
        m.can_admit("a", 4)
    with pytest.raises(KvError, match="not running"):
        m.grow("x", 4)
    with pytest.raises(KvError, match="shrink"):
        m.grow("a", 3)
    with pytest.raises(KvError, match="holds no KV"):
        m.release("x")
    with pytest.raises(KvError, match="disabled"):
        m.swap_out("a")
    with pytest.raises(KvError, match="not swapped"):
        m.swap_in("a")
    with pytest.raises(KvError, match="at least 1 token"):
        m.admit("b", 0)
    with pytest.raises(KvError, match="one per full block"):
        m.admit("b", 7, chain("p0", "p1"))
    with pytest.raises(KvError, match="distinct"):
        m.admit("b", 8, ["h", "h"])
    m.release("a")
    with pytest.raises(KvError, match="holds no KV"):
        m.release("a")
    for bad in ((-1, 4), (10, 0)):
        with pytest.raises(ValueError):
            BlockManager(*bad)
    with pytest.raises(ValueError):
        BlockManager(10, 4, watermark_blocks=11)


def test_check_detects_corruption():
    m = BlockManager(10, 4, prefix_cache=True)
    m.admit("a", 9, chain("p0", "p1"))
    m.check()
    m._refs[("p0",)] += 1
    with pytest.raises(AssertionError, match="reference counts"):
        m.check()
    m._refs[("p0",)] -= 1
    m._private += 100
    with pytest.raises(AssertionError, match="used"):
        m.check()


def test_checking_enabled_reads_the_environment(monkeypatch):
    monkeypatch.setenv("TOKENSIM_CHECK", "1")
    assert checking_enabled()
    monkeypatch.setenv("TOKENSIM_CHECK", "0")
    assert not checking_enabled()
    monkeypatch.delenv("TOKENSIM_CHECK")
    assert not checking_enabled()


# -- a state machine against a shadow model ----------------------------------------------------


class Shadow:
    """A plain model: each running request keeps a list of blocks, a hash or None (private)."""

    def __init__(self, capacity: int, block: int, watermark: int, prefix: bool, swap: int):
        self.capacity, self.block, self.watermark = capacity, block, watermark
        self.prefix, self.swap = prefix, swap
        self.running: dict[int, tuple[int, list]] = {}  # id -> (tokens, blocks)
        self.lru: list = []  # unheld cached hashes, evicted from the front
        self.swapped: dict[int, int] = {}  # id -> tokens

    def nblocks(self, tokens: int) -> int:
        return (tokens + self.block - 1) // self.block

    def held(self) -> set:
        return {b for _, blocks in self.running.values() for b in blocks if b is not None}

    def used(self) -> int:
        private = sum(b is None for _, blocks in self.running.values() for b in blocks)
        return private + len(self.held())

    def free(self) -> int:
        return self.capacity - self.used() - len(self.lru)

    def swapped_blocks(self) -> int:
        return sum(self.nblocks(t) for t in self.swapped.values())

    def hits(self, tokens: int, hashes: list) -> int:
        """Leading blocks cached, at most those that leave one token to compute."""
        if not self.prefix:
            return 0
        cached = self.held() | set(self.lru)
        k = 0
        while k < len(hashes) and hashes[k] in cached and (k + 1) * self.block < tokens:
            k += 1
        return k

    def take(self, n: int) -> None:
        """Make ``n`` blocks free, evicting the oldest cached blocks if needed."""
        while self.free() < n:
            self.lru.pop(0)

    def admit(self, rid: int, tokens: int, hashes: list) -> int | None:
        """Hit tokens, or None (and no change) when the watermark would be crossed."""
        k = self.hits(tokens, hashes)
        blocks = list(hashes[:k])
        after = self.free() + len(self.lru) - sum(h in self.lru for h in blocks)
        if after - (self.nblocks(tokens) - k) < self.watermark:
            return None
        self.lru = [h for h in self.lru if h not in blocks]
        self.running[rid] = (tokens, blocks)  # holds its hits while memory is made
        self.take(self.nblocks(tokens) - k)
        for h in hashes[k:]:
            cached = h in self.held() or h in self.lru
            blocks.append(h if self.prefix and not cached else None)
        blocks += [None] * (self.nblocks(tokens) - len(blocks))
        return k * self.block

    def grow(self, rid: int, tokens: int) -> bool:
        old, blocks = self.running[rid]
        need = self.nblocks(tokens) - len(blocks)
        if need > self.free() + len(self.lru):
            return False
        self.take(need)
        self.running[rid] = (tokens, blocks + [None] * max(0, need))
        return True

    def release(self, rid: int) -> None:
        if rid in self.swapped:
            del self.swapped[rid]
            return
        _, blocks = self.running.pop(rid)
        still = self.held()
        for h in reversed(blocks):
            if h is not None and h not in still:
                self.lru.append(h)

    def swap_out(self, rid: int) -> int:
        tokens, blocks = self.running[rid]
        self.release(rid)
        self.swapped[rid] = tokens
        return len(blocks)

    def swap_in(self, rid: int) -> bool:
        tokens = self.swapped[rid]
        if self.free() + len(self.lru) - self.nblocks(tokens) < self.watermark:
            return False
        self.take(self.nblocks(tokens))
        del self.swapped[rid]
        self.running[rid] = (tokens, [None] * self.nblocks(tokens))
        return True


IDS = st.integers(0, 5)


# A prompt as few draws (they dominate the run time): (size, (prefix, split, salt), hashed)
SHAPES = [(p, split, salt) for p in range(3) for split in range(9) for salt in range(3)]
PROMPTS = st.tuples(st.integers(0, 35), st.sampled_from(SHAPES), st.integers(-1, 8))


def prompt(raw: tuple, block: int) -> tuple[int, list | None]:
    """(tokens, hashes): hashes from one of 3 shared prefixes, diverging at block ``split``.

    ``size`` gives full blocks (size // 4) and extra tokens (size % 4, below one block);
    ``hashed`` is how many leading full blocks have hashes, -1 for none.
    """
    size, (prefix, split, salt), hashed = raw
    tokens = max(1, size // 4 * block + size % 4 % block)
    if hashed < 0:
        return tokens, None
    n = min(hashed, tokens // block)
    return tokens, [(prefix, i) if i < split else (prefix, split, salt, i) for i in range(n)]


class KvMachine(RuleBasedStateMachine):
    """Random admit/grow/release/swap sequences; counts must match the shadow at every step."""

    @initialize(
        capacity=st.integers(1, 30),
        block=st.sampled_from([1, 2, 4]),
        watermark=st.integers(0, 3),
        prefix=st.booleans(),
        swap=st.sampled_from([0, 4, 40]),
    )
    def setup(self, capacity, block, watermark, prefix, swap):
        watermark = min(watermark, capacity)
        self.m = BlockManager(capacity, block, watermark, prefix, swap)
        self.s = Shadow(capacity, block, watermark, prefix, swap)

    @rule(rid=IDS, raw=PROMPTS)
    def admit(self, rid, raw):
        tokens, hashes = prompt(raw, self.s.block)
        if rid in self.s.running or rid in self.s.swapped:
            with pytest.raises(KvError, match="already admitted"):
                self.m.admit(rid, tokens, hashes)
            return
        hit = self.m.hit_tokens(hashes, tokens)
        ok = self.m.can_admit(rid, tokens, hashes)
        expected = self.s.admit(rid, tokens, hashes or [])
        assert ok == (expected is not None)
        if ok:
            assert self.m.admit(rid, tokens, hashes) == expected == hit
            assert hit < tokens and hit % self.s.block == 0
        else:
            with pytest.raises(KvError, match="does not fit"):
                self.m.admit(rid, tokens, hashes)

    @rule(rid=IDS, extra=st.integers(0, 9))
    def grow(self, rid, extra):
        if rid not in self.s.running:
            with pytest.raises(KvError, match="not running"):
                self.m.grow(rid, 1)
            return
        tokens = self.s.running[rid][0] + extra
        need = self.m.blocks_needed_to_grow(rid, tokens)
        assert need == max(0, self.s.nblocks(tokens) - len(self.s.running[rid][1]))
        ok = self.m.grow(rid, tokens)
        assert ok == self.s.grow(rid, tokens)
        assert self.m.tokens_of(rid) == self.s.running[rid][0]

    @rule(rid=IDS, extra=st.integers(0, 9))
    def grow_in_bulk(self, rid, extra):
        """What a decode batch does: reserve the new blocks, then settle them on ``rid``."""
        if rid not in self.s.running:
            return
        tokens = self.s.running[rid][0] + extra
        ok = self.m.reserve(self.m.blocks_needed_to_grow(rid, tokens))
        assert ok == self.s.grow(rid, tokens)
        if ok:
            self.m.settle(rid, tokens)
        assert self.m.unsettled_blocks == 0
        assert self.m.tokens_of(rid) == self.s.running[rid][0]

    @rule(rid=IDS)
    def release(self, rid):
        if rid in self.s.running or rid in self.s.swapped:
            self.m.release(rid)
            self.s.release(rid)
        else:
            with pytest.raises(KvError, match="holds no KV"):
                self.m.release(rid)

    @rule(rid=IDS)
    def swap_out(self, rid):
        if rid not in self.s.running:
            with pytest.raises(KvError):
                self.m.swap_out(rid)
            return
        room = self.s.swapped_blocks() + len(self.s.running[rid][1]) <= self.s.swap
        if self.s.swap and room:
            assert self.m.can_swap_out(rid)
            assert self.m.swap_out(rid) == self.s.swap_out(rid)
        else:
            with pytest.raises(KvError, match="disabled|full"):
                self.m.swap_out(rid)

    @rule(rid=IDS)
    def swap_in(self, rid):
        if rid not in self.s.swapped:
            with pytest.raises(KvError, match="not swapped"):
                self.m.swap_in(rid)
            return
        assert self.m.swap_in(rid) == self.s.swap_in(rid)

    @rule(raw=PROMPTS)
    def query_hits(self, raw):
        tokens, hashes = prompt(raw, self.s.block)
        assert self.m.hit_tokens(hashes, tokens) == self.s.hits(tokens, hashes or []) * (
            self.s.block
        )

    @invariant()
    def matches_shadow(self):
        if not hasattr(self, "m"):
            return
        self.m.check()
        m, s = self.m, self.s
        assert (m.used_blocks, m.cached_blocks, m.free_blocks) == (s.used(), len(s.lru), s.free())
        assert m.swapped_blocks == s.swapped_blocks()
        assert m.all_free() == (not s.running and not s.swapped)
        assert m.running_requests == len(s.running)
        for rid in range(6):
            assert (rid in m) == (rid in s.running)
            assert m.is_swapped(rid) == (rid in s.swapped)


KvMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)
test_kv_state_machine = KvMachine.TestCase
