"""Signed file URLs over the real API: fetched without a key until they expire; expired,
altered or rotated-out ones refused with a 403."""

from __future__ import annotations

import stat
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx
import pytest

from engine.api.app import create_app
from engine.config import Settings
from engine.errors import InvalidInput
from engine.interop import signing
from sdk import Client, NotFound, ValidationFailed
from tests.conftest import serve_app
from tests.fixtures import imagegen

CURRENT, PREVIOUS, RETIRED = "key-current-0123456789", "key-previous-0123456789", "key-retired-01"
NAME = "photos_img.png"


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"signing_key": CURRENT, "signing_previous_keys": PREVIOUS})


@pytest.fixture
def photo(client: Client, tmp_path: Path) -> bytes:
    [path] = imagegen.images(tmp_path / "photos", ["img.png"], size=(64, 48))
    client.upload_files_to_collection(tmp_path / "photos", "image", "photos")
    return path.read_bytes()


def _signed(api_url: str, key: str, *, name: str = NAME, expires: int | None = None) -> str:
    expires = int(time.time()) + 600 if expires is None else expires
    token = signing._token(key, name, expires)
    query = urlencode({"expires": expires, "token": token})
    return f"{api_url}/api/v1/signed/files/{quote(name, safe='')}?{query}"


def _parts(url: str) -> tuple[str, dict[str, str]]:
    split = urlsplit(url)
    return split.path, dict(parse_qsl(split.query))


def test_a_signed_url_fetches_the_bytes_without_a_key(
    client: Client, api_url: str, photo: bytes
) -> None:
    url = client.get_downloadable_url(NAME)
    assert url.startswith(api_url + "/api/v1/signed/files/photos_img.png?")
    response = httpx.get(url)  # no Authorization header
    assert response.status_code == 200
    assert response.content == photo
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(photo))

    head = httpx.head(url)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(photo))
    assert head.content == b""

    ranged = httpx.get(url, headers={"Range": "bytes=1-10"})
    assert ranged.status_code == 206
    assert ranged.content == photo[1:11]
    assert ranged.headers["content-range"] == f"bytes 1-10/{len(photo)}"
    tail = httpx.get(url, headers={"Range": "bytes=-4"})
    assert tail.content == photo[-4:]


def test_the_url_route_says_when_it_expires(client: Client, api_url: str, photo: bytes) -> None:
    answer = client._get(f"/files/{NAME}/url", params={"expires_in": 120})
    _, query = _parts(answer["url"])
    assert int(query["expires"]) - time.time() == pytest.approx(120, abs=5)
    assert answer["expires_at"].startswith(time.strftime("%Y-%m-%d", time.gmtime()))
    for bad in (0, 7 * 24 * 3600 + 1):
        with pytest.raises(ValidationFailed, match="expires_in"):
            client.get_downloadable_url(NAME, expires_in=bad)
    with pytest.raises(InvalidInput, match="expires_in must be between 1 and 604800"):
        signing.signed_url(Settings(signing_key=CURRENT), NAME, expires_in=0)
    with pytest.raises(NotFound, match="No file has the unique name"):
        client.get_downloadable_url("photos_missing.png")
    unkeyed = httpx.get(f"{api_url}/api/v1/files/{NAME}/url")
    assert unkeyed.status_code == 401  # making a URL needs a key


def test_expired_urls_are_refused(api_url: str, photo: bytes) -> None:
    response = httpx.get(_signed(api_url, CURRENT, expires=int(time.time()) - 1))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "signed_url_expired"
    assert "expired" in response.json()["error"]["message"]


@pytest.mark.parametrize("part", ["token", "name", "expires"])
def test_altered_urls_are_refused(api_url: str, photo: bytes, part: str) -> None:
    url = _signed(api_url, CURRENT)
    path, query = _parts(url)
    if part == "token":
        query["token"] = query["token"][:-2] + ("AA" if query["token"][-2:] != "AA" else "BB")
    elif part == "name":
        path = path.replace("photos_img.png", "photos_other.png")
    else:
        query["expires"] = str(int(query["expires"]) + 3600)  # a longer life than signed for
    response = httpx.get(f"{api_url}{path}?{urlencode(query)}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "signed_url_invalid"
    assert "does not match" in response.json()["error"]["message"]


def test_missing_or_malformed_parameters_are_client_errors(api_url: str, photo: bytes) -> None:
    bare = httpx.get(f"{api_url}/api/v1/signed/files/{NAME}")
    assert bare.status_code == 422
    assert "expires" in bare.text
    garbage = httpx.get(f"{api_url}/api/v1/signed/files/{NAME}?expires=soon&token=x")
    assert garbage.status_code == 422


def test_rotation_previous_keys_work_retired_ones_do_not(api_url: str, photo: bytes) -> None:
    assert httpx.get(_signed(api_url, PREVIOUS)).content == photo
    retired = httpx.get(_signed(api_url, RETIRED))
    assert retired.status_code == 403
    assert retired.json()["error"]["code"] == "signed_url_invalid"
    # signed_url signs with the current key
    settings = Settings(signing_key=CURRENT, public_url=api_url)
    assert httpx.get(signing.signed_url(settings, NAME)).content == photo


def test_without_a_configured_key_one_is_made_in_the_home(
    settings: Settings, photo: bytes, make_key: Callable[..., str]
) -> None:
    """The default: `<home>/signing.key`, 0600, made once and kept."""
    key_file = settings.home / "signing.key"
    assert not key_file.exists()
    app = create_app(settings)
    try:
        for url in serve_app(app):
            with Client(url, make_key("read")) as reader:
                signed = reader.get_downloadable_url(NAME)
            assert httpx.get(signed).content == photo
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            kept = key_file.read_text()
            assert httpx.get(_signed(url, kept.strip())).status_code == 200
            assert httpx.get(_signed(url, CURRENT)).status_code == 403  # not this engine's key
    finally:
        app.state.db_engine.dispose()
    assert signing.signing_keys(settings) == [kept.strip()]
