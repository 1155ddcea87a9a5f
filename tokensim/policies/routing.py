"""Global scheduling: which instance of a pool a request goes to.

``route POOL by NAME`` picks a built-in policy; ``route POOL by min(expr)`` or
``max(expr)`` picks the instance that minimises (maximises) an expression over
instance state, such as ``min(kv_used + 0.1 * queued)``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from operator import attrgetter

from tokensim.lang import ast
from tokensim.lang.diagnostics import Note, Reporter, did_you_mean, one_of
from tokensim.lang.schema import BAD, Num, Shape, Val
from tokensim.lang.units import Dim, UnitError, convert
from tokensim.policies import Param, Policy, PolicySlot, Registry

ROUTING = Registry("routing", "routing policy")


class Routing(Policy):
    """Base of the routing policies: ``choose(instances, req, rng)`` returns the index of
    the instance ``req`` goes to (ties go to the lowest index, so runs are deterministic).
    ``reads_state``: whether instances must be brought up to date before choosing (it
    reads a field of :data:`MOVING`)."""

    reads_state = True

    def choose(self, instances, req, rng) -> int:
        raise NotImplementedError


class _Least(Routing):
    """The instance with the least of ``field`` (a key of :data:`FIELDS`)."""

    field = ""

    @property
    def reads_state(self) -> bool:
        return self.field in MOVING

    def choose(self, instances, req, rng) -> int:
        read = _READERS[self.field]
        return _argmin([read(i, req) for i in instances])


@ROUTING.register("round_robin")
class RoundRobin(Routing):
    """Instances in turn."""

    reads_state = False

    def choose(self, instances, req, rng) -> int:
        self._next = getattr(self, "_next", -1) + 1
        return self._next % len(instances)


@ROUTING.register("random")
class Random(Routing):
    """An instance drawn uniformly with the run's seeded generator."""

    reads_state = False

    def choose(self, instances, req, rng) -> int:
        return int(rng.integers(len(instances)))


_N_REQUESTS = attrgetter("n_requests")


class CountIndex:
    """The instances of one route by their request count (``n_requests``), fewest first
    and of equal counts the first: a heap of ``(count, position)`` entries. Each instance
    tells it of every change (its ``watchers``), which pushes an entry; an entry whose count
    is no longer its instance's is dropped when it comes to the top. So a choice costs
    O(log instances), not a look at every instance."""

    def __init__(self, instances: list) -> None:
        self.instances = instances
        self._build()
        for k, inst in enumerate(instances):
            inst.watchers.append(self._watcher(k))

    def _build(self) -> None:
        self.heap = [(inst.n_requests, k) for k, inst in enumerate(self.instances)]
        heapq.heapify(self.heap)

    def _watcher(self, k: int):
        def changed(inst) -> None:
            heapq.heappush(self.heap, (inst.n_requests, k))
            if len(self.heap) > 4 * len(self.instances) + 64:  # let the stale entries go
                self._build()

        return changed

    def least(self) -> int:
        """The position of the instance with the fewest requests (the first of equals)."""
        heap, instances = self.heap, self.instances
        while True:
            count, k = heap[0]
            if instances[k].n_requests == count:
                return k
            heapq.heappop(heap)


@ROUTING.register("least_requests")
class LeastRequests(_Least):
    """The instance with the fewest requests (queued + running)."""

    field = "requests"
    _index: CountIndex | None = None

    def choose(self, instances, req, rng) -> int:
        index = self._index
        if index is None:  # the instances this router routes to, from now on
            index = self._index = CountIndex(instances)
        if index.instances is instances:
            return index.least()
        loads = list(map(_N_REQUESTS, instances))  # whole numbers: the first least is min's
        return loads.index(min(loads))


@ROUTING.register("least_tokens")
class LeastTokens(_Least):
    """The instance with the fewest tokens still to process (prefill + decode)."""

    field = "tokens"


@ROUTING.register("least_kv")
class LeastKv(_Least):
    """The instance with the lowest KV-cache utilisation."""

    field = "kv_used"


