"""Running model bundles: the model hosts of a worker and the inference platforms.

- `contract`     the batched request (`encode_batch`) and the outputs a bundle may answer
- `serve`        the serving program a host (or a SageMaker container) runs for one bundle,
                 with the default hooks (`decode_batch`, `default_output_fn`)
- `host`         `HostManager`: one host process per bundle and requirements, started on demand
- `host_process` one running host: start, ping, post, stop
- `hostenv`      the environment variables a host and its installs see
- `environments` cached virtual environments per `requirements.txt`
- `sandbox`      the bubblewrap box a host runs in
- `reference`    `ModelVersionRef`, the model version a platform serves and a bundle unpacks
- `bundles`      registered bundles fetched and unpacked on a worker
- `platforms`    where a chunk's request goes: `local` hosts or `aws` SageMaker endpoints

It uses the registry's archive and requirements rules; the registry imports nothing from here.
Importing this package imports nothing else: use the modules.
"""
