"""RELIABILITY.md rows on the admin API (docs/reliability.md has the row map)."""

from __future__ import annotations

import pytest

from .conftest import ADMIN, CANARY, assert_clear


# -- 14. admin authorisation ---------------------------------------------------------------------------------
def test_r14_admin_without_a_token_or_with_a_predict_token_is_denied_and_audited(shared, artifacts, served_folder):
    from starlette.testclient import TestClient

    from bedside.service.app import create_app
    from tests.service.conftest import make_settings

    _, engine, _ = shared
    registry = engine.runtime.registry
    settings = make_settings(registry.root, served_folder, predict_tokens="predict-secret")
    client = TestClient(create_app(settings, lambda: engine), raise_server_exceptions=False)
    closed = TestClient(
        create_app(make_settings(registry.root, served_folder, admin_tokens=""), lambda: engine),
        raise_server_exceptions=False,
    )
    files = [
        ("files", (p.name, p.read_bytes(), "application/octet-stream"))
        for p in sorted(artifacts[1]["mortality"].iterdir())
    ]
    versions = [(v.task, v.version, v.active) for v in registry.list()]
    audited = len(registry.audit_entries())
    upload = {"files": files}
    attempts = [  # (client, method, path, token, request kwargs, status, code, audited action)
        (client, "post", "/admin/adapters/mortality?activate=true", None, upload, 401, "unauthorized", "push"),
        (client, "post", "/admin/adapters/mortality", "predict-secret", upload, 403, "forbidden", "push"),
        (client, "post", "/admin/adapters/mortality", "wrong-token", upload, 401, "unauthorized", "push"),
        (client, "post", "/admin/adapters/mortality/v1/activate", None, {}, 401, "unauthorized", "activate"),
        (client, "post", "/admin/adapters/mortality/v1/activate", "predict-secret", {}, 403, "forbidden", "activate"),
        (client, "post", "/admin/adapters/mortality/rollback", "predict-secret", {}, 403, "forbidden", "rollback"),
        (client, "get", "/admin/adapters", None, {}, 401, "unauthorized", "list"),
        (
            closed,
            "post",
            "/admin/adapters/mortality/v1/activate",
            "admin-secret",
            {},
            403,
            "admin_disabled",
            "activate",
        ),
    ]
    for http, method, path, token, kwargs, status, code, _ in attempts:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = getattr(http, method)(path, headers=headers, **kwargs)
        assert_clear(r, status, code)
        if status == 401:
            assert r.headers["WWW-Authenticate"] == "Bearer"
    entries = registry.audit_entries()[audited:]
    assert [(e.action, e.outcome, e.reason) for e in entries] == [(a[7], "denied", a[6]) for a in attempts]
    for entry, (_, _, _, token, _, _, _, action) in zip(entries, attempts):
        assert entry.task == (None if action == "list" else "mortality")
        assert entry.actor == "anonymous" if token is None else entry.actor.startswith("token:")
        assert "secret" not in entry.model_dump_json()  # a hash prefix names the caller, never the token
    assert [(v.task, v.version, v.active) for v in registry.list()] == versions  # nothing changed
    # a denied attempt on a made-up task records no caller-chosen text
    r = client.post(f"/admin/adapters/{CANARY.lower().replace('-', '_')}/v1/activate")
    assert_clear(r, 401)
    assert CANARY.lower().replace("-", "_") not in registry.audit_entries()[-1].model_dump_json()


# -- 38, 39 and D11: compare-and-set, rollback history, idempotent uploads, delete, names never echoed --------
def _files(folder, rename: dict | None = None):
    return [
        ("files", ((rename or {}).get(p.name, p.name), p.read_bytes(), "application/octet-stream"))
        for p in sorted(folder.iterdir())
    ]


def test_r38_activation_takes_if_match_and_rollback_walks_the_history(tmp_path, artifacts, served_folder):
    from tests.service.conftest import build_client

    from .conftest import push_all

    client, engine = build_client(push_all(tmp_path / "store", artifacts[0], ["mortality"]), served_folder)
    try:
        r = client.post("/admin/adapters/mortality", files=_files(artifacts[1]["mortality"]), headers=ADMIN)
        assert r.status_code == 200 and r.json()["version"]["version"] == "v2", r.text
        stale = {**ADMIN, "If-Match": "v7"}
        assert_clear(client.post("/admin/adapters/mortality/v2/activate", headers=stale), 409, "conflict")
        ok = client.post("/admin/adapters/mortality/v2/activate", headers={**ADMIN, "If-Match": "v1"})
        assert ok.status_code == 200 and ok.json()["active"]["version"] == "v2"
        assert_clear(
            client.post("/admin/adapters/mortality/v2/activate", headers={**ADMIN, "If-Match": CANARY}),
            400,
            "invalid_request",
        )
        back = client.post("/admin/adapters/mortality/rollback", headers=ADMIN)
        assert back.status_code == 200 and back.json()["active"]["version"] == "v1"
        assert_clear(client.post("/admin/adapters/mortality/rollback", headers=ADMIN), 404, "not_found")
        off = client.post("/admin/adapters/mortality/deactivate", headers={**ADMIN, "If-Match": "v1"})
        assert off.status_code == 200 and client.get("/readyz/mortality").status_code == 503
        gone = client.delete("/admin/adapters/mortality/v2", headers=ADMIN)
        assert gone.status_code == 200 and [v.version for v in engine.runtime.registry.list()] == ["v1"]
        actions = [(e.action, e.outcome) for e in engine.runtime.registry.audit_entries()][-7:]
        assert actions == [
            ("push", "ok"),
            ("activate", "refused"),
            ("activate", "ok"),
            ("rollback", "ok"),
            ("rollback", "refused"),
            ("deactivate", "ok"),
            ("delete", "ok"),
        ]
        text = client.get("/metrics").text
        assert 'bedside_admin_actions_total{action="activate",outcome="refused"} 2.0' in text
    finally:
        engine.close()


def test_r39_an_identical_upload_returns_the_stored_version(tmp_path, artifacts, served_folder):
    from tests.service.conftest import build_client

    from .conftest import push_all

    client, engine = build_client(push_all(tmp_path / "store", artifacts[0], ["mortality"]), served_folder)
    try:
        r = client.post("/admin/adapters/mortality", files=_files(artifacts[0]["mortality"]), headers=ADMIN)
        assert r.status_code == 200 and r.json()["version"]["version"] == "v1", r.text
        assert len(engine.runtime.registry.list("mortality")) == 1
    finally:
        engine.close()


@pytest.mark.parametrize("name", [f"{CANARY}.bin", f"../{CANARY}", f"manifest.json.{CANARY}"])
def test_d11_an_uploaded_file_name_is_never_echoed(shared, artifacts, name):
    client, engine, _ = shared
    folder = artifacts[1]["mortality"]
    files = _files(folder) + [("files", (name, b"x", "application/octet-stream"))]
    r = client.post("/admin/adapters/mortality", files=files, headers=ADMIN)
    assert 400 <= r.status_code < 500 and CANARY not in r.text, r.text
    assert all(CANARY not in (e.reason or "") for e in engine.runtime.registry.audit_entries())
    field = client.post(
        "/admin/adapters/mortality",
        files=[(CANARY, ("manifest.json", b"{}", "text/plain"))],
        data={CANARY: CANARY},
        headers=ADMIN,
    )
    assert 400 <= field.status_code < 500 and CANARY not in field.text
