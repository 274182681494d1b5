"""What `ENGINE=sglang` serves, checked before anything loads: anything else is refused with the
reason (the worker exits), never served by the transformers engine instead. docs/SGLANG.md has
the evidence behind each refusal."""

from __future__ import annotations

from queues.types import Stage

FAMILIES = ("qwen2-vl", "qwen2.5-vl")  # media inputs wired and checked against HF `generate`
STAGES: tuple[Stage, ...] = ("agg", "encode", "pd")  # the stages it can run

PD_ON_CPU = (
    "sglang's prefill/decode disaggregation cannot run without a GPU: sglang 0.5.23 registers its KV "
    "pool with NIXL as VRAM (disaggregation/prefill.py and decode.py, kv_data_mem_kinds), and UCX refuses "
    "host memory registered as VRAM ('VRAM memory is detected as host by UCX', NIXL_ERR_BACKEND when the "
    "scheduler starts); the decode side also pins a host KV pool with cudaHostRegister"
)
PD_NOT_WIRED = (
    "sglang's prefill/decode disaggregation is not wired into our prefill/decode stages yet (the bootstrap "
    "host/port/room would travel in our job messages)"
)


class SglangUnsupported(RuntimeError):
    """This deployment cannot be served by the sglang backend; the message says why."""


def check_supported(stage: str, family: str, device: str) -> None:
    if stage not in STAGES:
        reason = PD_ON_CPU if device.startswith("cpu") else PD_NOT_WIRED
        raise SglangUnsupported(
            f"ENGINE=sglang cannot run the {stage} stage (MODE=e-p-d): {reason}. "
            "Use MODE=agg or MODE=e-pd with ENGINE=sglang, or ENGINE=hf; see docs/SGLANG.md."
        )
    if family not in FAMILIES:
        raise SglangUnsupported(
            f"ENGINE=sglang serves {' and '.join(FAMILIES)} checkpoints, not {family}: its inputs (e.g. "
            "audio features) are not wired to sglang in this backend. Use ENGINE=hf; see docs/SGLANG.md."
        )
