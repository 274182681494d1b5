"""Media for sglang 0.5.23's Qwen-VL models, as `processor_output` items of `async_generate`.

One item per modality (sglang takes exactly one pre-processed dict per modality and splits it per
image/video itself, by `image_grid_thw` / `video_grid_thw`), holding either

- `pixel_values` / `pixel_values_videos` (agg: our loaded media through the checkpoint's HF
  processor, here; sglang runs its own vision tower), or
- `precomputed_embeddings` (e-pd: our encode stage ran the vision tower; sglang scatters the
  embeddings into the prompt and never calls its tower).

The `precomputed_embedding` *format* is not used: in 0.5.23 it stores the tensor as the item's raw
`feature`, and Qwen2-VL then runs its vision tower on it (docs/SGLANG.md). Prompt ids go to sglang
with each placeholder already expanded to its item's token count, as sglang does not expand
placeholders of pre-processed items.

Two kinds of video are refused (ValueError, a 422 for the client) where sglang would answer
differently from the transformers reference: see `check_video_positions` and `JOINT_FRAMES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers import AutoProcessor

from queues.messages import EncodedMeta
from queues.types import Modality
from workers.engine.base import EncodedItem
from workers.media.types import LoadedImage, LoadedMedia, LoadedVideo

PIXEL_KEYS: dict[str, str] = {"image": "pixel_values", "video": "pixel_values_videos"}
MediaKind = Literal["pixels", "embeddings"]


class PixelEncoder:
    """agg's `encode`: the HF processor only (no weights), one `(patches, patch_dim)` tensor per item."""

    def __init__(self, model_dir: str | Path, timed_video: bool) -> None:
        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.timed_video = timed_video  # Qwen2.5-VL: video positions follow seconds per grid step

    def __call__(self, items: list[LoadedMedia]) -> list[EncodedItem]:
        out: list[EncodedItem] = []
        for item in items:
            if isinstance(item, LoadedImage):
                inputs = self.processor.image_processor(images=[item.image], return_tensors="pt")
                out.append(self._describe(inputs["pixel_values"], inputs["image_grid_thw"][0], "image", item))
            elif isinstance(item, LoadedVideo):
                video = self.processor.video_processor
                inputs = video(
                    videos=[np.ascontiguousarray(item.frames)], do_sample_frames=False, return_tensors="pt"
                )
                seconds = video.temporal_patch_size / item.fps if self.timed_video else 0.0
                pixels, grid = inputs["pixel_values_videos"], inputs["video_grid_thw"][0]
                out.append(self._describe(pixels, grid, "video", item, second_per_grid_t=seconds))
            else:
                raise ValueError(f"the sglang backend takes images and videos, not {item.modality}")
        return out

    def _describe(
        self, pixels: torch.Tensor, grid: torch.Tensor, modality: Modality, item: LoadedMedia, **extra: Any
    ) -> EncodedItem:
        merge = int(self.processor.image_processor.merge_size)
        meta = EncodedMeta(
            modality=modality,
            num_tokens=int(grid.prod().item()) // (merge * merge),
            content_hash=item.content_hash,
            dtype=str(pixels.dtype).removeprefix("torch."),
            shape=list(pixels.shape),
            grid_thw=[int(v) for v in grid.tolist()],
            **extra,
        )
        return pixels.contiguous(), meta


@dataclass(frozen=True)
class VisionLayout:
    """What the checkpoint's config says about the tensors and positions of its media tokens."""

    hidden_size: int  # language model width: the width of an embedding row
    merge_size: int  # vision patches merged into one token, per side
    tokens_per_second: float = 0.0  # Qwen2.5-VL: temporal positions per second of video; 0: untimed
    # sglang's own tower attends across a video's frames where transformers (and Qwen) attend per frame
    frames_attend_jointly: bool = False

    @classmethod
    def of(cls, config: Any, family: str) -> VisionLayout:
        vision = config.vision_config
        qwen25 = family == "qwen2.5-vl"
        return cls(
            hidden_size=int(config.get_text_config().hidden_size),
            merge_size=int(vision.spatial_merge_size),
            tokens_per_second=float(getattr(vision, "tokens_per_second", 0) or 0) if qwen25 else 0.0,
            frames_attend_jointly=qwen25,
        )


