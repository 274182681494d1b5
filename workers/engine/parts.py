"""Loading only the modules a stage runs: encode holds the media tower, prefill and decode the
language model, agg both.

A checkpoint class of the family is subclassed so that, once built (on the meta device, inside
`from_pretrained`), the modules the stage does not run are removed; transformers then reads and
places only the tensors of the modules left (it still renames checkpoint keys, builds the non-persistent
buffers and ties weights, as for the whole model), and the other tensors are skipped as unexpected.
tests/unit/engine/test_parts.py checks, per family and stage, the exact tensor names loaded and
that each equals the whole model's.

transformers treats a model class defined outside its package as custom code and skips its
checkpoint renames, so the subclass takes its base class's module name: the one place we lean on
that, checked by the test above.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import torch

from queues.config import ConfigError
from queues.types import Stage

ENCODES: frozenset[Stage] = frozenset({"encode", "agg"})
GENERATES: frozenset[Stage] = frozenset({"prefill", "decode", "pd", "agg"})


def dropped_by(stage: Stage, tower: tuple[str, ...], language: tuple[str, ...]) -> tuple[str, ...]:
    """The module paths a stage does not run."""
    return (() if stage in ENCODES else tower) + (() if stage in GENERATES else language)


@functools.cache
def partial_class(base: type[Any], dropped: tuple[str, ...]) -> type[Any]:
    """`base` without the modules at `dropped` (dotted paths, e.g. `model.visual`)."""
    if not dropped:
        return base

    def __init__(self: Any, config: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, config, *args, **kwargs)
        for path in dropped:
            parent, _, name = path.rpartition(".")
            setattr(self.get_submodule(parent) if parent else self, name, None)
        self.post_init()  # what depends on the module tree (tied keys, ...) computed again

    attributes: dict[str, Any] = {
        "__init__": __init__,
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        # the checkpoint tensors of removed modules, under either key layout (legacy or current)
        "_keys_to_ignore_on_load_unexpected": [
            rf"(^|\.){re.escape(path.rpartition('.')[2])}\." for path in dropped
        ],
    }
    if any(path == "lm_head" for path in dropped):
        attributes["_tied_weights_keys"] = {}  # nothing left to tie the output embeddings to
    return type(base.__name__, (base,), attributes)


class IncompleteCheckpoint(ConfigError):
    """The checkpoint lacks tensors of a module this stage runs (transformers would fill them with
    random values and the worker would serve garbage): the worker stops with this one line."""


def load_parts(base: type[Any], model_dir: str | Path, dropped: tuple[str, ...], dtype: torch.dtype) -> Any:
    cls = partial_class(base, dropped)  # type: ignore[arg-type]  # classes are hashable
    model, info = cls.from_pretrained(
        model_dir, dtype=dtype, attn_implementation="sdpa", output_loading_info=True
    )
    missing = sorted(info["missing_keys"])
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise IncompleteCheckpoint(f"MODEL={model_dir} lacks {len(missing)} tensors this stage runs: {shown}")
    return model
