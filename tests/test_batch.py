"""The decode batch's step clock against a plain list of sequences stepped one by one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokensim.sim.batch import DecodeBatch
from tokensim.sim.request import Request


def seq(rid: int, computed: int, generated: int, output: int, last_s: float = 0.0) -> Request:
    req = Request(rid, 0.0, prompt=computed - generated + 1, output=output)
    req.computed, req.generated, req.last_token_s = computed, generated, last_s
    return req


def blocks(tokens: int, b: int) -> int:
    return -(-tokens // b)


def test_a_hand_computed_batch():
    batch = DecodeBatch(block_tokens=4)
    a, b = seq(0, computed=4, generated=1, output=3), seq(1, computed=6, generated=1, output=10)
    batch.add(a)
    batch.add(b)
    assert batch.context == 10 and batch.tokens_left() == 2 + 9
    assert batch.steps_to_finish() == 2
    # a (4 tokens) needs a block on step 1 and step 5; b (6 tokens) on step 3
    assert [batch.blocks_through(s) for s in range(1, 6)] == [1, 1, 2, 2, 3]
    batch.reserved = 2
    assert batch.blocks_through(2) == 0 and batch.blocks_through(3) == 1
    gaps = batch.advance(2, first_end_s=1.0, last_end_s=2.0)
    assert sorted(gaps) == [(1.0, 1), (1.0, 1)]  # both joined at t = 0
    assert batch.context == 14
    assert batch.pop_done() == [a]
    assert (a.computed, a.generated, a.last_token_s) == (6, 3, 2.0)
    assert len(batch) == 1 and batch.computed(b) == 8


def test_steps_need_their_blocks_granted_and_joins_wait_for_the_clock():
    batch = DecodeBatch(block_tokens=4)
    batch.add(seq(0, computed=4, generated=1, output=5))
    with pytest.raises(AssertionError, match="without their KV blocks"):
        batch.advance(1, 1.0, 1.0)
    batch.reserved = batch.step + 1  # granted one step ahead, not taken yet
    with pytest.raises(AssertionError, match="granted ahead"):
        batch.add(seq(1, computed=3, generated=1, output=5))


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 40), st.integers(0, 5), st.integers(1, 12)),
        st.tuples(st.just("step"), st.integers(1, 9)),
        st.tuples(st.just("remove"), st.integers(0, 30)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(block=st.sampled_from([1, 2, 3, 4, 16]), ops=OPS)
def test_the_step_clock_matches_stepping_every_sequence(block, ops):
    batch = DecodeBatch(block)
    shadow: dict[Request, list] = {}  # request -> [computed, generated, last token s]
    now, rid = 0.0, 0
    for op in ops:
        if op[0] == "add":
            _, computed, generated, extra = op
            generated = min(generated, computed - 1)
            req = seq(rid, computed, generated, generated + extra, last_s=now)
            rid += 1
            batch.add(req)
            shadow[req] = [computed, generated, now]
        elif op[0] == "step" and shadow:
            limit = batch.steps_to_finish()
            assert limit == min(o.output - g for o, (_, g, _) in shadow.items())
            k = min(op[1], limit)
            # blocks the next k steps need: every sequence's growth, one step at a time
            need = sum(blocks(c + k, block) - blocks(c, block) for c, _, _ in shadow.values())
            assert batch.blocks_through(batch.step + k) == need
            batch.reserved = batch.step + k
            gaps = batch.advance(k, now + 1.0, now + k)
            expected_gaps = sorted(now + 1.0 - last for _, _, last in shadow.values())
            assert sorted(g for g, n in gaps for _ in range(n)) == pytest.approx(expected_gaps)
            now += k
            for row in shadow.values():
                row[0] += k
                row[1] += k
                row[2] = now
            done = batch.pop_done()
            assert done == [o for o, (_, g, _) in shadow.items() if g >= o.output]
            for req in done:
                assert [req.computed, req.generated, req.last_token_s] == shadow.pop(req)
        elif op[0] == "remove" and shadow:
            req = list(shadow)[op[1] % len(shadow)]
            batch.remove(req)
            assert [req.computed, req.generated, req.last_token_s] == shadow.pop(req)
        assert len(batch) == len(shadow) and batch.reqs == list(shadow)
        assert batch.context == sum(c for c, _, _ in shadow.values())
        assert batch.tokens_left() == sum(o.output - g for o, (_, g, _) in shadow.items())
