"""Model bundles: validation, packing, storage, versions, defaults, and the model host.

- `archive`      safe extraction of an uploaded `.tar.gz`; reproducible packing
- `bundle`       the bundle layout's rules (`validate_bundle`), checked once at registration
- `requirements` the rules of `code/requirements.txt`
- `store`        the registry service: register, resolve (`resolve_version`), list, get, delete
- `defaults`     the system default models from `model_templates/`

Importing this package imports nothing else: use the modules.
"""
