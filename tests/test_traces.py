"""Trace files: every format reads back what was written, every mistake is located."""

import time
from pathlib import Path

import numpy as np
import pytest

from tokensim.lang.diagnostics import CompileError
from tokensim.workload import Requests, TraceError, read_trace, write_trace
from tokensim.workload.traces import MAX_ERRORS

TRACES = Path(__file__).resolve().parent / "traces"
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"  # ../shared/data


def shared(relative: str) -> Path:
    """A file under the shared data folder; skips the test when it is absent."""
    path = SHARED / relative
    if not path.is_file():
        pytest.skip(f"shared data absent: {path} (the measured traces are not in the repo)")
    return path


def columns(r: Requests) -> tuple:
    return (
        r.arrival_s.tolist(),
        r.prompt_tokens.tolist(),
        r.output_tokens.tolist(),
        r.priority.tolist(),
        r.prefix_hashes,
        r.prefix_block_tokens,
        r.has_arrivals,
    )


# ---- each format ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["auto", "tokensim"])
def test_tokensim_csv(fmt):
    r = read_trace(TRACES / "tiny_tokensim.csv", fmt)
    assert columns(r) == (
        [0.0, 0.5, 2.25],
        [100, 200, 300],
        [10, 20, 30],
        [0, 1, 2],
        ((1, 2), (1, 3), ()),
        16,
        True,
    )


@pytest.mark.parametrize("fmt", ["auto", "tokensim"])
def test_tokensim_jsonl(fmt):
    r = read_trace(TRACES / "tiny_tokensim.jsonl", fmt)
    assert columns(r) == (
        [1.0, 1.5, 4.0],
        [100, 200, 300],
        [10, 20, 30],
        [0, 3, 0],
        ((), (7, 8), ()),
        64,
        True,
    )


@pytest.mark.parametrize("fmt", ["auto", "azure"])
def test_azure_csv_crosses_midnight(fmt):
    r = read_trace(TRACES / "tiny_azure.csv", fmt)
    assert r.arrival_s.tolist() == pytest.approx([0.0, 0.75, 2.5], abs=1e-9)
    assert r.prompt_tokens.tolist() == [374, 396, 879]
    assert r.output_tokens.tolist() == [44, 109, 55]
    assert r.prefix_hashes is None and r.prefix_block_tokens == 0


@pytest.mark.parametrize("fmt", ["auto", "mooncake"])
def test_mooncake_jsonl(fmt):
    r = read_trace(TRACES / "tiny_mooncake.jsonl", fmt)
    assert columns(r) == (
        [1.0, 1.5, 4.0],
        [1000, 600, 10],
        [5, 7, 1],
        [0, 0, 0],
        ((0, 1), (0, 2), (3,)),
        512,
        True,
    )


@pytest.mark.parametrize("fmt", ["auto", "vidur"])
def test_vidur_csv(fmt):
    r = read_trace(TRACES / "tiny_vidur.csv", fmt)
    assert r.arrival_s.tolist() == [0.0, 4.314579, 6.5]
    assert r.prompt_tokens.tolist() == [374, 396, 879] and r.has_arrivals


def test_vidur_csv_without_arrivals():
    r = read_trace(TRACES / "tiny_vidur_lengths.csv")
    assert columns(r)[:3] == ([0.0, 0.0], [3772, 2015], [54, 156])
    assert not r.has_arrivals


@pytest.mark.parametrize("name", ["t.csv", "t.jsonl"])
def test_write_then_read_is_identity(tmp_path, name):
    rng = np.random.default_rng(0)
    n = 50
    r = Requests(
        np.cumsum(rng.exponential(0.3, n)),
        rng.integers(1, 5000, n),
        rng.integers(1, 500, n),
        rng.integers(-2, 3, n),
        tuple(tuple(int(x) for x in rng.integers(0, 99, i % 4)) for i in range(n)),
        16,
    )
    write_trace(r, tmp_path / name)
    assert columns(read_trace(tmp_path / name)) == columns(r)
    plain = Requests(np.zeros(2), np.ones(2, np.int64), np.ones(2, np.int64), np.zeros(2, np.int64))
    write_trace(plain, tmp_path / name)
    assert columns(read_trace(tmp_path / name, "tokensim")) == columns(plain)


# ---- mistakes ------------------------------------------------------------------------------

TOKENSIM_HEADER = "arrival_s,prompt_tokens,output_tokens\n"
AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


