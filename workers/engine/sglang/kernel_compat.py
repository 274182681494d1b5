"""`sgl_kernel` on a machine without CUDA: the real package's pure-Python parts, no `common_ops`.

sglang imports `sgl_kernel` from dozens of modules, and the PyPI `sglang-kernel` wheel loads its
CUDA-only `common_ops` library (it needs `libcuda.so.1`) on import; the CPU build of the kernels is
not on PyPI. On CPUs without AMX, sglang's hot path (rmsnorm, rope/mrope, silu_and_mul, attention)
is plain torch, so the compiled kernels are not needed, only importable names.

`activate()` (before sglang is imported, and only when no CUDA device is present) puts `_shim/` in
front of `sys.path` and `PYTHONPATH`. sglang starts its scheduler and detokenizer with the `spawn`
start method, whose children take the parent's `sys.path`, so they import the shim too. The shim's
`sgl_kernel/__init__.py` calls `load_real_package`, which runs the real package's `__init__` with
the library loader replaced by a no-op, and answers `torch.ops.sgl_kernel.<name>_cpu` (looked up
at import time by some sglang modules) with placeholders. A placeholder raises if called and first
appends the call to the file named by `TRIPTYCH_SGL_KERNEL_CALLS`, because calls would happen in
sglang's scheduler process, out of a caller's sight: tests read the file and require it empty.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

CALLS_ENV = "TRIPTYCH_SGL_KERNEL_CALLS"  # file each placeholder call is appended to (optional)
SHIM_DIR = Path(__file__).resolve().parent / "_shim"
# `*_cpu` ops sglang probes with hasattr() to pick an optional fused path: report them absent, so
# sglang takes its plain torch path instead of calling a placeholder.
OPTIONAL_PROBES = frozenset({"fused_qk_norm_cpu", "fused_qk_norm_rope_cpu"})
MARKER = "__triptych_cpu_compat__"


def needed() -> bool:
    """True when no CUDA device is present (the compiled kernels cannot load)."""
    return not torch.cuda.is_available()


def activate() -> bool:
    """Make `import sgl_kernel` load the shim in this process and its children; set sglang's CPU
    platform. A no-op returning False when a CUDA device is present."""
    if not needed():
        return False
    loaded = sys.modules.get("sgl_kernel")
    if loaded is not None and not getattr(loaded, MARKER, False):
        raise RuntimeError("sgl_kernel was imported before the CPU compatibility module was activated")
    os.environ["SGLANG_USE_CPU_ENGINE"] = "1"  # `device="cpu"` alone does not pick sglang's CPU platform
    shim = str(SHIM_DIR)
    if shim not in sys.path:
        sys.path.insert(0, shim)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if shim not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([shim, *paths])
    log.warning(
        "no CUDA device: sgl_kernel CPU compatibility is active (its CUDA-only common_ops library is "
        "not loaded; torch.ops.sgl_kernel.*_cpu are placeholders that raise if called%s)",
        f", calls recorded in {os.environ[CALLS_ENV]}" if os.environ.get(CALLS_ENV) else "",
    )
    return True


def load_real_package(namespace: dict[str, Any]) -> None:
    """Fill the shim module's `namespace` with the real `sgl_kernel` package, minus `common_ops`."""
    real = _real_package_dir()
    namespace["__path__"] = [str(real)]  # submodules (elementwise, kvcacheio, ...) are the real files
    namespace[MARKER] = True
    ops: Any = torch.ops
    if not isinstance(ops.sgl_kernel, PlaceholderOps):
        ops.sgl_kernel = PlaceholderOps(ops.sgl_kernel)
    loader: Any = importlib.import_module("sgl_kernel.load_utils")
    loader._load_architecture_specific_ops = _skip_common_ops
    loader._preload_cuda_library = _skip_cuda_library
    init = real / "__init__.py"
    exec(compile(init.read_text(), str(init), "exec"), namespace)  # the real package's own __init__
    version = namespace.get("__version__")
    log.info("sgl_kernel %s loaded from %s without common_ops (CPU compatibility)", version, real)


def _real_package_dir() -> Path:
    for entry in sys.path:
        if not entry or Path(entry).resolve() == SHIM_DIR:
            continue
        candidate = Path(entry) / "sgl_kernel"
        if (candidate / "__init__.py").exists():
            return candidate.resolve()
    raise ImportError("the sgl_kernel package (pip install sglang-kernel) is not installed")


def _skip_common_ops() -> None:
    return None


def _skip_cuda_library() -> None:
    return None


class PlaceholderOps:
    """Stands in for `torch.ops.sgl_kernel`: ops some library did register still resolve,
    `<name>_cpu` resolves to a `Placeholder`, anything else is absent (as without the library)."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self._placeholders: dict[str, Placeholder] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self._real, name)
        except AttributeError:
            pass
        if not name.endswith("_cpu") or name in OPTIONAL_PROBES:
            raise AttributeError(f"torch.ops.sgl_kernel.{name} does not exist (common_ops is not loaded)")
        return self._placeholders.setdefault(name, Placeholder(name))


class Placeholder:
    """A compiled op that is not there: records the call, then raises."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def default(self) -> Placeholder:  # torch.ops.ns.op.default, as on a real op
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        record_call(self.name)
        raise NotImplementedError(
            f"torch.ops.sgl_kernel.{self.name} was called, but it is a placeholder: the CPU build of "
            "sgl_kernel is not installed (only AVX2 paths that need no compiled kernel are supported)"
        )


def record_call(name: str) -> None:
    path = os.environ.get(CALLS_ENV)
    line = f"{time.time():.3f} pid={os.getpid()} torch.ops.sgl_kernel.{name}\n"
    log.error("placeholder torch.ops.sgl_kernel.%s called", name)
    if path:
        with open(path, "a") as calls:
            calls.write(line)
