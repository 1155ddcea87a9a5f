"""vLLM 0.6.0's front end, emulated: does its structure alone explain LambdaLabs' trickle?

LambdaLabs' vLLM 0.6.0 bursts reach the engine in a trickle, about seven prompts a step
(docs/accuracy.md). This harness rebuilds the path a request takes in vLLM 0.6.0, with the
same libraries and the same asyncio structure, and replays the 320-prompt burst through it:

* the client: ``benchmarks/benchmark_serving.py`` at ``--request-rate inf`` (one task and
  one aiohttp session per request, streamed completions);
* the API server: FastAPI under uvicorn (uvloop, httptools), a completion request model of
  vLLM's size, tokenization as CPU time, the RPC client of
  ``vllm/entrypoints/openai/rpc/client.py`` (a DEALER socket per request, an in-process
  ROUTER/DEALER proxy of two tasks), ``merge_async_iterators`` and a streamed response;
* the engine's process: ``rpc/server.py``'s loop and ``AsyncLLMEngine``'s engine loop in one
  uvloop event loop, the model run in a thread (``GPUExecutorAsync``: ``make_async``) that
  holds the GIL for the step's CPU part and sleeps for its GPU part; V0's scheduler
  (prompts first, FCFS, 2,048 tokens, 256 sequences) and ten decode steps at a time
  (multi-step 10).

It prints each engine step: when it started, the requests taken in before it, the prompts it
prefilled and their tokens. The GPU is a sleep; CPU times are options. This machine's cores
are shared by the three processes, the real host's were not.

    python3 -m venv /tmp/v && /tmp/v/bin/pip install fastapi uvicorn uvloop httptools \\
        pyzmq aiohttp cloudpickle
    /tmp/v/bin/python bench/vllm06_frontend.py [--prompts 320] [--tokenize-us 10]
        [--prefill-cpu-ms 10]

Needs ../shared/data/serving (the burst's prompt and output lengths).
"""

import argparse
import asyncio
import collections
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BURST = (
    Path(__file__).resolve().parents[2]
    / "shared/data/serving/lambdalabs/head/results/prompt_320/1xH100-80GB-SXM"
    / "Meta-Llama-3-8B-Instruct_tp1_len2048.json"
)
BUDGET, MAX_SEQS, STEPS = 2048, 256, 10  # vLLM 0.6 defaults at max_model_len 2048; multi-step


def busy(ms: float) -> None:
    """Hold the CPU (and the GIL) for ``ms`` milliseconds."""
    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:
        pass


class Out:
    """What the engine streams back per request and step (a RequestOutput's weight)."""

    def __init__(self, rid: str, prompt_ids: list[int], tokens: int, finished: bool):
        self.request_id, self.prompt_token_ids = rid, prompt_ids
        self.text, self.finished = "x" * tokens, finished


# --- the engine's process ----------------------------------------------------------------


def engine(rpc: str, log: str, prefill_cpu_ms: float) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import uvloop
    import zmq
    import zmq.asyncio

    pool = ThreadPoolExecutor(1)
    new: collections.deque = collections.deque()
    arrived = asyncio.Event()
    streams: dict[str, asyncio.Queue] = {}
    waiting: collections.deque = collections.deque()
    running: list[dict] = []
    steps: list[list] = []
    t0: list[float] = []

    def execute(prefill_tokens: int, seqs: int) -> None:
        if prefill_tokens:
            busy(prefill_cpu_ms)  # preparing inputs, eager kernel launches
            time.sleep((5 + 0.017 * prefill_tokens) / 1e3)  # the GPU
        else:
            for _ in range(STEPS):
                busy(1.0)
                time.sleep((6.5 + 0.02 * seqs) / 1e3)

    async def engine_step() -> bool:
        taken = 0
        while new:
            req = new.popleft()
            busy(0.1)  # add_request_async: Sequence, SequenceGroup
            waiting.append(req)
            taken += 1
        start = time.perf_counter() - t0[0]
        busy(0.5)  # the scheduler
        batch, tokens = [], 0
        while (
            waiting
            and tokens + len(waiting[0]["ids"]) <= BUDGET
            and len(running) + len(batch) < MAX_SEQS
        ):
            batch.append(waiting.popleft())
            tokens += len(batch[-1]["ids"])
        loop = asyncio.get_running_loop()
        if batch:
            await loop.run_in_executor(pool, execute, tokens, len(batch))
            running.extend(batch)
            emit = [(r, 1) for r in batch]
        elif running:
            await loop.run_in_executor(pool, execute, 0, len(running))
            emit = [(r, STEPS) for r in running]
        else:
            emit = []
        steps.append([start, taken, len(batch), tokens, len(running)])
        for r, k in emit:
            busy(0.03)  # output processing, detokenization
            k = min(k, r["max_tokens"] - r["done"])
            r["done"] += k
            finished = r["done"] >= r["max_tokens"]
            streams[r["rid"]].put_nowait(Out(r["rid"], r["ids"], k, finished))
            if finished:
                streams.pop(r["rid"]).put_nowait(None)
                running.remove(r)
        return bool(waiting or running)

    async def engine_loop() -> None:
        in_progress = False
        while True:
            if not in_progress:
                if not new:
                    await arrived.wait()
                arrived.clear()
                if not t0:
                    t0.append(time.perf_counter())
            task = asyncio.create_task(engine_step())
            await asyncio.wait([task])
            await asyncio.sleep(0)
            in_progress = task.result()
            if not in_progress:
                Path(log).write_text(json.dumps(steps))

    async def serve() -> None:
        ctx = zmq.asyncio.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.set_hwm(0)
        sock.connect(rpc)
        loop_task: list[asyncio.Task] = []
        handlers: set[asyncio.Task] = set()

        async def generate(identity, req: dict) -> None:
            if not loop_task:
                loop_task.append(asyncio.create_task(engine_loop()))
            queue: asyncio.Queue = asyncio.Queue()
            streams[req["rid"]] = queue
            new.append({**req, "done": 0})
            arrived.set()
            while (out := await queue.get()) is not None:
                await sock.send_multipart((identity, pickle.dumps(out)), copy=False)

        while True:  # rpc/server.py's run_server_loop
            identity, message = await sock.recv_multipart(copy=False)
            req = pickle.loads(message.buffer)
            if req == "ready":
                await sock.send_multipart((identity, pickle.dumps("ok")))
                continue
            task = asyncio.create_task(generate(identity, req))
            handlers.add(task)
            task.add_done_callback(handlers.discard)

    uvloop.run(serve())


