"""Per-image prices of the image models billed per image (DALL-E), by size and quality: genai-prices lists none,
and the overrides file prices tokens, not images. GPT image models bill tokens and are priced by genai-prices.

Source: https://openai.com/api/pricing/ (checked 2026-12-07): DALL·E 3 standard $0.040 (1024×1024),
$0.080 (1024×1792, 1792×1024); HD $0.080 and $0.120; DALL·E 2 $0.016 (256×256), $0.018 (512×512),
$0.020 (1024×1024). Azure OpenAI lists the same.
"""
from __future__ import annotations

from decimal import Decimal

VERSION = "image-prices@2026-12-07"
SOURCE = "image-prices"
# model → (size, quality) → USD per image
PER_IMAGE = {
    "dall-e-3": {
        ("1024x1024", "standard"): Decimal("0.040"), ("1024x1792", "standard"): Decimal("0.080"),
        ("1792x1024", "standard"): Decimal("0.080"), ("1024x1024", "hd"): Decimal("0.080"),
        ("1024x1792", "hd"): Decimal("0.120"), ("1792x1024", "hd"): Decimal("0.120"),
    },
    "dall-e-2": {
        ("256x256", "standard"): Decimal("0.016"), ("512x512", "standard"): Decimal("0.018"),
        ("1024x1024", "standard"): Decimal("0.020"),
    },
}
DEFAULT_SIZE, DEFAULT_QUALITY = "1024x1024", "standard"
VARIANT_MAX = 64


def billed_per_image(model: str | None) -> bool:
    return model in PER_IMAGE


def variant(size: object, quality: object) -> str | None:
    """A request's "<size>/<quality>", the API's defaults for what it leaves out; None if either is no string."""
    size = DEFAULT_SIZE if size is None else size
    quality = DEFAULT_QUALITY if quality in (None, "auto") else quality
    if not isinstance(size, str) or not isinstance(quality, str) or len(size) + len(quality) >= VARIANT_MAX:
        return None
    return f"{size}/{quality}"


def cost(model: str, images: int, image_variant: str | None) -> Decimal | None:
    """The price of `images` images at the variant asked for; None for a size or quality with no price."""
    size, _, quality = (image_variant or "").partition("/")
    each = PER_IMAGE.get(model, {}).get((size, quality))
    return None if each is None else each * images
