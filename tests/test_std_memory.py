"""The catalogue's GPU memory is what the driver reports, in binary units."""

import re

import pytest

from tokensim.lang.check import std_dir, std_spec

MIB = 2**20
# nvidia-smi's memory.total (MiB) of the boards, as cited in std/hardware
DRIVER_MIB = {
    "H100_SXM": 81559,
    "A100_80G": 81920,
    "H200": 143771,
    "A100_40G": 40960,
    "RTX_4090": 24564,
    "RTX_3090": 24576,
    "L4": 23034,
    "A10": 23028,
}


def test_an_80_gb_h100_has_about_80_gib():
    gpus = {g.name: g for g in std_spec("hardware").gpus}
    assert gpus["H100_SXM"].memory_B >= 85e9  # not 80e9: 7% of the KV cache was missing
    for name, mib in DRIVER_MIB.items():
        assert gpus[name].memory_B == pytest.approx(mib * MIB), name


def test_every_gpu_memory_is_a_whole_number_of_mib_with_its_source_on_the_line():
    text = std_dir().joinpath("hardware.tsim").read_text("utf-8")
    lines = re.findall(r"^  memory .*$", text, re.M)
    gpus = std_spec("hardware").gpus
    assert len(lines) == len(gpus)
    for line in lines:
        assert re.match(r"  memory \d+ MiB ", line), line
        assert re.search(r"\w/[\w.-]+(#\d+| \S+\.(py|md))", line) or "captures" in line, line
    for g in gpus:
        assert g.memory_B % MIB == 0, g.name
