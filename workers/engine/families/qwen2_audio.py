"""Qwen2-Audio: Whisper log-mel features through the audio encoder, projected into a Qwen2 model.

transformers has no `get_audio_features` for this family (the encoder runs inline in the model's
forward), so the same steps are composed here from the model's own modules.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers.masking_utils import create_bidirectional_mask

from queues.checkpoint.families import QWEN2_AUDIO
from workers.engine.base import EncodedItem
from workers.engine.families.base import Family, describe
from workers.media.types import LoadedAudio, LoadedMedia


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear-interpolation resampling; a no-op at the target rate (the loaders usually deliver it)."""
    if rate == target or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    duration = samples.shape[0] / rate
    times = np.arange(round(duration * target)) / target
    return np.asarray(np.interp(times, np.arange(samples.shape[0]) / rate, samples), dtype=np.float32)


class Qwen2Audio(Family):
    spec = QWEN2_AUDIO
    tower = ("model.audio_tower", "model.multi_modal_projector")

    def encode(self, items: list[LoadedMedia]) -> list[EncodedItem]:
        clips = [item for item in items if isinstance(item, LoadedAudio)]
        if len(clips) != len(items):
            raise ValueError(f"{self.spec.name} encodes audio only")
        extractor = self.processor.feature_extractor
        rate = extractor.sampling_rate
        features = extractor(
            [resample(clip.samples, clip.sampling_rate, rate) for clip in clips],
            sampling_rate=rate,
            return_attention_mask=True,
            padding="max_length",
            return_tensors="pt",
        )
        frames = features["attention_mask"].sum(-1).to(self.device)
        embeddings, lengths = self._embed(features["input_features"].to(self.device, self.dtype), frames)
        return [
            describe(embedding[:length], "audio", clip.content_hash, audio_feature_length=int(n))
            for clip, embedding, length, n in zip(
                clips, embeddings, lengths.tolist(), frames.tolist(), strict=True
            )
        ]

    def _embed(self, mel: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder + projector over a padded batch; returns `(batch, max_tokens, hidden)` and each
        clip's token count."""
        tower = self.model.model.audio_tower
        conv_lengths, token_lengths = tower._get_feat_extract_output_lengths(frames)
        conv_frames = (mel.shape[-1] - 2) // 2 + 1
        valid = torch.arange(conv_frames, device=self.device)[None, :] < conv_lengths[:, None]
        mask = create_bidirectional_mask(
            config=tower.config,
            inputs_embeds=torch.zeros((mel.shape[0], conv_frames, 1), dtype=self.dtype, device=self.device),
            attention_mask=valid.long(),
        )
        hidden = tower(mel, attention_mask=mask).last_hidden_state
        return self.model.model.multi_modal_projector(hidden), token_lengths