def multimodal_inputs(
    items: list[EncodedItem], layout: VisionLayout, kind: MediaKind
) -> dict[str, list[dict[str, Any]]]:
    """`image_data` / `video_data` arguments of `async_generate` for the request's items (prompt order).

    Every item must be of the engine's `kind`: sglang 0.5.23's scheduler dies on a batch in which
    some requests bring embeddings and others pixel values ("MM inputs where only some items are
    precomputed"), so one engine takes one kind only (agg: pixels, pd: embeddings)."""
    arguments: dict[str, list[dict[str, Any]]] = {}
    for modality in ("image", "video"):
        chosen = [(tensor, meta) for tensor, meta in items if meta.modality == modality]
        if not chosen:
            continue
        if modality == "video":
            for _, meta in chosen:
                check_video_positions(meta, layout)
                if kind == "pixels" and layout.frames_attend_jointly and meta.grid_thw[0] > 1:
                    raise ValueError(JOINT_FRAMES)
        for tensor, meta in chosen:
            found = _kind(tensor, meta, layout.hidden_size)
            if found != kind:
                raise ValueError(f"this sglang engine takes {kind} only, the {modality} item is {found}")
        key = "precomputed_embeddings" if kind == "embeddings" else PIXEL_KEYS[modality]
        entry: dict[str, Any] = {
            "format": "processor_output",
            "modality": modality,
            key: torch.cat([tensor for tensor, _ in chosen]),
            f"{modality}_grid_thw": torch.tensor([meta.grid_thw for _, meta in chosen], dtype=torch.long),
        }
        seconds = [meta.second_per_grid_t for _, meta in chosen]
        if modality == "video" and any(seconds):
            entry["second_per_grid_ts"] = torch.tensor(seconds)
        arguments[f"{modality}_data"] = [entry]
    return arguments


JOINT_FRAMES = (
    "sglang 0.5.23's Qwen2.5-VL vision tower lets the frames of a video attend to each other in its "
    "full-attention blocks, where transformers and Qwen's reference attend frame by frame, so its "
    "answer to a multi-frame video differs (docs/SGLANG.md): ENGINE=sglang serves such videos in "
    "MODE=e-pd only (our encode stage runs the vision tower), or use ENGINE=hf"
)


def check_video_positions(meta: EncodedMeta, layout: VisionLayout) -> None:
    """The text after a video starts, in sglang 0.5.23 (as in Qwen's original code), one past the
    video's largest position on any axis; in transformers 5.x (our reference), at the video's start
    plus its larger spatial side in tokens. The two differ when the video's time positions run past
    its spatial ones (many frames at a low resolution), so such a video is refused here rather than
    answered differently from the transformers engine."""
    t, h, w = meta.grid_thw
    step = meta.second_per_grid_t * layout.tokens_per_second if layout.tokens_per_second else 1.0
    last_time = int((t - 1) * step)
    spatial = max(h, w) // layout.merge_size
    if last_time > spatial - 1:
        raise ValueError(
            f"this video (grid {t}x{h}x{w}) spans more time positions ({last_time + 1}) than spatial "
            f"ones ({spatial}); sglang 0.5.23 and transformers 5.x place the text after such a video at "
            "different positions (docs/SGLANG.md), so ENGINE=sglang does not serve it: send fewer frames "
            "or a higher resolution, or use ENGINE=hf"
        )


def _kind(tensor: torch.Tensor, meta: EncodedMeta, hidden_size: int) -> MediaKind:
    """An embedding has one row per placeholder token, of the language model's width; pixel values
    have a row per vision patch (merge² patches a token)."""
    if tensor.dim() != 2 or len(meta.grid_thw) != 3:
        raise ValueError(f"{meta.modality} item of shape {tuple(tensor.shape)} has no 2-D tensor and grid")
    if tuple(tensor.shape) == (meta.num_tokens, hidden_size):
        return "embeddings"
    patches = int(np.prod(meta.grid_thw))
    if tensor.shape[0] == patches and patches > meta.num_tokens:
        return "pixels"
    raise ValueError(
        f"{meta.modality} tensor {tuple(tensor.shape)} is neither an embedding ({meta.num_tokens}, "
        f"{hidden_size}) nor pixel values ({patches} patches)"
    )
