"""`sdk.Client`: the thin client. Each call group lives in its own module and is mixed in here."""

from __future__ import annotations

from sdk._annotations import AnnotationCalls
from sdk._base import BaseClient
from sdk._embeddings import EmbeddingCalls
from sdk._exports import ExportCalls
from sdk._jobs import JobCalls
from sdk._labelstudio import LabelStudioCalls
from sdk._lake import LakeCalls
from sdk._models import ModelCalls
from sdk._predict import PredictCalls


class Client(
    LakeCalls,
    AnnotationCalls,
    ModelCalls,
    EmbeddingCalls,
    JobCalls,
    ExportCalls,
    PredictCalls,
    LabelStudioCalls,
    BaseClient,
):
    """Talks to a MetaLake engine over HTTP.

    `Client(url=None, api_key=None)`: arguments, else `METALAKE_URL` / `METALAKE_API_KEY`,
    else the local engine started by `metalake up` (its `client.json`). The local engine's key
    is sent only to the URL written beside it: `Client(url=<another engine>)` sends no key
    unless given one.
    """