# --- the API server's process ------------------------------------------------------------


def api(rpc: str, port: int, tokenize_us: float) -> None:
    import uvicorn
    import zmq
    import zmq.asyncio
    from fastapi import FastAPI, Request
    from fastapi.responses import StreamingResponse
    from pydantic import BaseModel

    inproc = f"inproc://{uuid.uuid4()}"

    class CompletionRequest(BaseModel):  # the fields of vLLM 0.6's, with their defaults
        model: str
        prompt: list[int] | list[list[int]] | str | list[str]
        best_of: int | None = None
        echo: bool | None = False
        frequency_penalty: float | None = 0.0
        logit_bias: dict | None = None
        logprobs: int | None = None
        max_tokens: int | None = 16
        n: int = 1
        presence_penalty: float | None = 0.0
        seed: int | None = None
        stop: str | list[str] | None = None
        stream: bool | None = False
        stream_options: dict | None = None
        suffix: str | None = None
        temperature: float | None = 1.0
        top_p: float | None = 1.0
        user: str | None = None
        use_beam_search: bool = False
        top_k: int = -1
        min_p: float = 0.0
        repetition_penalty: float = 1.0
        length_penalty: float = 1.0
        stop_token_ids: list[int] | None = None
        include_stop_str_in_output: bool = False
        ignore_eos: bool = False
        min_tokens: int = 0
        skip_special_tokens: bool = True
        spaces_between_special_tokens: bool = True

    class RPCClient:  # rpc/client.py
        def __init__(self):
            self.ctx = zmq.asyncio.Context()
            self.to_rpc = self.ctx.socket(zmq.DEALER)
            self.to_rpc.set_hwm(0)
            self.to_rpc.bind(rpc)
            self.from_api = self.ctx.socket(zmq.ROUTER)
            self.from_api.set_hwm(0)
            self.from_api.bind(inproc)
            self.tasks = [
                asyncio.create_task(self.proxy(self.from_api, self.to_rpc)),
                asyncio.create_task(self.proxy(self.to_rpc, self.from_api)),
            ]

        async def proxy(self, source, to) -> None:
            while True:
                frames = await source.recv_multipart(copy=False)
                await to.send_multipart(frames, copy=False)

        async def ready(self) -> None:
            sock = self.ctx.socket(zmq.DEALER)
            sock.connect(inproc)
            await sock.send_multipart((pickle.dumps("ready"),))
            await sock.recv()
            sock.close(linger=0)

        async def generate(self, req: dict):
            sock = self.ctx.socket(zmq.DEALER)
            sock.set_hwm(0)
            try:
                sock.connect(inproc)
                await sock.send_multipart((pickle.dumps(req),))
                finished = False
                while not finished:
                    message = await sock.recv(copy=False)
                    out = pickle.loads(message.buffer)
                    finished = out.finished
                    yield out
            finally:
                sock.close(linger=0)

    async def merge_async_iterators(*iterators, is_cancelled=None):  # vllm/utils.py, 0.6.0
        awaits = {asyncio.ensure_future(p[1].__anext__()): p for p in enumerate(iterators)}
        while awaits:
            done, _ = await asyncio.wait(
                awaits.keys(), return_when=asyncio.FIRST_COMPLETED, timeout=1
            )
            if is_cancelled is not None and await is_cancelled():
                raise asyncio.CancelledError
            for d in done:
                pair = awaits.pop(d)
                try:
                    item = await d
                    awaits[asyncio.ensure_future(pair[1].__anext__())] = pair
                    yield pair[0], item
                except StopAsyncIteration:
                    pass

    clients: list[RPCClient] = []

    async def lifespan(app):
        clients.append(RPCClient())
        await clients[0].ready()
        yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/completions")
    async def create_completion(request: CompletionRequest, raw_request: Request):
        rid = f"cmpl-{uuid.uuid4().hex}"
        words = request.prompt.split()
        busy(0.2 + tokenize_us * len(words) / 1e3)  # the tokenizer, the request's log line
        ids = list(range(len(words)))
        gen = clients[0].generate({"rid": rid, "ids": ids, "max_tokens": request.max_tokens})
        merged = merge_async_iterators(gen, is_cancelled=raw_request.is_disconnected)

        async def events():
            async for _, out in merged:
                choice = {"index": 0, "text": out.text, "logprobs": None}
                choice["finish_reason"] = "length" if out.finished else None
                chunk = {"id": rid, "object": "text_completion", "model": request.model}
                yield f"data: {json.dumps({**chunk, 'choices': [choice]})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning"
    )


