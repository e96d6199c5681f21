"""The JSON Schemas editors use: the embedded default's modelines point at files that exist, those files
are what the models say now, and every YAML file of the default and of `minitrade init` validates
against them as an editor's YAML server reads it (dates stay text)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from minitrade.cli import app

ROOT = Path(__file__).resolve().parents[1]
MODELINE = re.compile(r"#\s*yaml-language-server:\s*\$schema=(\S+)")


class AsEditorsRead(yaml.SafeLoader):
    """YAML as yaml-language-server sees it: no timestamp conversion (a date stays a string)."""


AsEditorsRead.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def check_modelines(files: list[Path]) -> int:
    checked = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        found = MODELINE.search(text.splitlines()[0])
        assert found, f"{path} has no schema modeline"
        schema_file = (path.parent / found.group(1)).resolve()
        assert schema_file.is_file(), f"{path}: its modeline points at {schema_file}, which does not exist"
        jsonschema.validate(yaml.load(text, AsEditorsRead), json.loads(schema_file.read_text(encoding="utf-8")))
        checked += 1
    return checked


def test_the_embedded_defaults_modelines_point_at_current_schemas_its_files_satisfy(tmp_path: Path) -> None:
    assert CliRunner().invoke(app, ["schema", "--out", str(tmp_path)]).exit_code == 0
    for name in ("plan.schema.json", "minitrade.schema.json"):
        assert json.loads((ROOT / "schemas" / name).read_text()) == json.loads((tmp_path / name).read_text()), (
            f"schemas/{name} is stale: run `minitrade schema --out schemas`")
    assert check_modelines([ROOT / "minitrade.yaml", *sorted((ROOT / "plans").glob("*.yaml"))]) == 4


def test_a_scaffolded_repos_files_satisfy_the_schemas_it_ships(tmp_path: Path) -> None:
    target = tmp_path / "trading"
    assert CliRunner().invoke(app, ["init", str(target)]).exit_code == 0
    assert check_modelines([target / "minitrade.yaml", *sorted((target / "plans").glob("*.yaml"))]) >= 2


@pytest.mark.parametrize(("universe", "valid"), [
    ("AAPL MSFT", True), (["AAPL", {"MSFT": {"conid": 272093}}], True), ({"AAPL": None, "MSFT": 272093}, True),
    ({"AAPL": {"conid": 265598}}, True), ([], False), (5, False), ({"AAPL": {"bogus": 1}}, False),
])
def test_every_universe_form_the_loader_takes_is_valid_in_the_schema(universe: object, valid: bool) -> None:
    schema = json.loads((ROOT / "schemas" / "plan.schema.json").read_text())
    doc = {"name": "x", "strategy": "strategies/x.py", "universe": universe, "data_source": "samples", "calendar": "XNYS",
           "backtest_start": "2012-01-03", "run_at": "15:45", "broker": "manual", "cash": 10000}
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]
    assert (errors == []) is valid, errors