@ROUTING.register("prefix_affinity")
class PrefixAffinity(Routing):
    """The instance holding the longest cached prefix of the request's prompt, unless its
    load exceeds ``load_cap`` times the pool's mean load; then the least loaded."""

    params = (
        Param(
            "load_cap",
            Num("load_cap", above=1.0),
            1.5,
            "most load, relative to the pool mean, a preferred instance may carry",
        ),
    )

    def choose(self, instances, req, rng) -> int:
        fields = [instance_fields(i, req, ("prefix_hit", "requests")) for i in instances]
        loads = [f["requests"] for f in fields]
        mean = sum(loads) / len(loads)
        best = min(range(len(instances)), key=lambda i: (-fields[i]["prefix_hit"], loads[i], i))
        if fields[best]["prefix_hit"] > 0 and loads[best] <= self.load_cap * max(mean, 1.0):
            return best
        return _argmin(loads)


# What a routing rule may read of an instance, with its meaning (and unit).
FIELDS: dict[str, str] = {
    "queued": "requests waiting at the instance, its front end's included (for a decode "
    "instance, also KV copies waiting for its memory)",
    "running": "requests in the running batch",
    "requests": "queued + running (+ KV copies in flight to the instance)",
    "tokens": "tokens still to process: prompt tokens not yet prefilled plus output tokens to go",
    "prefill_tokens": "prompt tokens not yet prefilled",
    "kv_used": "fraction of KV blocks in use (0..1)",
    "kv_free": "fraction of KV blocks free (0..1)",
    "kv_used_blocks": "KV blocks in use",
    "kv_free_blocks": "KV blocks free",
    "prefix_hit": "fraction of this request's prompt already cached on the instance (0..1)",
    "prompt": "this request's prompt tokens",
    "index": "the instance's index in its pool",
}

# Functions a rule may call inside its expression: name -> (min args, max args).
FUNCTIONS: dict[str, tuple[int, int]] = {
    "min": (2, 99),
    "max": (2, 99),
    "abs": (1, 1),
    "log": (1, 1),
    "sqrt": (1, 1),
}


@dataclass(frozen=True)
class Rule:
    """A user routing rule: the instance that minimises (``goal='min'``) or maximises
    ``expr``. ``expr`` is the AST expression, checked to read only :data:`FIELDS`."""

    goal: str
    expr: ast.Expr
    text: str
    fields: tuple[str, ...]
    span: object

    def dump_text(self) -> str:
        return f"Rule({self.text!r})"


def _check_expr(expr, rep: Reporter, fields: set[str]) -> bool:
    ok = True
    if isinstance(expr, ast.Path):
        name = expr.text
        if name not in FIELDS:
            rep.error(
                f"unknown instance field `{name}` in routing rule",
                expr.span,
                Note(f"a rule can read {one_of(FIELDS)}"),
                help=did_you_mean(name, FIELDS),
            )
            return False
        fields.add(name)
    elif isinstance(expr, ast.Quantity):
        try:
            convert(expr.number, expr.unit, Dim.COUNT)
        except UnitError:
            rep.error(f"a routing rule takes plain numbers, found `{expr.text}`", expr.span)
            return False
    elif isinstance(expr, ast.Call):
        if expr.name not in FUNCTIONS:
            rep.error(
                f"unknown function `{expr.name}` in routing rule",
                expr.span,
                Note(f"functions: {one_of(FUNCTIONS)}"),
                help=did_you_mean(expr.name, FUNCTIONS),
            )
            return False
        low, high = FUNCTIONS[expr.name]
        if not low <= len(expr.args) <= high:
            want = f"{low}" if low == high else f"at least {low}"
            rep.error(f"`{expr.name}` takes {want} argument{'s' * (low > 1)} here", expr.span)
            ok = False
        for arg in expr.args:
            ok = _check_expr(arg, rep, fields) and ok
    elif isinstance(expr, ast.BinOp):
        ok = _check_expr(expr.left, rep, fields) & _check_expr(expr.right, rep, fields)
    elif isinstance(expr, ast.Neg):
        ok = _check_expr(expr.operand, rep, fields)
    return ok


