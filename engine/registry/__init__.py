"""Model bundles: validation, packing, storage, versions and defaults.

- `archive`      safe extraction of an uploaded `.tar.gz`; reproducible packing
- `bundle`       the bundle layout's rules (`validate_bundle`), checked once at registration
- `requirements` the rules of `code/requirements.txt`
- `store`        the registry service: register, resolve (`resolve_version`), list, get, delete
- `defaults`     the system default models from `model_templates/`

Running a bundle is `engine.hosting`'s part. Importing this package imports nothing else: use
the modules.
"""
