"""RELIABILITY.md rows on the admin API (docs/reliability.md has the row map)."""

from __future__ import annotations

from .conftest import CANARY, assert_clear


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