# --- the client (benchmark_serving.py) and the harness -------------------------------------


async def burst(port: int, inputs: list[int], outputs: list[int]) -> list[float]:
    import aiohttp

    async def one(i: int) -> float:
        url = f"http://127.0.0.1:{port}/v1/completions"
        timeout = aiohttp.ClientTimeout(total=6 * 60 * 60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            payload = {
                "model": "m",
                "prompt": " hi" * inputs[i],
                "temperature": 0.0,
                "best_of": 1,
                "max_tokens": max(outputs[i], 1),
                "stream": True,
                "ignore_eos": True,
            }
            ttft, start = 0.0, time.perf_counter()
            async with session.post(url=url, json=payload) as response:
                async for chunk_bytes in response.content:
                    chunk = chunk_bytes.strip().decode("utf-8").removeprefix("data: ")
                    if chunk and chunk != "[DONE]" and not ttft:
                        if json.loads(chunk)["choices"][0]["text"]:
                            ttft = time.perf_counter() - start
            return ttft

    return await asyncio.gather(*(one(i) for i in range(len(inputs))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=320)
    ap.add_argument("--tokenize-us", type=float, default=10.0, help="API server CPU a token")
    ap.add_argument("--prefill-cpu-ms", type=float, default=10.0, help="under the GIL a step")
    args = ap.parse_args(argv)
    if not BURST.exists():
        print(f"no LambdaLabs burst at {BURST}", file=sys.stderr)
        return 2
    data = json.loads(BURST.read_text())
    inputs = data["input_lens"][: args.prompts]
    outputs = data["output_lens"][: args.prompts]
    with tempfile.TemporaryDirectory() as tmp:
        rpc, log, port = f"ipc://{tmp}/rpc", f"{tmp}/steps.json", 8000 + os.getpid() % 1000
        me = [sys.executable, __file__]
        procs = [
            subprocess.Popen([*me, "api", rpc, str(port), str(args.tokenize_us)]),
            subprocess.Popen([*me, "engine", rpc, log, str(args.prefill_cpu_ms)]),
        ]
        try:
            import urllib.request

            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
            ttfts = asyncio.run(burst(port, inputs, outputs))
            for _ in range(50):
                if Path(log).exists():
                    break
                time.sleep(0.1)
            steps = json.loads(Path(log).read_text())
        finally:
            for p in procs:
                p.kill()
    ttfts.sort()
    print(f"{args.prompts} prompts; TTFT p10/p50/p90 (s): ", end="")
    print(" ".join(f"{ttfts[int(q * (len(ttfts) - 1))]:.2f}" for q in (0.1, 0.5, 0.9)))
    prefill = [s for s in steps if s[2]]
    print(f"{len(steps)} steps, {len(prefill)} of them prefill")
    print("start_ms taken_in prefilled tokens running")
    for s in steps[: len(prefill) + 2]:
        print(f"{s[0] * 1e3:8.1f} {s[1]:8d} {s[2]:9d} {s[3]:6d} {s[4]:7d}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "engine":
        engine(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "api":
        api(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit(main())
