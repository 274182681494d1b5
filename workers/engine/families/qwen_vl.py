"""Qwen2-VL and Qwen2.5-VL: dynamic-resolution vision tower, 3-D M-RoPE positions with a rope delta."""

from __future__ import annotations

import inspect

import numpy as np
import torch

from queues.checkpoint.families import QWEN2_VL, QWEN25_VL
from queues.messages import EncodedMeta
from workers.engine.base import EncodedItem
from workers.engine.families.base import Family, describe
from workers.media.types import LoadedImage, LoadedMedia, LoadedVideo

TOKEN_TYPE = {"image": 1, "video": 2}  # mm_token_type_ids values get_rope_index expects


class Qwen2VL(Family):
    spec = QWEN2_VL
    tower = ("model.visual",)  # its merger (the projector) included

    def encode(self, items: list[LoadedMedia]) -> list[EncodedItem]:
        images = {i: item for i, item in enumerate(items) if isinstance(item, LoadedImage)}
        videos = {i: item for i, item in enumerate(items) if isinstance(item, LoadedVideo)}
        if len(images) + len(videos) != len(items):
            raise ValueError(f"{self.spec.name} encodes images and videos only")
        out = {**self._encode_images(images), **self._encode_videos(videos)}
        return [out[i] for i in range(len(items))]

    def _encode_images(self, images: dict[int, LoadedImage]) -> dict[int, EncodedItem]:
        if not images:
            return {}
        inputs = self.processor.image_processor(
            images=[m.image for m in images.values()], return_tensors="pt"
        )
        grids = inputs["image_grid_thw"]
        features = self.model.model.get_image_features(
            inputs["pixel_values"].to(self.device, self.dtype), grids.to(self.device)
        ).pooler_output
        return {
            i: describe(feature, "image", image.content_hash, grid_thw=grid)
            for (i, image), feature, grid in zip(images.items(), features, grids.tolist(), strict=True)
        }

    def _encode_videos(self, videos: dict[int, LoadedVideo]) -> dict[int, EncodedItem]:
        if not videos:
            return {}
        inputs = self.processor.video_processor(
            videos=[np.ascontiguousarray(v.frames) for v in videos.values()],
            do_sample_frames=False,  # the media loader already picked the frames
            return_tensors="pt",
        )
        grids = inputs["video_grid_thw"]
        features = self.model.model.get_video_features(
            inputs["pixel_values_videos"].to(self.device, self.dtype), grids.to(self.device)
        ).pooler_output
        return {
            i: describe(feature, "video", video.content_hash, grid_thw=grid, **self._video_timing(video))
            for (i, video), feature, grid in zip(videos.items(), features, grids.tolist(), strict=True)
        }

    def _video_timing(self, video: LoadedVideo) -> dict[str, float]:
        return {}

    def prefill_positions(
        self, input_ids: torch.Tensor, metas: list[EncodedMeta]
    ) -> tuple[torch.Tensor, int]:
        extra: dict[str, torch.Tensor | None] = self._grids(metas)
        get_rope_index = self.model.model.get_rope_index
        # newer transformers need the token types explicitly
        if "mm_token_type_ids" in inspect.signature(get_rope_index).parameters:
            token_types = torch.zeros_like(input_ids)
            for modality, token in self.placeholder_ids.items():
                token_types[input_ids == token] = TOKEN_TYPE[modality]
            extra["mm_token_type_ids"] = token_types[None]
        positions, deltas = get_rope_index(input_ids[None], **extra)
        return positions, int(deltas.reshape(-1)[0].item())

    def _grids(self, metas: list[EncodedMeta]) -> dict[str, torch.Tensor | None]:
        def grid(modality: str) -> torch.Tensor | None:
            rows = [m.grid_thw for m in metas if m.modality == modality]
            return torch.tensor(rows, dtype=torch.long, device=self.device) if rows else None

        return {"image_grid_thw": grid("image"), "video_grid_thw": grid("video")}

    def decode_positions(self, positions: torch.Tensor) -> torch.Tensor:
        return positions.view(1, -1, 1).expand(3, -1, 1)


class Qwen25VL(Qwen2VL):
    """Same pipeline; video temporal positions are scaled by real time (seconds per grid step)."""

    spec = QWEN25_VL

    def _video_timing(self, video: LoadedVideo) -> dict[str, float]:
        return {"second_per_grid_t": self.processor.video_processor.temporal_patch_size / video.fps}

    def _grids(self, metas: list[EncodedMeta]) -> dict[str, torch.Tensor | None]:
        seconds = [m.second_per_grid_t for m in metas if m.modality == "video"]
        grids = super()._grids(metas)
        grids["second_per_grid_ts"] = torch.tensor(seconds, device=self.device) if seconds else None
        return grids
