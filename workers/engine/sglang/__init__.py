"""The sglang engine backend (`ENGINE=sglang`): the same `Engine` interface served by sglang.

Import-light: sglang is imported only by `loader.load_sglang_engine`, after `kernel_compat`
prepared the process (no CUDA device: sgl_kernel without its CUDA-only library).
"""
