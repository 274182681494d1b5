"""Shadows the real `sgl_kernel` while `workers.engine.sglang.kernel_compat` is active (no CUDA
device): the real package without its CUDA-only `common_ops` library. See that module."""

from workers.engine.sglang.kernel_compat import load_real_package

load_real_package(globals())
