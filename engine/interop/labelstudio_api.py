"""The few Label Studio REST calls the engine makes, with httpx, and its errors as ours.

A personal access token (a JWT, what Label Studio 1.20+ hands out) is a refresh token: it is
traded at `/api/token/refresh/` for a short-lived access token sent as `Bearer`; a legacy token
is sent as `Token <key>` (organizations have them off by default since 1.20).
"""

from __future__ import annotations

import contextlib
from typing import Any, Self

import httpx

from engine.config import Settings
from engine.errors import LabelStudioNotConfigured, LabelStudioRefused, LabelStudioUnavailable
from engine.textformats import excerpt

TIMEOUT = 120.0


class LabelStudioApi:
    def __init__(self, url: str, token: str, *, timeout: float = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        token = token.strip()
        if token.count(".") == 2:  # a JWT: a personal access token
            access = self._call("POST", "/api/token/refresh/", json={"refresh": token})
            self._http.headers["Authorization"] = f"Bearer {access['access']}"
        else:
            self._http.headers["Authorization"] = f"Token {token}"

    @classmethod
    def connect(cls, settings: Settings, url: str | None, token: str | None) -> Self:
        """The named Label Studio, else the engine's (METALAKE_LABELSTUDIO_URL / _TOKEN)."""
        url = url or settings.labelstudio_url
        token = token or settings.labelstudio_token
        if not url or not token:
            raise LabelStudioNotConfigured()
        if not url.startswith(("http://", "https://")):
            raise LabelStudioNotConfigured(
                f"labelstudio_url must be an http(s) URL such as http://127.0.0.1:8080; got "
                f"{excerpt(url)!r}."
            )
        return cls(url, token)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise LabelStudioUnavailable(
                f"Label Studio at {self.url} could not be reached: {exc}. Check the URL and "
                "that it is running."
            ) from exc
        if response.status_code >= 500:
            raise LabelStudioUnavailable(
                f"Label Studio at {self.url} failed ({response.status_code}) on {method} {path}."
            )
        if response.is_error:
            hint = (
                " The token is not valid: copy a personal access token from Label Studio's "
                "Account & Settings."
                if response.status_code in (401, 403)
                else ""
            )
            raise LabelStudioRefused(
                f"Label Studio refused {method} {path} ({response.status_code}): "
                f"{excerpt(response.text, 300)}.{hint}",
                status=response.status_code,
            )
        return response.json() if response.content else None

    def create_project(self, title: str, label_config: str) -> dict[str, Any]:
        project: dict[str, Any] = self._call(
            "POST", "/api/projects", json={"title": title, "label_config": label_config}
        )
        return project

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> None:
        self._call("POST", f"/api/projects/{project_id}/import", json=tasks)

    def delete_project(self, project_id: int) -> None:
        # the caller's error is the one to report
        with contextlib.suppress(LabelStudioRefused, LabelStudioUnavailable):
            self._call("DELETE", f"/api/projects/{project_id}/")

    def export_tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations (Label Studio's JSON export)."""
        tasks: list[dict[str, Any]] = self._call(
            "GET",
            f"/api/projects/{project_id}/export",
            params={"exportType": "JSON", "download_all_tasks": "true"},
        )
        return tasks

    def get_project(self, project_id: int) -> dict[str, Any]:
        project: dict[str, Any] = self._call("GET", f"/api/projects/{project_id}")
        return project

    def list_projects(self) -> list[dict[str, Any]]:
        """Every project, page by page (older versions answer one plain list)."""
        projects: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = self._call("GET", "/api/projects", params={"page": page, "page_size": 100})
            if isinstance(answer, list):
                return answer
            projects.extend(answer.get("results") or [])
            if not answer.get("next"):
                return projects
            page += 1

    def set_label_config(self, project_id: int, label_config: str) -> dict[str, Any]:
        project: dict[str, Any] = self._call(
            "PATCH", f"/api/projects/{project_id}", json={"label_config": label_config}
        )
        return project

    def remove_project(self, project_id: int) -> None:
        """Delete the project; unlike `delete_project`, Label Studio's refusal is raised."""
        self._call("DELETE", f"/api/projects/{project_id}/")

    def create_prediction(self, task_id: int, prediction: dict[str, Any]) -> None:
        self._call("POST", "/api/predictions/", json={"task": task_id, **prediction})
