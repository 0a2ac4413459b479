"""The environment variables a bundle's code gets: an allow-list, never the engine's secrets.

A model host (and the `pip install` of a bundle's requirements, which may run a package's
build code) starts from an empty environment plus the variables named here. Whatever the
operator adds with METALAKE_HOST_ENV_ALLOW, credentials are never passed: the database and
broker URLs, AWS_* and every METALAKE_* variable except METALAKE_WEIGHTS_DIR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

HOST_VARIABLES = frozenset(
    {
        # the basics a process expects
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "TMPDIR",
        "TEMP",
        "TMP",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        # threads and devices
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "CUDA_HOME",
        "LD_LIBRARY_PATH",
        # model libraries: where weights live, and offline switches
        "METALAKE_WEIGHTS_DIR",
        "TORCH_HOME",
        "HF_HOME",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "YOLO_OFFLINE",
        "YOLO_CONFIG_DIR",
        "MPLCONFIGDIR",
        # reaching the network where one exists (weights downloads)
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    }
)
HOST_PREFIXES = ("LC_",)
# `pip install` also needs its own configuration (index URLs, find-links, certificates).
INSTALL_PREFIXES = ("PIP_",)

DENIED_VARIABLES = frozenset(
    {
        "DATABASE_URL",
        "REDIS_URL",
        "PGPASSWORD",
        "PGPASSFILE",
        "CELERY_BROKER_URL",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AZURE_STORAGE_CONNECTION_STRING",
    }
)
DENIED_PREFIXES = ("AWS_", "METALAKE_")
ALWAYS_ALLOWED = frozenset({"METALAKE_WEIGHTS_DIR"})


def is_secret(name: str) -> bool:
    if name in ALWAYS_ALLOWED:
        return False
    return name in DENIED_VARIABLES or name.startswith(DENIED_PREFIXES)


def host_environ(source: Mapping[str, str], *, extra: Iterable[str] = ()) -> dict[str, str]:
    """The variables of `source` a model host may see."""
    allowed = HOST_VARIABLES | set(extra)
    return {
        name: value
        for name, value in source.items()
        if (name in allowed or name.startswith(HOST_PREFIXES)) and not is_secret(name)
    }


def install_environ(source: Mapping[str, str], *, extra: Iterable[str] = ()) -> dict[str, str]:
    """The variables of `source` a `pip install` of a bundle's requirements may see."""
    environ = host_environ(source, extra=extra)
    environ.update(
        {
            name: value
            for name, value in source.items()
            if name.startswith(INSTALL_PREFIXES) and not is_secret(name)
        }
    )
    return environ


def parse_names(text: str) -> list[str]:
    """`A, B,C` -> ["A", "B", "C"] (for METALAKE_HOST_ENV_ALLOW)."""
    return [name.strip() for name in text.split(",") if name.strip()]
