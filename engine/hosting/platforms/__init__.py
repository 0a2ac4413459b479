"""Inference platforms: where a chunk's batched request is sent (`local` host or `aws` endpoint)."""