def expr_text(expr) -> str:
    """The canonical text of an expression (for dumps and reports)."""
    if isinstance(expr, ast.Path):
        return expr.text
    if isinstance(expr, ast.Quantity):
        return f"{expr.number:g}"
    if isinstance(expr, ast.Call):
        return f"{expr.name}({', '.join(expr_text(a) for a in expr.args)})"
    if isinstance(expr, ast.Neg):
        return f"-{_paren(expr.operand, 3)}"
    if isinstance(expr, ast.BinOp):
        level = 1 if expr.op in "+-" else 2
        right_level = level + 1 if expr.op in "-/" else level
        return f"{_paren(expr.left, level)} {expr.op} {_paren(expr.right, right_level)}"
    raise TypeError(expr)


def _paren(expr, level: int) -> str:
    own = 1 if isinstance(expr, ast.BinOp) and expr.op in "+-" else 2
    own = own if isinstance(expr, ast.BinOp) else 9
    text = expr_text(expr)
    return f"({text})" if own < level else text


@dataclass(frozen=True)
class RouteSlot(PolicySlot):
    """A routing policy name, or a rule ``min(expr)`` / ``max(expr)``."""

    def usage(self) -> str:
        return "<routing policy>|min(<expr>)|max(<expr>)"

    def match(self, items, i, rep):
        if i < len(items) and isinstance(items[i], ast.Call):
            call = items[i]
            if call.name not in ("min", "max") or len(call.args) != 1:
                rep.error(
                    f"a routing rule is `min(<expr>)` or `max(<expr>)`, found `{call.name}(...)`"
                    if call.name not in ("min", "max")
                    else f"`{call.name}` over instances takes one expression",
                    call.span,
                )
                return BAD, len(items)
            if i + 1 < len(items):
                raise Shape(items[i + 1])
            fields: set[str] = set()
            if not _check_expr(call.args[0], rep, fields):
                return BAD, len(items)
            text = f"{call.name}({expr_text(call.args[0])})"
            return Val(
                Rule(call.name, call.args[0], text, tuple(sorted(fields)), call.span), call.span
            ), len(items)
        return super().match(items, i, rep)

    def bind_body(self, matched, stmt, rep):
        if isinstance(matched, Val):
            if stmt.body is not None:
                rep.error("a routing rule takes no { } block", stmt.span)
            return matched.value
        return super().bind_body(matched, stmt, rep)


# -- what instances look like to a router --------------------------------------------------


# The fields that change while an instance runs decode steps between events (tokens are
# generated, KV blocks granted, cached blocks evicted): reading them first brings the
# instance's decode run up to date. The others change only at events.
MOVING = frozenset(
    {"tokens", "kv_used", "kv_free", "kv_used_blocks", "kv_free_blocks", "prefix_hit"}
)


def _prefill_tokens(inst) -> int:
    total = inst.waiting.tokens
    for r in inst.prefilling:
        total += r.to_compute
    for r in inst.accepting:
        total += r.prompt
    return total


def _tokens(inst) -> int:
    # prompt tokens still to compute, then output tokens still to make (whole numbers: the
    # order of the sums does not matter)
    total = _prefill_tokens(inst) + inst.waiting.output_tokens + inst.batch.tokens_left()
    for r in inst.prefilling:
        total += r.output - r.generated
    for r, _ in inst.incoming:  # arriving: KV waiting for memory, copying, or arrived
        total += r.output - r.generated
    for r in inst.receiving:
        total += r.output - r.generated
    for r in inst.ready:
        total += r.output - r.generated
    for r in inst.accepting:
        total += r.output
    return total


def _queued(inst) -> int:
    return len(inst.waiting) + len(inst.swapped) + len(inst.incoming) + len(inst.accepting)


