"""Running model bundles: the model hosts of a worker and the inference platforms.

docs/architecture.md ("Model hosting") says which module does what. It uses the registry's
archive and requirements rules; the registry imports nothing from here. Importing this package
imports nothing else: use the modules.
"""
