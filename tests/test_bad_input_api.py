"""Bad requests against the real HTTP API: never a 500.

- Every write route (POST / PUT / PATCH / DELETE), enumerated from the app's own OpenAPI spec so
  a new route is covered the day it is added: without a key 401, with a read-only key 403
  (with a write key 403 too on admin routes), and with malformed requests (no body, not JSON,
  JSON of the wrong types, missing fields, path ids that are not numbers, required query
  parameters left out) a 4xx naming what is wrong. The database is byte-for-byte unchanged.
- Unknown unique names in every route's path: a 404 naming the name.
- Queries and filters fuzzed with hypothesis through GET /items, POST /items/search and
  POST /search/similar: a result, or a 400 with the position (queries) or the key (filters).

Elsewhere: vectors of the wrong dimension, batches of 100 and unknown unique names in
`insert_image_embeddings_batch` are tests/test_embeddings.py's; a search vector of the wrong
dimension and an unknown name in `get_similar_items` are tests/test_similarity.py's. The
registered model whose declared dimension differs is here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from engine.db.session import session_scope
from sdk import Client, Conflict
from tests.fixtures import imagegen
from tests.fixtures.bundle_factory import make_bundle
from tests.test_query_fuzz import query_texts

API = "/api/v1"
WRITE_METHODS = ("post", "put", "patch", "delete")
# POST routes that only read (a query in a JSON body): a read key may call them.
READ_ONLY_POSTS = {
    f"{API}/items/search",
    f"{API}/embeddings/vectors",
    f"{API}/search/similar",
    f"{API}/models/{{name}}/predict",  # runs a model on the image sent, writes nothing
    f"{API}/exports",  # reads the lake into an archive (a large one as an export job)
    # Label Studio's ML backend: answers from the lake or runs a model, writes nothing
    *(f"{root}/{call}" for root in ("/ml", "/ml/models/{model}") for call in ("setup", "predict")),
}
ADMIN_PREFIX = f"{API}/keys"
# Admin too: a registered bundle is code the engine runs; a deletion takes a model from everyone.
ADMIN_OPERATIONS = {f"post {API}/models/{{name}}/versions", f"delete {API}/models/{{name}}"}


@dataclass(frozen=True)
class Operation:
    method: str
    template: str  # the spec's path, e.g. /api/v1/jobs/{job_id}/cancel
    spec: dict[str, Any]

    @property
    def scope(self) -> str:
        if (
            self.template.startswith(ADMIN_PREFIX)
            or f"{self.method} {self.template}" in ADMIN_OPERATIONS
        ):
            return "admin"
        return "read" if self.template in READ_ONLY_POSTS else "write"

    def parameters(self, where: str) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p["in"] == where]

    @property
    def content_type(self) -> str | None:
        content = self.spec.get("requestBody", {}).get("content", {})
        return next(iter(content), None)

    def body_schema(self) -> dict[str, Any]:
        content = self.spec["requestBody"]["content"]
        schema: dict[str, Any] = content[self.content_type]["schema"]
        return schema

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.template}"


@dataclass
class Lake:
    """Real objects for the path parameters, so a request is refused for its key or its body,
    never for a missing object."""

    url: str
    admin: str
    read: str
    write: str
    values: dict[str, str]
    spec: dict[str, Any] = field(repr=False)

    def path(self, op: Operation, **override: str) -> str:
        filled = op.template
        for param in op.parameters("path"):
            name = param["name"]
            value = override.get(name) or self._value(op, name)
            filled = filled.replace("{" + name + "}", quote(value, safe=""))
        return filled

    def _value(self, op: Operation, name: str) -> str:
        key = f"model_{name}" if op.template.startswith(f"{API}/models") else name
        if key not in self.values:
            raise AssertionError(
                f"{op}: give the path parameter {name!r} a plausible value in the `lake` fixture"
            )
        return self.values[key]

    def query(self, op: Operation) -> dict[str, str]:
        """Valid values of the required query parameters."""
        known = {"application": "autotagging", "content_type": "image"}
        missing = [
            p["name"]
            for p in op.parameters("query")
            if p.get("required") and p["name"] not in known
        ]
        assert not missing, f"{op}: give the query parameters {missing} a valid value here"
        return {p["name"]: known[p["name"]] for p in op.parameters("query") if p.get("required")}

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self.spec["components"]["schemas"][name]
        return schema


def write_operations(spec: dict[str, Any]) -> list[Operation]:
    return [
        Operation(method, template, op)
        for template, methods in sorted(spec["paths"].items())
        for method, op in methods.items()
        if method in WRITE_METHODS
    ]


@pytest.fixture
def lake(
    client: Client, api_url: str, admin_key: str, make_key: Callable[..., str], tmp_path: Path
) -> Lake:
    imagegen.image(tmp_path / "things" / "a.jpg", (64, 48))
    collection_id = client.upload_files_to_collection(tmp_path / "things", "image", "things")
    unique_name = "things_a.jpg"
    [annotation] = client.add_annotations(
        unique_name,
        [{"label": "cat", "shape": "box", "geometry": {"x1": 1, "y1": 1, "x2": 9, "y2": 9}}],
    )
    client.add_tags(unique_name, ["dog"])
    client.register_model(make_bundle(tmp_path / "bundle"), "shapes", "autotagging")
    job = client.insert_image_embeddings_batch(
        [{"uniqueName": unique_name, "embeddings": [1.0, 0.0, 0.5]}], "ext", [3]
    )
    version = client.create_dataset_from_collection("things-set", collection_id, {"train": 100})
    label = httpx.post(f"{api_url}{API}/labels", json={"name": "cat"}, headers=_auth(admin_key))
    group = httpx.post(
        f"{api_url}{API}/label-groups",
        json={"name": "pets", "label_ids": [label.json()["id"]]},
        headers=_auth(admin_key),
    ).json()
    spare = make_key("read", name="spare")
    keys = httpx.get(f"{api_url}{API}/keys", headers=_auth(admin_key)).json()
    spare_id = next(k["id"] for k in keys if spare.startswith(k["prefix"]))
    spec = httpx.get(f"{api_url}/openapi.json").json()
    return Lake(
        url=api_url,
        admin=admin_key,
        read=make_key("read", name="reader"),
        write=make_key("write", name="writer"),
        spec=spec,
        values={
            "key_id": str(spare_id),
            "collection_name": "things",
            "collection_id": str(collection_id),
            "unique_name": unique_name,
            "annotation_id": str(annotation.id),
            "name": "dog",
            "model_name": "shapes",
            "job_id": str(job["job_id"]),
            "version_id": str(version["version_id"]),
            "model": "shapes",
            "project_id": "1",
            "group_id": str(group["id"]),
        },
    )


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


@pytest.fixture
def database(session_factory: sessionmaker[Session]) -> Callable[[], dict[str, str]]:
    """A fingerprint of every table (API keys without their last-used time)."""

    def fingerprint() -> dict[str, str]:
        with session_scope(session_factory) as session:
            tables = session.scalars(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version' ORDER BY tablename"
                )
            ).all()
            found = {}
            for table in tables:
                rows = (
                    "SELECT id, name, scopes, revoked_at FROM api_keys"
                    if table == "api_keys"
                    else f'SELECT * FROM "{table}"'
                )
                found[table] = session.scalar(
                    text(
                        f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                        f"FROM ({rows}) t"
                    )
                )
            return found

    return fingerprint


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["message"]
    assert "Traceback" not in response.text
    return error


# -- who may call --------------------------------------------------------------------------------
def test_the_spec_lists_the_write_routes(lake: Lake) -> None:
    ops = {str(op) for op in write_operations(lake.spec)}
    assert len(ops) >= 25
    for expected in (
        "POST /api/v1/collections/ingest",
        "DELETE /api/v1/models/{name}",
        "POST /api/v1/jobs/{job_id}/cancel",
        "POST /api/v1/embeddings/batch",
    ):
        assert expected in ops


def test_every_write_route_needs_a_valid_key(
    lake: Lake, database: Callable[[], dict[str, str]], subtests: Any
) -> None:
    before = database()
    for op in write_operations(lake.spec):
        for key in (None, "mlk_not-a-real-key"):
            with subtests.test(op=str(op), key=key):
                response = httpx.request(
                    op.method,
                    lake.url + lake.path(op),
                    params=lake.query(op),
                    headers=_auth(key),
                    json={},
                )
                assert response.status_code == 401, response.text
                assert _error(response)["code"] == "unauthorized"
                assert response.headers["www-authenticate"] == "Bearer"
    assert database() == before


def _call(lake: Lake, op: Operation, key: str) -> httpx.Response:
    return httpx.request(
        op.method, lake.url + lake.path(op), params=lake.query(op), headers=_auth(key), json={}
    )


def test_a_key_without_the_scope_is_403_and_changes_nothing(
    lake: Lake, database: Callable[[], dict[str, str]], subtests: Any
) -> None:
    before = database()
    for op in write_operations(lake.spec):
        with subtests.test(op=str(op)):
            weaker = {"read": [], "write": [lake.read], "admin": [lake.read, lake.write]}
            for key in weaker[op.scope]:
                response = _call(lake, op, key)
                assert response.status_code == 403, response.text
                error = _error(response)
                assert error["code"] == "forbidden"
                assert op.scope in error["message"]
            if op.scope == "read":  # a query in a body: a read key is enough
                response = _call(lake, op, lake.read)
                assert response.status_code not in (401, 403, 500), response.text
    assert database() == before


# -- malformed requests --------------------------------------------------------------------------
@dataclass(frozen=True)
class Malformed:
    what: str
    kwargs: dict[str, Any]
    statuses: tuple[int, ...] = (422,)
    names: tuple[str, ...] = ()  # each must appear in the error's locations or message


def wrong_value(lake: Lake, schema: dict[str, Any]) -> Any:
    """A JSON value `schema` cannot accept (None when it accepts anything)."""
    schema = lake.resolve(schema)
    types: set[str] = set()
    for option in map(lake.resolve, schema.get("anyOf", schema.get("oneOf", [schema]))):
        if "type" in option:
            types.update(option["type"] if isinstance(option["type"], list) else [option["type"]])
        elif "enum" in option or "const" in option:
            types.add("string")
        else:
            return None
    if "object" not in types:
        return {"not": "this"}
    if "array" not in types:
        return ["not", "this"]
    return None


def json_malformed(lake: Lake, op: Operation) -> list[Malformed]:
    schema = lake.resolve(op.body_schema())
    cases = [
        Malformed("no body", {}, names=("body",)),
        Malformed(
            "not JSON",
            {"content": b"{'label': 'cat',", "headers": {"Content-Type": "application/json"}},
            names=("body",),
        ),
        Malformed(
            "JSON null", {"content": b"null", "headers": {"Content-Type": "application/json"}}
        ),
        Malformed("a bare string", {"json": "cat"}),
        Malformed(
            "nested 100,000 deep",
            {
                "content": b"[" * 100_000 + b"]" * 100_000,
                "headers": {"Content-Type": "application/json"},
            },
            statuses=(400, 422),
        ),
    ]
    item = schema
    if schema.get("type") == "array":
        cases.append(Malformed("an object for a list", {"json": {"label": "cat"}}))
        item = lake.resolve(schema["items"])
    else:
        cases.append(Malformed("a list for an object", {"json": [item.get("title", "x")]}))
    properties = item.get("properties", {})
    wrong = {
        name: value
        for name, sub in properties.items()
        if (value := wrong_value(lake, sub)) is not None
    }
    required = tuple(item.get("required", []))
    wrap: Callable[[Any], Any] = (lambda v: [v]) if schema.get("type") == "array" else (lambda v: v)
    if required:
        cases.append(Malformed("required fields missing", {"json": wrap({})}, names=required))
    if wrong:
        cases.append(
            Malformed("every field of the wrong type", {"json": wrap(wrong)}, names=tuple(wrong))
        )
    return cases


def multipart_malformed(lake: Lake, op: Operation) -> list[Malformed]:
    if op.template.endswith("/predict"):
        return predict_malformed(lake, op)
    one = {"files": ("a.jpg", b"\xff\xd8\xff", "image/jpeg")}
    return [
        Malformed("no body", {}, names=("files", "relative_paths")),
        Malformed(
            "JSON instead of a form", {"json": {"files": []}}, names=("files", "relative_paths")
        ),
        Malformed("no relative_paths", {"files": one}, names=("relative_paths",)),
        Malformed(
            "metadata not JSON",
            {"files": one, "data": {"relative_paths": "a.jpg", "metadata": "{camera: 1"}},
            statuses=(400,),
            names=("metadata",),
        ),
        Malformed(
            "metadata a list",
            {"files": one, "data": {"relative_paths": "a.jpg", "metadata": "[1]"}},
            statuses=(400,),
            names=("metadata",),
        ),
        Malformed(
            "fewer paths than files",
            {
                "files": [
                    ("files", ("a.jpg", b"x", "image/jpeg")),
                    ("files", ("b.jpg", b"y", "image/jpeg")),
                ],
                "data": {"relative_paths": "a.jpg"},
            },
            statuses=(400,),
            names=("relative_paths",),
        ),
    ]


def gzip_malformed(lake: Lake, op: Operation) -> list[Malformed]:
    return [
        Malformed("no body", {}, statuses=(400,), names=("empty",)),
        Malformed(
            "JSON instead of a bundle",
            {"json": {"bundle": "x"}},
            statuses=(400,),
            names=("not gzip",),
        ),
    ]


def predict_malformed(lake: Lake, op: Operation) -> list[Malformed]:
    """Each refused before the image is queued (no worker runs in these tests)."""
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    image = {"image": ("a.png", png.getvalue(), "image/png")}
    return [
        Malformed("no body", {}, names=("image",)),
        Malformed("JSON instead of a form", {"json": {"image": "x"}}, names=("image",)),
        Malformed(
            "not an image",
            {"files": {"image": ("a.png", b"words", "image/png")}},
            statuses=(400,),
            names=("image",),
        ),
        Malformed(
            "threshold not a number",
            {"files": image, "data": {"confidence_threshold": "high"}},
            names=("confidence_threshold",),
        ),
        Malformed(
            "threshold over 1",
            {"files": image, "data": {"confidence_threshold": "1.5"}},
            statuses=(400,),
            names=("confidence_threshold",),
        ),
        Malformed(
            "resolution too small",
            {"files": image, "data": {"input_resolution": "3"}},
            statuses=(400,),
            names=("input_resolution",),
        ),
    ]


BODY_BUILDERS: dict[str, Callable[[Lake, Operation], list[Malformed]]] = {
    "application/json": json_malformed,
    "multipart/form-data": multipart_malformed,
    "application/gzip": gzip_malformed,
}


def malformed_requests(
    lake: Lake, op: Operation
) -> Iterator[tuple[Malformed, str, dict[str, str]]]:
    """(request, path, query) for every way `op` can be called wrongly."""
    path, query = lake.path(op), lake.query(op)
    if op.content_type is not None:
        builder = BODY_BUILDERS.get(op.content_type)
        assert builder is not None, f"{op}: no malformed bodies for {op.content_type} yet"
        for case in builder(lake, op):
            yield case, path, query
    for param in op.parameters("path"):
        if param["schema"].get("type") == "integer":
            bad = lake.path(op, **{param["name"]: "not-a-number"})
            yield (
                Malformed(f"path {param['name']} not a number", {}, names=(param["name"],)),
                bad,
                query,
            )
    for name in query:
        yield (
            Malformed(f"query {name} missing", {}, names=(name,)),
            path,
            {k: v for k, v in query.items() if k != name},
        )
        yield (
            Malformed(f"query {name} unknown", {}, statuses=(400, 422), names=(name,)),
            path,
            {**query, name: "no-such-value"},
        )


def test_malformed_requests_to_every_write_route_are_4xx_naming_the_problem(
    lake: Lake, database: Callable[[], dict[str, str]], subtests: Any
) -> None:
    before = database()
    count = 0
    for op in write_operations(lake.spec):
        for case, path, query in malformed_requests(lake, op):
            count += 1
            with subtests.test(op=str(op), case=case.what):
                kwargs = dict(case.kwargs)
                headers = {**_auth(lake.admin), **kwargs.pop("headers", {})}
                response = httpx.request(
                    op.method, lake.url + path, params=query, headers=headers, timeout=30, **kwargs
                )
                assert response.status_code in case.statuses, response.text[:500]
                error = _error(response)
                where = " ".join(
                    [
                        error["message"],
                        *(str(p.get("location")) for p in error["details"].get("errors", [])),
                    ]
                )
                for name in case.names:
                    assert name in where, (name, error)
    assert count >= 100
    assert database() == before


# -- text and numbers PostgreSQL cannot hold, in otherwise valid requests ----------------------
BAD = "{bad}"  # replaced by a NUL character or an unpaired surrogate
BOX = {"x1": 1, "y1": 1, "x2": 2, "y2": 2}
CARRIERS: list[tuple[str, str, Any]] = [
    ("POST", "/collections", {"name": f"c{BAD}", "content_type": "image"}),
    ("PATCH", "/files/things_a.jpg/metadata", {"metadata": {"k": f"v{BAD}"}}),
    ("PATCH", "/files/things_a.jpg/metadata", {"metadata": {f"k{BAD}": 1}}),
    ("POST", "/files/things_a.jpg/tags", [{"name": f"dog{BAD}"}]),
    ("POST", "/files/things_a.jpg/annotations", [{"label": f"cat{BAD}", "geometry": BOX}]),
    (
        "POST",
        "/files/things_a.jpg/annotations",
        [{"label": "cat", "geometry": BOX, "metadata": {"note": f"n{BAD}"}}],
    ),
    ("POST", "/items/search", {"query": f"metadata.k = 'v{BAD}'"}),
    ("POST", "/items/search", {"filter": {f"from_date{BAD}": "2024-01-01"}}),
    (
        "POST",
        "/embeddings/batch",
        {
            "embedding_list": [{"uniqueName": f"things_a.jpg{BAD}", "embeddings": [1.0, 0.0, 0.5]}],
            "model_name": "ext",
            "vector_dimension": [3],
        },
    ),
    (
        "POST",
        "/embeddings/batch",
        {
            "embedding_list": [{"uniqueName": "things_a.jpg", "embeddings": [1.0, 0.0, 0.5]}],
            "model_name": f"ext{BAD}",
            "vector_dimension": [3],
        },
    ),
    ("POST", "/embeddings/vectors", {"unique_names": [f"things_a.jpg{BAD}"], "model_name": "ext"}),
    ("POST", "/search/similar", {"unique_name": f"things_a.jpg{BAD}", "model_name": "ext"}),
    (
        "POST",
        "/collections/ingest",
        {
            "collection_name": "c",
            "content_type": "image",
            "entries": [{"path": f"/tmp/a{BAD}.jpg", "relative_path": "a.jpg"}],
        },
    ),
    ("POST", "/keys", {"name": f"k{BAD}", "scopes": ["read"]}),
    ("POST", "/jobs/autotag", {"collection_id": 1, "model_id": f"shapes{BAD}"}),
    ("GET", f"/files/things_a.jpg{BAD}", None),
    ("DELETE", f"/models/shapes{BAD}", None),
]


def test_text_the_database_cannot_hold_is_a_4xx(
    lake: Lake, database: Callable[[], dict[str, str]], subtests: Any
) -> None:
    before = database()
    for bad, shown in (("\x00", "NUL"), ("\ud800", "unpaired surrogate")):
        for method, path, body in CARRIERS:
            with subtests.test(method=method, path=path, bad=shown):
                url = (
                    lake.url + API + path.replace(BAD, quote(bad, safe="", errors="surrogatepass"))
                )
                content = (
                    None
                    if body is None
                    else json.dumps(body).replace(BAD, json.dumps(bad)[1:-1]).encode()
                )
                response = httpx.request(
                    method,
                    url,
                    content=content,
                    headers={**_auth(lake.admin), "Content-Type": "application/json"},
                )
                assert response.status_code in (400, 404, 422), response.text[:300]
                _error(response)
    for body in ({"page_index": 2**63}, {"collection_id": 2**70}):
        with subtests.test(body=body):
            response = httpx.post(
                f"{lake.url}{API}/items/search", json=body, headers=_auth(lake.admin)
            )
            assert response.status_code in (400, 404, 422), response.text[:300]
    assert database() == before


# -- unknown unique names ------------------------------------------------------------------------
VALID_BODIES: dict[str, Any] = {
    "POST /api/v1/files/{unique_name}/annotations": [
        {"label": "cat", "shape": "box", "geometry": {"x1": 1, "y1": 1, "x2": 2, "y2": 2}}
    ],
    "POST /api/v1/files/{unique_name}/tags": [{"name": "dog"}],
    "PATCH /api/v1/files/{unique_name}/metadata": {"metadata": {"seen": True}},
}


def test_an_unknown_unique_name_in_any_route_is_a_404_naming_it(
    lake: Lake, database: Callable[[], dict[str, str]], subtests: Any
) -> None:
    before = database()
    routes = [
        Operation(method, template, op)
        for template, methods in sorted(lake.spec["paths"].items())
        for method, op in methods.items()
        if "{unique_name}" in template
    ]
    assert len(routes) >= 7
    missing = "things_not-there.jpg"
    for op in routes:
        with subtests.test(op=str(op)):
            kwargs: dict[str, Any] = {}
            if op.content_type is not None:
                assert str(op) in VALID_BODIES, f"{op}: add a valid body to VALID_BODIES"
                kwargs["json"] = VALID_BODIES[str(op)]
            response = httpx.request(
                op.method,
                lake.url + lake.path(op, unique_name=missing),
                params=lake.query(op),
                headers=_auth(lake.admin),
                **kwargs,
            )
            assert response.status_code == 404, response.text
            error = _error(response)
            assert error["code"] == "file_not_found"
            assert missing in error["message"]
    assert database() == before


def test_vectors_for_a_registered_model_of_another_dimension_are_refused(
    client: Client, lake: Lake, database: Callable[[], dict[str, str]], tmp_path: Path
) -> None:
    client.register_model(
        make_bundle(tmp_path / "e", "embedding", config={"embedding_dim": 8}),
        "embedder",
        "embedding",
    )
    before = database()
    with pytest.raises(Conflict) as caught:
        client.insert_image_embeddings_batch(
            [{"uniqueName": "things_a.jpg", "embeddings": [1.0, 2.0, 3.0, 4.0]}], "embedder", [4]
        )
    assert caught.value.code == "embedding_dimension_mismatch"
    assert "declares 8-d embeddings; these are 4-d" in caught.value.message
    assert database() == before


@pytest.mark.parametrize("dimension", [0, -3, 4001])
def test_a_vector_dimension_out_of_range_is_refused(
    client: Client, lake: Lake, dimension: int
) -> None:
    from sdk import BadRequest

    with pytest.raises(BadRequest, match=f"Invalid vector dimension {dimension}: use 1 to 4000"):
        client.insert_image_embeddings_batch(
            [{"uniqueName": "things_a.jpg", "embeddings": [1.0]}], "other", [dimension]
        )


# -- queries and filters, fuzzed through HTTP ----------------------------------------------------
FILTER_KEYS = ["annotation_types", "from_date", "to_date", "annotation", "", "types"]
FILTER_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "raw",
            "human",
            "machine",
            "2024-01-01",
            "2024-13-45",
            "2024-01-01T25:00",
            "2023-01-19T10:00:00+02:00",
            "0001-01-01",
            "9999-12-31T23:59:59+23:59",
            "yesterday",
            "",
        ]
    ),
    st.text(max_size=12),
)
json_values = st.recursive(
    FILTER_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
filters = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(FILTER_KEYS),
        st.one_of(
            json_values, st.lists(st.sampled_from(["raw", "human", "machine", "robot"]), max_size=4)
        ),
        max_size=3,
    ),
)
printable_queries = query_texts.map(lambda q: q.encode("utf-8", "replace").decode("utf-8"))


def _check_search(response: httpx.Response, query: str | None) -> None:
    """A page of results, or a 400 that says where the query or which filter key is wrong."""
    if response.status_code == 200:
        assert isinstance(response.json()["items"], list)
        return
    assert response.status_code == 400, (query, response.status_code, response.text[:300])
    error = _error(response)
    if error["code"] == "invalid_query":
        position = error["details"]["position"]
        assert query is not None
        assert 0 <= position <= len(query)
        assert f"position {position}" in error["message"]
    else:
        assert error["code"] == "invalid_filter", error
        assert "filter" in error["message"].lower()


FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(
    query=printable_queries,
    filter_text=st.one_of(st.none(), filters.map(json.dumps), st.text(max_size=20)),
)
def test_fuzzed_get_items_is_a_result_or_a_400_with_a_position(
    lake: Lake, query: str, filter_text: str | None
) -> None:
    params = {"query": query, **({"filter": filter_text} if filter_text is not None else {})}
    response = httpx.get(f"{lake.url}{API}/items", params=params, headers=_auth(lake.read))
    _check_search(response, query)


@FUZZ
@given(query=st.one_of(st.none(), query_texts), filter=st.one_of(st.none(), filters))
def test_fuzzed_post_items_search_is_a_result_or_a_400_with_a_position(
    lake: Lake, query: str | None, filter: Any
) -> None:
    body = json.dumps({"query": query, "filter": filter}, allow_nan=False)
    response = httpx.post(
        f"{lake.url}{API}/items/search",
        content=body.encode(),
        headers={**_auth(lake.read), "Content-Type": "application/json"},
    )
    if response.status_code == 422:  # a filter that is not a JSON object: the schema says so
        assert not isinstance(filter, dict), response.text
        assert "body.filter" in response.text
        return
    _check_search(response, query)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    query=st.one_of(st.none(), query_texts),
    filter=st.one_of(st.none(), filters.filter(lambda f: isinstance(f, dict))),
)
def test_fuzzed_similarity_search_is_a_result_or_a_400_with_a_position(
    lake: Lake, query: str | None, filter: dict[str, Any] | None
) -> None:
    body = json.dumps(
        {"vector": [1.0, 0.0, 0.5], "model_name": "ext", "k": 5, "query": query, "filter": filter}
    )
    response = httpx.post(
        f"{lake.url}{API}/search/similar",
        content=body.encode(),
        headers={**_auth(lake.read), "Content-Type": "application/json"},
    )
    _check_search(response, query)


# -- documents, ids and names sized to hurt -----------------------------------------------------
SMALL_BODY = 8192  # every error body stays under this, whatever the request held


def _laughs(levels: int = 9) -> str:
    """A YAML document of ~300 bytes whose aliases stand for 10**levels strings."""
    lines = [f"a: &a [{','.join(['lol'] * 10)}]"]
    lines += [
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 10)}]"
        for i in range(levels - 1)
    ]
    return "\n".join(lines) + f"\nnames: *{chr(97 + levels - 1)}\n"


def _small_error(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, response.text[:500]
    assert len(response.content) < SMALL_BODY, (len(response.content), response.text[:300])
    return _error(response)


def test_a_yaml_alias_bomb_is_a_small_400(lake: Lake) -> None:
    bomb = _laughs()
    assert len(bomb.encode()) < 400
    response = httpx.post(
        f"{lake.url}{API}/collections/{lake.values['collection_id']}/annotations/import",
        json={
            "format": "yolo",
            "yolo": {"labels": {"a.txt": "0 0.5 0.5 0.1 0.1\n"}, "data_yaml": bomb},
        },
        headers=_auth(lake.admin),
        timeout=30,
    )
    error = _small_error(response, 400)
    assert error["code"] == "invalid_annotations"
    assert "data.yaml" in error["message"]
    assert "aliases" in error["message"]


def test_json_nested_thousands_deep_is_a_400_wherever_it_is_read(lake: Lake) -> None:
    deep, shallow = "[" * 3000 + "]" * 3000, "[" * 150 + "]" * 150
    headers = {**_auth(lake.admin), "Content-Type": "application/json"}
    search = f"{lake.url}{API}/items/search"
    for body in (
        deep,
        "[" * 3000,
        "[" * 300 + "]" * 300,
        '{"query": "\\ud800", "filter": ' + deep + "}",
    ):  # the json module's path
        error = _small_error(httpx.post(search, content=body.encode(), headers=headers), 400)
        assert (error["code"], error["details"]["reason"]) == ("invalid_document", "too_deep")
        assert "request body is nested too deeply" in error["message"]
    assert httpx.post(search, content=shallow.encode(), headers=headers).status_code == 422
    huge = '{"collection_id": ' + "9" * 5000 + "}"
    error = _small_error(httpx.post(search, content=huge.encode(), headers=headers), 400)
    assert "request body holds a number of more than 4,300 digits" in error["message"]
    response = httpx.get(
        f"{lake.url}{API}/items", params={"filter": deep}, headers=_auth(lake.read)
    )
    error = _small_error(response, 400)
    assert error["code"] == "invalid_filter"
    assert "nested too deeply" in error["message"]
    response = httpx.post(
        f"{lake.url}{API}/collections/things/upload",
        params={"content_type": "image"},
        headers=_auth(lake.admin),
        files={"files": ("b.jpg", b"\xff\xd8\xff", "image/jpeg")},
        data={"relative_paths": "b.jpg", "metadata": '{"a": ' + deep + "}"},
    )
    error = _small_error(response, 400)
    assert "metadata field is nested too deeply" in error["message"]


BAD_IDS = [
    "²",
    "٣",
    "\uff11",
    "+1",
    " 1",
    "1 ",
    "1_000",
    "0",
    "-1",
    "1.0",
    "9" * 5000,
    str(2**63),
    str(2**64 + 1),
]


def _integer(schema: dict[str, Any]) -> bool:
    return any(s.get("type") == "integer" for s in [schema, *schema.get("anyOf", [])])


def _all_operations(spec: dict[str, Any]) -> list[Operation]:
    return [
        Operation(method, template, op)
        for template, methods in sorted(spec["paths"].items())
        for method, op in methods.items()
    ]


def test_every_id_parameter_takes_ascii_digits_within_bigint_only(
    lake: Lake, database: Callable[[], dict[str, str]], subtests: Any
) -> None:
    before = database()
    checked = set()
    for op in _all_operations(lake.spec):
        params = [
            p
            for p in op.spec.get("parameters", [])
            if p["in"] in ("path", "query") and _integer(p["schema"])
        ]
        for param in params:
            if param["name"].startswith("page") or param["name"] == "limit":
                continue
            checked.add(f"{op} {param['name']}")
            for bad in BAD_IDS:
                with subtests.test(op=str(op), param=param["name"], value=bad[:12]):
                    query = lake.query(op)
                    filled = {
                        p["name"]: "1"
                        for p in op.parameters("path")  # any id will do
                        if _integer(p["schema"])
                    }
                    if param["in"] == "path":
                        filled[param["name"]] = bad
                    else:
                        query = {**query, param["name"]: bad}
                    path = lake.path(op, **filled)
                    kwargs: dict[str, Any] = {"json": {}} if op.content_type else {}
                    response = httpx.request(
                        op.method,
                        lake.url + path,
                        params=query,
                        headers=_auth(lake.admin),
                        timeout=30,
                        **kwargs,
                    )
                    error = _small_error(response, 422)
                    where = " ".join(
                        [
                            error["message"],
                            *(str(p.get("location")) for p in error["details"].get("errors", [])),
                        ]
                    )
                    assert param["name"] in where, error
    assert len(checked) >= 14, sorted(checked)
    assert database() == before


@pytest.mark.parametrize(
    "version", ["²", "٣", "+1", " 1", "1_000", "0", "9" * 5000, str(2**63), ""]
)
def test_a_model_reference_takes_ascii_digits_within_bigint_only(lake: Lake, version: str) -> None:
    reference = f"shapes@{version}"
    for method, url, body in (
        ("GET", f"{API}/models/{quote(reference, safe='')}", None),
        ("DELETE", f"{API}/models/{quote(reference, safe='')}", None),
        (
            "POST",
            f"{API}/jobs/autotag",
            {"collection_id": int(lake.values["collection_id"]), "model_id": reference},
        ),
    ):
        response = httpx.request(
            method, lake.url + url, json=body, headers=_auth(lake.admin), timeout=30
        )
        error = _small_error(response, 400)
        assert (
            "model reference" in error["message"] or "Versions are immutable" in error["message"]
        ), error
    assert (
        httpx.get(f"{lake.url}{API}/models/shapes@1", headers=_auth(lake.read)).status_code == 200
    )


def test_path_components_of_5000_characters_are_a_small_4xx(
    lake: Lake, database: Callable[[], dict[str, str]], subtests: Any
) -> None:
    before = database()
    long = "n" * 5000
    for op in _all_operations(lake.spec):
        names = [p["name"] for p in op.parameters("path") if p["schema"].get("type") == "string"]
        for name in names:
            with subtests.test(op=str(op), param=name):
                kwargs: dict[str, Any] = {}
                if op.content_type == "application/json":
                    kwargs["json"] = VALID_BODIES.get(str(op), {})
                response = httpx.request(
                    op.method,
                    lake.url + lake.path(op, **{name: long}),
                    params=lake.query(op),
                    headers=_auth(lake.admin),
                    timeout=30,
                    **kwargs,
                )
                error = _small_error(response, 400, 404, 413, 422)
                assert long not in response.text
                assert "n" * 201 not in error["message"]  # quoted in part, if at all
    assert database() == before


def test_an_error_quotes_a_long_query_in_part(lake: Lake) -> None:
    query = "annotation.label = " + "x" * 100_000 + " AND ("
    response = httpx.post(
        f"{lake.url}{API}/items/search", json={"query": query}, headers=_auth(lake.read), timeout=30
    )
    error = _small_error(response, 400)
    assert error["code"] == "invalid_query"
    assert error["details"]["query"].endswith("…")


def test_a_server_path_the_file_system_cannot_look_up_is_a_400(
    lake: Lake, database: Callable[[], dict[str, str]]
) -> None:
    before = database()
    for path in ("/tmp/" + "a" * 5000 + ".jpg", "/tmp/" + "/".join(["d" * 250] * 30) + "/a.jpg"):
        response = httpx.post(
            f"{lake.url}{API}/collections/ingest",
            headers=_auth(lake.admin),
            json={
                "collection_name": "c2",
                "content_type": "image",
                "entries": [{"path": path, "relative_path": "a.jpg"}],
            },
        )
        error = _small_error(response, 400)
        assert error["code"] == "invalid_path"
        assert (
            "cannot be looked up on the engine's machine (File name too long)" in error["message"]
        )
    assert database() == before
