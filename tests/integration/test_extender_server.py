"""``spotpack extender --local`` as users run it: gunicorn over TLS, the embedded cluster
seeded from deploy/examples, golden kube-scheduler bodies over a verifying client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from spotpack.tls import certs
from tests.integration.servers import REPO, Service, free_port, start
from tests.manifests import validation_errors
from tests.pods import golden

pytestmark = pytest.mark.integration
EXAMPLES = REPO / "deploy" / "examples"


@pytest.fixture(scope="module")
def extender(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    out = tmp_path_factory.mktemp("certs")
    certs.generate(out)
    port = free_port()
    env = {
        "SPOTPACK_EXTENDER_HOST": "127.0.0.1",
        "SPOTPACK_EXTENDER_PORT": str(port),
        "SPOTPACK_EXTENDER_CERT_FILE": str(out / "tls.crt"),
        "SPOTPACK_EXTENDER_KEY_FILE": str(out / "tls.key"),
    }
    service = start(["extender", "--local", "--local-seed", str(EXAMPLES)], env, port, tmp_path_factory.mktemp("logs") / "extender.log", out / "ca.crt")
    yield service
    assert service.stop() == 0


def call(service: Service, method: str, path: str, body: object = None) -> tuple[int, object]:
    conn = service.connection()
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_example_cluster_objects_are_valid_kubernetes() -> None:
    import yaml

    docs = [d for d in yaml.safe_load_all((EXAMPLES / "cluster.yaml").read_text()) if d]
    assert docs
    for doc in docs:
        assert validation_errors(doc, "1.30") == [], doc["metadata"]["name"]


def test_filter_prioritize_inspect_over_tls(extender: Service) -> None:
    import time

    deadline = time.monotonic() + 20
    while call(extender, "GET", "/readyz")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    pod = golden("extender-filter-nodecachecapable.json")["Pod"]
    names = ["gpu-spot-a10g-1", "gpu-spot-a10g-4", "gpu-od-t4-1", "od-m5-1", "missing"]
    status, result = call(extender, "POST", "/filter", {"Pod": pod, "Nodes": None, "NodeNames": names})
    assert status == 200
    assert sorted(result["NodeNames"]) == ["gpu-od-t4-1", "gpu-spot-a10g-1", "gpu-spot-a10g-4"]
    assert "no GPUs" in result["FailedAndUnresolvableNodes"]["od-m5-1"]
    assert "missing" in result["FailedNodes"]
    status, scores = call(extender, "POST", "/prioritize", {"Pod": pod, "Nodes": None, "NodeNames": result["NodeNames"]})
    assert status == 200 and all(isinstance(s["Score"], int) for s in scores)
    status, view = call(extender, "GET", "/inspect?node=gpu-spot-a10g-4")
    assert status == 200 and len(view["nodes"]["gpu-spot-a10g-4"]["cards"]) == 4
    status, bound = call(extender, "POST", "/bind", golden("extender-bind.json"))
    assert status == 200 and "gpu-2 is not in the extender's cache" in bound["Error"]
