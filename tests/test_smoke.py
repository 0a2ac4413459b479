from __future__ import annotations

import httpx


def test_health_is_open_and_reaches_the_database(api_url: str) -> None:
    response = httpx.get(f"{api_url}/api/v1/health")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_keys_route_needs_an_admin_key(api_url: str, make_key) -> None:  # type: ignore[no-untyped-def]
    url = f"{api_url}/api/v1/keys"
    assert httpx.get(url).status_code == 401
    read = make_key("read")
    response = httpx.get(url, headers={"Authorization": f"Bearer {read}"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    admin = make_key("admin")
    created = httpx.post(
        url, json={"name": "ci", "scopes": ["write"]}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert created.status_code == 201, created.text
    new_key = created.json()["key"]
    listed = httpx.get(url, headers={"Authorization": f"Bearer {new_key}"})
    assert listed.status_code == 403