def count_requests(inst) -> int:
    """The ``requests`` field counted from the instance's queues (the instance keeps it as
    ``n_requests``; the simulator's checks compare the two)."""
    return _queued(inst) + len(inst.running) + len(inst.receiving) + len(inst.ready)


# How to read each field of FIELDS from an instance (and the request being routed). The
# waiting queue keeps running totals, so no field costs more than the running batch's size.
_READERS = {
    "queued": lambda i, r: _queued(i),
    "running": lambda i, r: len(i.running),
    "requests": lambda i, r: i.n_requests,
    "tokens": lambda i, r: _tokens(i),
    "prefill_tokens": lambda i, r: _prefill_tokens(i),
    "kv_used": lambda i, r: i.kv.used_blocks / max(1, i.kv.capacity_blocks),
    "kv_free": lambda i, r: 1 - i.kv.used_blocks / max(1, i.kv.capacity_blocks),
    "kv_used_blocks": lambda i, r: i.kv.used_blocks,
    "kv_free_blocks": lambda i, r: i.kv.capacity_blocks - i.kv.used_blocks,
    "prefix_hit": lambda i, r: i.kv.hit_tokens(r.hashes, r.prompt) / r.prompt if r.hashes else 0.0,
    "prompt": lambda i, r: r.prompt,
    "index": lambda i, r: i.index,
}
assert set(_READERS) == set(FIELDS)


def instance_fields(inst, req, names=FIELDS) -> dict[str, float]:
    """The values of the fields ``names`` (default: all of :data:`FIELDS`) of ``inst``."""
    return {name: _READERS[name](inst, req) for name in names}


def _argmin(values) -> int:
    best = 0
    for i, v in enumerate(values):
        if v < values[best]:
            best = i
    return best


_OPS = {"+": float.__add__, "-": float.__sub__, "*": float.__mul__, "/": float.__truediv__}
_FUNCS = {
    "min": min,
    "max": max,
    "abs": abs,
    "log": __import__("math").log,
    "sqrt": __import__("math").sqrt,
}


def compile_expr(expr):
    """A function of a fields dict computing ``expr`` (division by zero gives inf)."""
    if isinstance(expr, ast.Path):
        name = expr.text
        return lambda f: float(f[name])
    if isinstance(expr, ast.Quantity):
        value = float(expr.number)
        return lambda f: value
    if isinstance(expr, ast.Neg):
        inner = compile_expr(expr.operand)
        return lambda f: -inner(f)
    if isinstance(expr, ast.BinOp):
        left, right = compile_expr(expr.left), compile_expr(expr.right)
        if expr.op == "/":

            def divide(f):
                d = right(f)
                return left(f) / d if d else float("inf")

            return divide
        op = _OPS[expr.op]
        return lambda f: op(left(f), right(f))
    if isinstance(expr, ast.Call):
        fn = _FUNCS[expr.name]
        args = [compile_expr(a) for a in expr.args]

        def call(f):
            try:
                return float(fn(*(a(f) for a in args)))
            except ValueError:  # log or sqrt of a negative number
                return float("nan")

        return call
    raise TypeError(expr)


class RuleRouter(Routing):
    """A user rule as a router: the instance minimising (maximising) the expression."""

    def __init__(self, rule: Rule):
        self.rule = rule
        self.reads_state = not MOVING.isdisjoint(rule.fields)
        self.fn = compile_expr(rule.expr)
        self.sign = 1.0 if rule.goal == "min" else -1.0

    def choose(self, instances, req, rng) -> int:
        scores = []
        for inst in instances:
            v = self.fn(instance_fields(inst, req, self.rule.fields)) * self.sign
            scores.append(float("inf") if v != v else v)  # NaN never wins
        return _argmin(scores)


def router_for(policy) -> object:
    """An object with ``choose(instances, req, rng)`` for a route's policy or rule."""
    if isinstance(policy, Rule):
        return RuleRouter(policy)
    return ROUTING.get(policy.name).from_use(policy)
