"""``spotpack simulate`` with bad input: one line naming the file and the fix, exit 2, nothing started."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from spotpack.cli import main


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """The command configures the root logger on pytest's captured stream; later tests
    must not log into that stream once pytest has closed it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


SMALL = {"name": "w", "template": {"containers": [{"name": "c"}]}}
GOOD = {"name": "tiny", "duration": 60, "workloads": [SMALL]}


def asking(requests: dict[str, object]) -> str:
    """GOOD with a second workload, ``executors``, asking for ``requests``."""
    big = {
        "name": "executors",
        "template": {"containers": [{"name": "c", "resources": {"requests": requests}}]},
    }
    return yaml.safe_dump({**GOOD, "workloads": [SMALL, big]})


@pytest.mark.parametrize(
    ("content", "extra", "words"),
    [
        ("name: [oops\n", [], "YAML syntax error"),
        (
            yaml.safe_dump({**GOOD, "duration": "soon"}),
            [],
            "duration: Input should be a valid number",
        ),
        (
            yaml.safe_dump({**GOOD, "region": "mars-1"}),
            [],
            "region: 'mars-1' is not in the catalog",
        ),
        (
            yaml.safe_dump({**GOOD, "zones": ["us-west-2a"]}),
            [],
            "zones: us-west-2a not in us-east-1",
        ),
        (
            asking({"cpu": "4 cores"}),
            [],
            "workloads[1] (executors).template.containers[0].resources.requests.cpu: "
            "quantity '4 cores' is not a Kubernetes quantity",
        ),
        (
            asking({"cpu": "1000", "memory": "16Gi"}),
            [],
            "workloads[1] (executors): no on-demand type in us-east-1 holds a pod of 1000 CPU",
        ),
        (
            asking({"memory": "100Ti"}),
            [],
            "workloads[1] (executors): no on-demand type in us-east-1 holds a pod of",
        ),
        (yaml.safe_dump(GOOD), ["--report", "out.pdf"], "--report out.pdf: unsupported file type"),
        (yaml.safe_dump(GOOD), ["--compression", "0"], "--compression must be"),
    ],
)
def test_bad_input_is_one_line_and_nothing_starts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str,
    extra: list[str],
    words: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(content)
    workdir = tmp_path / "run"
    code = main(["simulate", str(scenario), "--workdir", str(workdir), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("spotpack simulate: ") and words in err, err
    if "--" not in words:
        assert str(scenario) in err and "fix" in err
    assert not workdir.exists()  # the stack never started


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", str(tmp_path / "nope.yaml"), "--workdir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "nope.yaml: cannot read it" in err and "fix:" in err
