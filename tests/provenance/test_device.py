"""``device_description``: a CPU record names the CPU's model, its vector instructions and whether bf16 is
native, so that timings from two CPU kinds are never read as one machine's."""

from __future__ import annotations

import torch

from ssl_bench import provenance

# Two processors of an AVX-512 BF16 machine, trimmed: the first one's fields are read.
CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16

processor\t: 1
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16
"""


def test_cpuinfo_gives_the_model_name_and_flags() -> None:
    model, flags = provenance.parse_cpuinfo(CPUINFO)
    assert model == "AMD EPYC 9R14 96-Core Processor"
    assert flags == {"fpu", "sse2", "avx2", "avx512f", "avx512_bf16"}


def test_a_cpu_device_names_its_model_instructions_bf16_and_threads(monkeypatch) -> None:
    monkeypatch.setattr(provenance, "cpu_info", lambda: provenance.parse_cpuinfo(CPUINFO))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    text = provenance.device_description(torch.device("cpu"))
    threads = torch.get_num_threads()
    assert text == f"cpu (AMD EPYC 9R14 96-Core Processor, AVX512, native bf16, {threads} threads)"
    monkeypatch.setattr(provenance, "cpu_info", lambda: ("Intel(R) Xeon(R)", frozenset({"avx2"})))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert provenance.device_description(torch.device("cpu")).startswith("cpu (Intel(R) Xeon(R), AVX2, ")
