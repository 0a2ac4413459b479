"""Inference platforms: where a chunk's batched request is sent (`local` host or `aws` endpoint).

- `base`             the `InferencePlatform` and `PlatformType` interfaces
- `factory`          `platform_type(name)` and `platform_named(name, settings, bundles=…)`
- `local`, `aws`     the platforms; `sagemaker_naming` the names and request sizes on AWS
"""
