"""The Ingresses expose what users need and nothing else: no service's /metrics, /healthz or
/readyz is reachable from outside the cluster, in any overlay."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import OVERLAYS, Doc, named, render

OPS_PATHS = ("/metrics", "/healthz", "/readyz")


def reachable(ingress: Doc, path: str) -> bool:
    """Whether a request for ``path`` matches one of the Ingress's rules (Kubernetes' Exact and
    Prefix semantics: a Prefix matches whole path elements)."""
    for rule in ingress["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            want, kind = p["path"], p["pathType"]
            if kind == "Exact" and path == want:
                return True
            if kind == "Prefix":
                base = want.rstrip("/")
                if path == base or path.startswith(base + "/"):
                    return True
    return False


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", ["ingest", "dashboard"])
def test_no_ops_endpoint_is_public(overlay: str, service: str) -> None:
    ingress = named(render(overlay), "Ingress", service)
    assert [p for p in OPS_PATHS if reachable(ingress, p)] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_dashboard_page_its_files_and_api_are_public(overlay: str) -> None:
    ingress = named(render(overlay), "Ingress", "dashboard")
    for path in ("/", "/static/app.js", "/static/leaflet/leaflet.js", "/api/login", "/api/events"):
        assert reachable(ingress, path), path
