"""Model bundles: validation, packing, storage, versions and defaults.

docs/architecture.md ("Model hosting") lists the modules. Running a bundle is
`engine.hosting`'s part. Importing this package imports nothing else: use the modules.
"""