@pytest.mark.parametrize(
    ("name", "text", "fmt", "line", "message"),
    [
        (
            "t.csv",
            AZURE_HEADER
            + "2023-11-16 18:15:46.6805900,374,44\n" * 15
            + "2023-11-16 18:15:47.0000000,12a,3\n",
            "azure",
            17,
            'ContextTokens is not a whole number: "12a"',
        ),
        (
            "t.csv",
            AZURE_HEADER + "2023-11-16 18:15:46.6805900,-5,44\n",
            "auto",
            2,
            "ContextTokens must be at least 1, not -5",
        ),
        (
            "t.csv",
            AZURE_HEADER + "2023-11-16 18:15:46,5,4\n2023-11-16 25:00:00,5,4\n",
            "azure",
            3,
            'TIMESTAMP is not a valid date and time: "2023-11-16 25:00:00"',
        ),
        (
            "t.csv",
            AZURE_HEADER + "yesterday,5,4\n",
            "azure",
            2,
            'TIMESTAMP is not a time like 2023-11-16 18:15:46.6805900: "yesterday"',
        ),
        (
            "t.csv",
            "TIMESTAMP,Context,GeneratedTokens\n1,2,3\n",
            "azure",
            1,
            'expected the azure header "TIMESTAMP,ContextTokens,GeneratedTokens"',
        ),
        (
            "t.csv",
            TOKENSIM_HEADER + "0,5,0\n",
            "auto",
            2,
            "output_tokens must be at least 1, not 0",
        ),
        (
            "t.csv",
            TOKENSIM_HEADER + "0,5,1\n-1,5,1\n",
            "tokensim",
            3,
            "arrival_s must be at least 0, not -1",
        ),
        ("t.csv", TOKENSIM_HEADER + "nan,5,1\n", "tokensim", 2, 'arrival_s is not a number: "nan"'),
        ("t.csv", TOKENSIM_HEADER + "0,5,1\n1,5\n", "tokensim", 3, "expected 3 values, found 2"),
        (
            "t.csv",
            TOKENSIM_HEADER + "2,5,1\n\n1,5,1\n",
            "tokensim",
            4,
            'arrival_s goes back in time: "1" is before "2" on line 2',
        ),
        (
            "t.csv",
            "arrival_s,prompt_tokens,output_tokenz\n0,1,1\n",
            "tokensim",
            1,
            "unknown column `output_tokenz` in a tokensim trace",
        ),
        (
            "t.csv",
            "arrival_s,prompt_tokens,output_tokens,prefix_hashes\n0,1,1,3 4\n",
            "tokensim",
            2,
            "prefix_hashes needs prefix_block_tokens (tokens per id)",
        ),
        (
            "t.csv",
            "arrival_s,prompt_tokens,output_tokens,prefix_hashes,prefix_block_tokens\n"
            "0,1,1,3 x,16\n",
            "tokensim",
            2,
            'an id in prefix_hashes is not a whole number: "x"',
        ),
        (
            "t.csv",
            "num_prefill_tokens,pd_ratio\n5,1\n",
            "vidur",
            1,
            "the vidur header lacks `num_decode_tokens`",
        ),
        (
            "t.jsonl",
            '{"timestamp": 0, "input_length": 5, "output_length": 1}\n'
            '{"timestamp": 1, "input_length": 5, "output_length": 1,}\n',
            "mooncake",
            2,
            "not valid JSON: Expecting property name enclosed in double quotes (column 56)",
        ),
        (
            "t.jsonl",
            '{"timestamp": 0, "input_length": 5, "output_length": 0}\n',
            "auto",
            1,
            "output_length must be at least 1, not 0",
        ),
        (
            "t.jsonl",
            '{"timestamp": 0, "input_length": 5.5, "output_length": 1}\n',
            "mooncake",
            1,
            'input_length is not a whole number: "5.5"',
        ),
        (
            "t.jsonl",
            '{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [1, -2]}\n',
            "mooncake",
            1,
            "an id in hash_ids must be at least 0, not -2",
        ),
        (
            "t.jsonl",
            '{"timestamp": 0, "input_length": 5}\n',
            "mooncake",
            1,
            "missing `output_length`",
        ),
        ("t.jsonl", "[1, 2, 3]\n", "mooncake", 1, "expected a JSON object `{...}`"),
        (
            "t.jsonl",
            '{"arrival_s": 0, "prompt_tokens": 1, "output_tokens": 1, "priorty": 2}\n',
            "tokensim",
            1,
            "unknown key `priorty` in a tokensim trace",
        ),
        (
            "t.txt",
            "when,how_long\n1,2\n",
            "auto",
            1,
            'cannot tell the trace format from "when,how_long"',
        ),
    ],
)
def test_mistakes_are_located(tmp_path, name, text, fmt, line, message):
    path = tmp_path / name
    path.write_text(text, "utf-8")
    with pytest.raises(TraceError) as info:
        read_trace(path, fmt)
    first = info.value.diagnostics[0]
    assert first.message == f"trace line {line}: {message}"
    assert (first.span.file, first.span.line, first.span.col) == (str(path), line, 1)
    assert "trace line" in str(info.value.to_compile_error())


