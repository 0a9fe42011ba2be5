"""The named foundation models: each one's preprocessing as its authors published it.

A preset says how an image becomes the network's input (resize, centre crop,
filter, mean, std, channel order) and which output of the exported network
is the image's embedding. The values are copied from each model's published
configuration, cited beside it; ``architecture`` describes the image tower
for the random-weight build (tests and timing, never a result).

Images are resized to a square of ``resize`` pixels (the library's one
resize, the one the image store keeps), then centre-cropped to ``crop``.
The authors resize the shortest side instead: both agree on square images
and differ in aspect ratio on others; the identity of an encoder names this
(``resize_mode``), so that a later shortest-side mode is a different identity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's, reused by BiomedCLIP
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preset:
    """One model's preprocessing and output (see the module's docstring)."""

    source: str  # where the authors publish the weights
    resize: int  # side of the square the image is resized to
    crop: int  # side of the centre crop the network sees
    resample: str  # the Pillow filter (a key of RESAMPLING)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    outputs: tuple[str, ...]  # the exported network's outputs to take, first found first
    n_features: int  # length of the embedding
    architecture: dict = field(default_factory=dict)  # the random-weight build; {} for none
    checkpoint: str = ""  # the PyTorch checkpoint read besides ONNX ("open_clip"), if any
    stage_width: int = 0  # a ConvNeXt's first stage's channels (its largest activations)

    def activation_bytes(self):
        """The bytes the image tower holds at once for one image: for a ViT, two attention
        scores (the scores and their softmax) and seven tensors of the MLP's hidden width;
        for a ConvNeXt, seven of its first stage's MLP width (four times its channels) at a
        quarter of the crop's side, where it is largest (unmeasured: no random build).
        Measured (peak RSS, random weights, ONNX Runtime): 17.5 MB an image for vit-b16
        (20.7 counted), 216 MB for rad-dino (298)."""
        if self.stage_width:
            return 4 * (self.crop // 4) ** 2 * 7 * 4 * self.stage_width
        if not self.architecture:
            return 0
        vit = self.architecture
        tokens = (self.crop // vit["patch"]) ** 2 + 1  # the patches and the class token
        return 4 * tokens * (2 * vit["heads"] * tokens + 7 * 4 * vit["width"])

    def preprocessing(self):
        """What the identity of an encoder records of the input pipeline."""
        described = asdict(self)
        for key in ("source", "architecture", "outputs", "n_features", "checkpoint",
                    "stage_width"):
            del described[key]
        described.update(channel_order="RGB", layout="NCHW float32, pixels/255",
                         resize_mode="square")
        return described


def _vit(patch, image_size, width=768, depth=12, heads=12, projection=None,
         ln_pre=False, layer_scale=False):
    return {"patch": patch, "image_size": image_size, "width": width, "depth": depth,
            "heads": heads, "projection": projection, "ln_pre": ln_pre,
            "layer_scale": layer_scale}


PRESETS: dict[str, Preset] = {
    # microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224, open_clip_config.json:
    # vision_cfg timm "vit_base_patch16_224" (CLS token after the final norm),
    # timm_proj "linear" to embed_dim 512, image_size 224, preprocess_cfg mean/std
    # = OpenAI CLIP's. open_clip's image transform (no resize_mode or interpolation
    # in the config): bicubic resize of the shortest side to 224, centre crop 224.
    "biomedclip": Preset(
        "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", 224, 224, "bicubic",
        CLIP_MEAN, CLIP_STD, ("image_embeds",), 512, _vit(16, 224, projection=512),
        checkpoint="open_clip"),
    # microsoft/rad-dino (a DINOv2 ViT-B/14, config.json: image_size 518, patch_size 14,
    # layerscale), preprocessor_config.json (BitImageProcessor): shortest_edge 518,
    # centre crop 518, resample 3 (bicubic), mean 0.5307 and std 0.2583 on each channel.
    # The model card: "image retrieval, using nearest neighbors of the CLS token":
    # Dinov2Model's pooler_output is that token after the final layer norm.
    "rad-dino": Preset(
        "microsoft/rad-dino", 518, 518, "bicubic", (0.5307,) * 3, (0.2583,) * 3,
        ("pooler_output",), 768, _vit(14, 518, layer_scale=True)),
    # openai/clip-vit-base-patch16, preprocessor_config.json (CLIPImageProcessor):
    # shortest_edge 224, crop 224, resample 3 (bicubic), OpenAI CLIP mean/std;
    # CLIPVisionModelWithProjection's image_embeds (512), the tower having a
    # layer norm before the transformer (ln_pre).
    "clip-vit-b16": Preset(
        "openai/clip-vit-base-patch16", 224, 224, "bicubic", CLIP_MEAN, CLIP_STD,
        ("image_embeds",), 512, _vit(16, 224, projection=512, ln_pre=True)),
    # facebook/dinov2-base, preprocessor_config.json (BitImageProcessor): shortest_edge
    # 256, centre crop 224, resample 3 (bicubic), ImageNet mean/std; pooler_output is
    # the CLS token after the final layer norm (768).
    "dinov2-base": Preset(
        "facebook/dinov2-base", 256, 224, "bicubic", IMAGENET_MEAN, IMAGENET_STD,
        ("pooler_output",), 768, _vit(14, 224, layer_scale=True)),
    # google/vit-base-patch16-224-in21k, preprocessor_config.json (ViTImageProcessor):
    # size 224 x 224 (no crop), resample 2 (bilinear), mean and std 0.5. ViTModel's
    # pooler_output is a tanh layer trained for ImageNet-21k: the CLS token of
    # last_hidden_state (after the final layer norm) is taken instead.
    "vit-b16": Preset(
        "google/vit-base-patch16-224-in21k", 224, 224, "bilinear", (0.5,) * 3, (0.5,) * 3,
        ("last_hidden_state",), 768, _vit(16, 224)),
    # facebook/convnext-base-224-22k, preprocessor_config.json (ConvNextImageProcessor):
    # shortest_edge 224 with crop_pct 0.875 (resize to 256, centre crop 224), resample 3
    # (bicubic), ImageNet mean/std; pooler_output is the layer-normed global average
    # (1024). No random build: a file is needed. Stages of 128, 256, 512, 1024 channels.
    "convnext-base": Preset(
        "facebook/convnext-base-224-22k", 256, 224, "bicubic", IMAGENET_MEAN, IMAGENET_STD,
        ("pooler_output",), 1024, stage_width=128),
}
