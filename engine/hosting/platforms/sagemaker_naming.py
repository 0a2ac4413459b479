"""Deterministic names for what the `aws` platform creates, and request sizing by bytes.

Every worker derives the same SageMaker names and S3 key from a model version alone, so the
objects are found (and reused) instead of created twice, and a bundle's bytes never hide
behind a reused name: the bundle's SHA-256 is part of each.
"""

from __future__ import annotations

import re

from engine.errors import EndpointPayloadTooLarge
from engine.hosting.reference import ModelVersionRef

MAX_NAME = 63  # SageMaker model, endpoint config and endpoint names
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9]+")

# An `application/x-npz` body (`contract.encode_batch`, np.savez, uncompressed) is the images'
# bytes plus zip and .npy headers (a few hundred bytes per array) and the `parameters` JSON,
# stored as a numpy unicode array: 4 bytes per character, growing by one `original_sizes` entry
# per image. The reserves below cover those with a margin.
NPZ_HEADERS_RESERVE = 2048
NPZ_PER_IMAGE_RESERVE = 32 * 4  # "[12345, 12345], " as UCS-4
DEFAULT_PARAMETERS_CHARS = 4096  # the parameters JSON other than original_sizes (prompt, ...)


def endpoint_name(version: ModelVersionRef) -> str:
    """`metalake-<name>-v<version>-<sha8>`, the name of the SageMaker model, endpoint config and
    endpoint of `version` (each kind has its own namespace): at most 63 letters, digits and
    hyphens, the model name shortened if needed; the version and hash are always kept."""
    suffix = f"-v{version.version}-{version.sha256[:8]}"
    slug = _NOT_ALLOWED.sub("-", version.name).strip("-").lower() or "model"
    room = MAX_NAME - len("metalake-") - len(suffix)
    return f"metalake-{slug[:room].rstrip('-')}{suffix}"


def model_data_key(prefix: str, version: ModelVersionRef) -> str:
    """`<prefix>/<name>/<version>-<sha256[:12]>/model.tar.gz` (no leading slash)."""
    folder = f"{version.name}/{version.version}-{version.sha256[:12]}/model.tar.gz"
    return f"{prefix.strip('/')}/{folder}" if prefix.strip("/") else folder


def max_batch_images(
    width: int,
    height: int,
    *,
    max_payload_bytes: int,
    parameters_chars: int = DEFAULT_PARAMETERS_CHARS,
) -> int:
    """How many `width` x `height` RGB images one request body may hold and stay within
    `max_payload_bytes`, when the parameters JSON (without `original_sizes`) has at most
    `parameters_chars` characters. Raises EndpointPayloadTooLarge when not even one image fits
    (lower the job's input_resolution)."""
    per_image = width * height * 3 + NPZ_PER_IMAGE_RESERVE
    fixed = NPZ_HEADERS_RESERVE + 4 * parameters_chars
    count = (max_payload_bytes - fixed) // per_image
    if count < 1:
        raise EndpointPayloadTooLarge(
            f"One {width}x{height} image ({per_image + fixed} bytes with the request headers) "
            f"is more than a SageMaker endpoint accepts ({max_payload_bytes} bytes, "
            "METALAKE_SAGEMAKER_MAX_PAYLOAD_BYTES); use a smaller input_resolution.",
            endpoint_name="(any)",
            size=per_image + fixed,
            limit=max_payload_bytes,
        )
    return int(count)
