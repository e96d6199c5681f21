"""`minitrade init` writes a GitHub Actions workflow: validate, then the plan as a pull-request comment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from minitrade.cli import app

runner = CliRunner()
WORKFLOW = ".github/workflows/minitrade.yml"


def init_repo(target: Path) -> dict[Any, Any]:
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert f"created {target / WORKFLOW}" in result.output
    doc = yaml.safe_load((target / WORKFLOW).read_text())
    assert isinstance(doc, dict)
    return doc


def steps_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    jobs = list(doc["jobs"].values())
    assert len(jobs) == 1
    return list(jobs[0]["steps"])


def test_init_writes_a_workflow_that_validates_and_comments_the_plan_on_pull_requests(tmp_path: Path) -> None:
    doc = init_repo(tmp_path / "trading")
    on = doc["on"] if "on" in doc else doc[True]     # YAML 1.1 reads a bare `on` key as true; GitHub reads it as "on"
    assert "pull_request" in on
    assert doc["permissions"]["pull-requests"] == "write"
    steps = steps_of(doc)
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    assert any(s.get("uses", "").startswith("actions/setup-python@") for s in steps)
    runs = [s.get("run", "") for s in steps]
    order = [next(i for i, r in enumerate(runs) if needle in r)
             for needle in ("pip install minitrade", "minitrade validate", "minitrade plan --format markdown",
                            "--body-file plan.md")]
    assert order == sorted(order)
    comment = steps[order[-1]]
    assert comment["env"]["GH_TOKEN"] == "${{ github.token }}" and "gh pr comment" in comment["run"]
    tracked = subprocess.run(["git", "-C", str(tmp_path / "trading"), "ls-files", WORKFLOW],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert tracked == WORKFLOW


def test_the_workflow_steps_run_on_a_pull_request_branch(tmp_path: Path) -> None:
    """The validate and plan steps' own shell, run in a clone as actions/checkout leaves it."""
    origin = tmp_path / "trading"
    steps = steps_of(init_repo(origin))
    base = subprocess.run(["git", "-C", str(origin), "symbolic-ref", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    clone = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", "-b", "slower"], check=True)
    plan = clone / "plans" / "example.yaml"
    plan.write_text(plan.read_text().replace("slow: 30", "slow: 40"))
    subprocess.run(["git", "-C", str(clone), "commit", "-qam", "slower"], check=True)
    # `minitrade` on PATH is this checkout's code, as `pip install minitrade` would provide it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "minitrade").write_text(f"#!/bin/sh\nexec {sys.executable} -m minitrade \"$@\"\n")
    (bin_dir / "minitrade").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "BASE_REF": base,
           "GITHUB_HEAD_REF": "slower", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PYTHONWARNINGS": "ignore"}
    for name in ("Validate", "Plan"):
        script = next(s["run"] for s in steps if s.get("name") == name)
        done = subprocess.run(["bash", "-e", "-c", script], cwd=clone, env=env, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, f"{name}: {done.stdout}\n{done.stderr}"
    comment = (clone / "plan.md").read_text()
    assert comment.startswith("### minitrade plan for `slower` @ ")
    assert "**Plan: 0 to add, 1 to change, 0 to replace, 0 to remove.**" in comment
    assert "-     params.slow: 30\n+     params.slow: 40" in comment
    assert (tmp_path / "summary.md").read_text() == comment