def test_unknown_column_suggests_the_right_one(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokenz\n0,1,1\n")
    with pytest.raises(TraceError) as info:
        read_trace(path)
    assert info.value.diagnostics[0].help == "did you mean `output_tokens`?"


def test_every_bad_line_is_reported_up_to_a_limit(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(TOKENSIM_HEADER + "0,1,1\n0,x,1\n0,1,0\n0,1,1\n")
    with pytest.raises(TraceError) as info:
        read_trace(path)
    assert [d.span.line for d in info.value.diagnostics] == [3, 4]
    path.write_text(TOKENSIM_HEADER + "0,x,1\n" * 100)
    with pytest.raises(TraceError) as info:
        read_trace(path)
    diagnostics = info.value.diagnostics
    assert len(diagnostics) == MAX_ERRORS and diagnostics[-1].span.line == MAX_ERRORS + 1
    assert diagnostics[-1].notes[-1].message == f"stopped after {MAX_ERRORS} errors"


def test_error_renders_like_a_compile_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(AZURE_HEADER + "2023-11-16 18:15:46.6805900,12a,44\n")
    with pytest.raises(TraceError) as info:
        read_trace(path)
    err = info.value.to_compile_error()
    assert isinstance(err, CompileError)
    assert str(err) == (
        'error: trace line 2: ContextTokens is not a whole number: "12a"\n'
        f" --> {path}:2:1\n"
        "  |\n"
        "2 | 2023-11-16 18:15:46.6805900,12a,44\n"
        "  | " + "^" * 34 + "\n\n1 error"
    )


@pytest.mark.parametrize("make", ["missing", "directory", "binary", "empty", "header_only"])
def test_unusable_files(tmp_path, make):
    path = tmp_path / "t.csv"
    if make == "directory":
        path.mkdir()
    elif make == "binary":
        path.write_bytes(b"\xff\xfe\x00\x81 not text")
    elif make == "empty":
        path.write_text("\n\n")
    elif make == "header_only":
        path.write_text(TOKENSIM_HEADER)
    with pytest.raises(TraceError) as info:
        read_trace(path)
    (d,) = info.value.diagnostics
    expected = {
        "missing": "not found",
        "directory": "is a folder, not a file",
        "binary": "cannot be read",
        "empty": "is empty",
        "header_only": "has no requests",
    }[make]
    assert d.message.startswith(f"trace file `{path}` {expected}") and d.span is None
    assert "error: trace file" in str(info.value.to_compile_error())


# ---- the shared real traces ----------------------------------------------------------------


def _csv_column(path: Path, index: int) -> list[int]:
    lines = path.read_text("utf-8").splitlines()[1:]
    return [int(line.split(",")[index]) for line in lines if line]


@pytest.mark.parametrize(("name", "rows"), [("conv", 19366), ("code", 8819)])
def test_azure_traces_load(name, rows):
    # The data README says 19,365 and 8,818 (wc -l): the files lack a final newline.
    path = shared(f"traces/azure_llm_2023/AzureLLMInferenceTrace_{name}.csv")
    start = time.perf_counter()
    r = read_trace(path)
    elapsed = time.perf_counter() - start
    assert len(r) == rows
    assert r.prompt_tokens.tolist() == _csv_column(path, 1)
    assert r.output_tokens.tolist() == _csv_column(path, 2)
    assert r.arrival_s[0] == 0 and 3400 < r.arrival_s[-1] < 3600  # about one hour
    assert elapsed < 2.0  # about 0.1 s on a laptop; generous for a loaded CI machine


def test_azure_times_agree_with_vidurs_processed_copy():
    azure = read_trace(shared("traces/azure_llm_2023/AzureLLMInferenceTrace_conv.csv"))
    vidur = read_trace(shared("vidur/data/processed_traces/splitwise_conv.csv"), "vidur")
    assert len(vidur) == len(azure) and vidur.has_arrivals
    assert np.array_equal(vidur.prompt_tokens, azure.prompt_tokens)
    assert np.abs(vidur.arrival_s - azure.arrival_s).max() < 1e-5


def test_mooncake_conversation_trace_loads_with_hash_ids():
    start = time.perf_counter()
    r = read_trace(shared("traces/mooncake/conversation_trace.jsonl"))
    elapsed = time.perf_counter() - start
    assert len(r) == 12031 and r.prefix_block_tokens == 512
    assert all(r.prefix_hashes)
    # Each id covers 512 prompt tokens: as many ids as blocks the prompt fills.
    blocks = np.array([len(h) for h in r.prefix_hashes])
    assert np.array_equal(blocks, -(-r.prompt_tokens // 512))
    assert elapsed < 2.0


def test_vidur_length_only_trace_loads():
    r = read_trace(
        shared(
            "vidur/data/processed_traces/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv"
        )
    )
    assert len(r) == 28257 and not r.has_arrivals
