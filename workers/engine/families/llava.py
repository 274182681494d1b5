"""LLaVA-1.5 (llava-hf layout): fixed-size CLIP image features projected into a Llama model."""

from __future__ import annotations

from queues.checkpoint.families import LLAVA
from workers.engine.base import EncodedItem
from workers.engine.families.base import Family, describe
from workers.media.types import LoadedImage, LoadedMedia


class Llava(Family):
    spec = LLAVA
    tower = ("model.vision_tower", "model.multi_modal_projector")

    def encode(self, items: list[LoadedMedia]) -> list[EncodedItem]:
        images = [item for item in items if isinstance(item, LoadedImage)]
        if len(images) != len(items):
            raise ValueError(f"{self.spec.name} encodes images only")
        pixels = self.processor.image_processor(images=[item.image for item in images], return_tensors="pt")
        config = self.model.config
        features = self.model.model.get_image_features(
            pixels["pixel_values"].to(self.device, self.dtype),
            vision_feature_layer=config.vision_feature_layer,
            vision_feature_select_strategy=config.vision_feature_select_strategy,
        ).pooler_output
        return [describe(f, "image", item.content_hash) for item, f in zip(images, features, strict=True)]
