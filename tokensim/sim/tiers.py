"""Lower KV tiers: host memory, a local disk, a remote store under a GPU's prefix cache.

A tier keeps whole KV blocks by their prefix hash, in least-recently-used order, up to its
capacity. Blocks reach it when the GPU's prefix cache evicts them (``write back``: the tier
above evicts into the one below) or, for a ``write through`` tier, as soon as they are
computed. A prompt whose next blocks miss the GPU but are found in a tier loads them
instead of recomputing them (:meth:`tokensim.sim.kv.BlockManager.admit`); the instance
prices the copy at the tier's bandwidth. A remote tier is one object shared by every
instance of its pool. Only counts and hashes are kept, as in the block manager.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class Tier:
    """One tier: ``capacity`` blocks, LRU; ``through``: written when blocks are computed,
    else when the tier above evicts them. ``name`` is its dataflow vertex; a block is
    ``block_B`` bytes (every GPU's shard of it) and holds ``block_tokens`` tokens."""

    __slots__ = (
        "name",
        "kind",
        "capacity",
        "through",
        "block_B",
        "block_tokens",
        "below",
        "_blocks",
        "hit_blocks",
        "written_blocks",
        "evicted_blocks",
    )

    def __init__(
        self,
        name: str,
        kind: str,
        capacity: int,
        through: bool = False,
        block_B: float = 0.0,
        block_tokens: int = 0,
    ):
        if capacity < 1:
            raise ValueError(f"a tier holds at least 1 block, got {capacity}")
        self.name = name
        self.kind = kind
        self.capacity = capacity
        self.through = through
        self.block_B = block_B
        self.block_tokens = block_tokens
        self.below: Tier | None = None  # where the blocks it evicts go (write back)
        self._blocks: OrderedDict[Hashable, None] = OrderedDict()
        self.hit_blocks = 0  # blocks loaded from it into a GPU
        self.written_blocks = 0  # blocks copied into it
        self.evicted_blocks = 0  # blocks it dropped for room

    def __contains__(self, h: Hashable) -> bool:
        return h in self._blocks

    def __len__(self) -> int:
        return len(self._blocks)

    def hit(self, h: Hashable) -> None:
        """Block ``h`` is loaded from here: it becomes the most recently used."""
        self._blocks.move_to_end(h)
        self.hit_blocks += 1

    def put(self, h: Hashable) -> None:
        """Keep block ``h`` (refreshing it if held); evict the least recently used block to
        make room, into the tier below if any."""
        blocks = self._blocks
        if h in blocks:
            blocks.move_to_end(h)
            return
        blocks[h] = None
        self.written_blocks += 1
        if len(blocks) > self.capacity:
            old, _ = blocks.popitem(last=False)
            self.evicted_blocks += 1
            if self.below is not None:
                self.below.put(old)


def tier_figures(tiers: dict[str, Tier], flow) -> list[dict]:
    """What each lower KV tier (by dataflow vertex) held and moved: bytes of whole blocks,
    every GPU's shard of them."""
    return [
        {
            "name": name,
            "kind": tier.kind,
            "pool": flow.nodes[name]["pool"],
            "write": "through" if tier.through else "back",
            "capacity_blocks": tier.capacity,
            "held_blocks": len(tier),
            "hit_blocks": tier.hit_blocks,
            "hit_tokens": tier.hit_blocks * tier.block_tokens,
            "loaded_bytes": tier.hit_blocks * tier.block_B,
            "written_bytes": tier.written_blocks * tier.block_B,
            "evicted_blocks": tier.evicted_blocks,
        }
        for name, tier in tiers.items()
    ]
