"""Whole repositories (rewriter/repository.py): a TF Serving base path converted version by version,
one refusal not stopping the others, OUT holding only complete versions; models.config; shards."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, fixture_dir, run_cli
from rewriter.errors import BadInput
from rewriter.repository import discover, in_shard, is_repository, parse_shard

REFUSED = ROOT / "golden" / "rules" / "conv_pool_refused" / "saved_model"  # no exact older form


def _serving_base(root: Path) -> Path:
    """3 models x 2 versions, beta/2 refused; version 10 sorts after 3 (numbers, not text)."""
    layout = {
        "alpha/1": fixture_dir("int_output"), "alpha/2": fixture_dir("string_input"),
        "beta/1": fixture_dir("tf_module"), "beta/2": REFUSED,
        "gamma/3": fixture_dir("int_output"), "gamma/10": fixture_dir("string_input"),
    }
    for key, source in layout.items():
        shutil.copytree(source, root / key)
    (root / "README.txt").write_text("not a model")  # TF Serving ignores such files; so do we
    (root / "alpha" / "notes").mkdir()  # a non-numeric folder is not a version
    return root


def test_base_path_with_one_refused_version(tmp_path: Path) -> None:
    base = _serving_base(tmp_path / "models")
    out, report_path = tmp_path / "out", tmp_path / "report.json"
    result = run_cli(base, out, "--to", "2.3", "--jobs", "2", "--report", report_path)
    assert result.code == 1, result.stderr  # the worst code: a refusal
    keys = ["alpha/1", "alpha/2", "beta/1", "beta/2", "gamma/3", "gamma/10"]
    table = [line.split()[:3] for line in result.stdout.splitlines()[1:7]]
    assert [f"{m}/{v}" for m, v, _ in table] == keys
    assert [status for _, _, status in table] == ["converted"] * 3 + ["refused"] + ["converted"] * 2
    assert "5 of 6 version(s) converted" in result.stdout

    report = json.loads(report_path.read_text())
    assert report["exit_code"] == 1 and report["versions_in_repository"] == 6
    entries = {entry["key"]: entry for entry in report["versions"]}
    assert list(entries) == keys
    refused = entries.pop("beta/2")
    assert refused["exit_code"] == 1 and refused["output"] is None and refused["report"]["refusals"]
    for key, entry in entries.items():
        assert entry["exit_code"] == 0, entry
        assert entry["output"] == str(out / key) == entry["report"]["output"]
        parity = entry["report"]["parity"]
        assert parity["ok"] and parity["outputs"], key  # proven in the real TF 2.3.4 runtime

    # OUT holds the five versions, each whole, and nothing else (no staging, no refused version).
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    expected = sorted(
        f"{key}/{p.relative_to(base / key)}" for key in entries for p in (base / key).rglob("*")
        if p.is_file() and p.name != "fingerprint.pb")  # dropped for targets before 2.12
    assert found == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "out", "report.json"]


def test_models_config_follows_version_policy(tmp_path: Path) -> None:
    for key in ("a/1", "a/2", "a/3", "b/7", "b/8", "c/1", "c/2"):
        shutil.copytree(fixture_dir("int_output"), tmp_path / "repo" / key)
    config = tmp_path / "models.config"
    config.write_text("""
model_config_list {
  config { name: 'first' base_path: 'repo/a' model_platform: 'tensorflow'
           model_version_policy { specific { versions: 1 versions: 3 } }
           version_labels { key: 'stable' value: 1 } }
  config { name: "second" base_path: "%s" model_version_policy { all {} } }
  config { name: "third" base_path: "repo/c" }
}
""" % (tmp_path / "repo" / "b"))
    assert is_repository(config)
    assert [v.key for v in discover(config)] == ["first/1", "first/3", "second/7", "second/8", "third/2"]
    config.write_text("model_config_list { config { name: 'x' base_path: 'repo/a' "
                      "model_version_policy { specific { versions: 9 } } } }")
    with pytest.raises(BadInput, match=r"version\(s\) \[9\]"):
        discover(config)
    config.write_text("model_config_list { config { name: 'x' ")
    with pytest.raises(BadInput, match="not a text-format ModelServerConfig"):
        discover(config)


def test_layouts_and_shards(tmp_path: Path) -> None:
    assert not is_repository(fixture_dir("int_output"))  # one SavedModel: the plain convert
    folder = tmp_path / "folder"
    for name in ("m1", "m2"):
        shutil.copytree(fixture_dir("int_output"), folder / name)
    assert [v.key for v in discover(folder)] == ["m1", "m2"]
    one_model = tmp_path / "one"
    for version in ("5", "12"):
        shutil.copytree(fixture_dir("int_output"), one_model / version)
    assert [v.key for v in discover(one_model)] == ["5", "12"]

    for version in range(40):
        shutil.copytree(fixture_dir("int_output"), tmp_path / "many" / f"m{version % 7}" / str(version))
    versions = discover(tmp_path / "many")
    shards = [[v.key for v in versions if in_shard(v, i, 3)] for i in range(3)]
    assert sorted(sum(shards, [])) == sorted(v.key for v in versions)  # disjoint and complete
    assert all(shards)
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(BadInput):
            parse_shard(bad)


def test_shard_of_one_saved_model_is_bad_input(tmp_path: Path) -> None:
    result = run_cli(fixture_dir("int_output"), tmp_path / "o", "--to", "2.3", "--shard", "0/2")
    assert result.code == 2 and "--shard needs a repository" in result.stderr


def test_models_config_through_the_cli(tmp_path: Path) -> None:
    """OUT/<name>/<version> for the version the policy serves (latest by default); an existing
    version is left alone (exit 2 for it) unless --force."""
    for version in ("1", "2"):
        shutil.copytree(fixture_dir("int_output"), tmp_path / "store" / "m" / version)
    config = tmp_path / "serving.conf"
    config.write_text("model_config_list { config { name: 'served' base_path: 'store/m' "
                      "model_platform: 'tensorflow' } }\n")
    out, report_path = tmp_path / "out", tmp_path / "r.json"
    result = run_cli(config, out, "--to", "2.3", "--no-verify", "--report", report_path)
    assert result.code == 0, result.stderr
    assert sorted(str(p.relative_to(out)) for p in out.iterdir()) == ["served"]
    assert sorted(p.name for p in (out / "served").iterdir()) == ["2"]
    written = (out / "served" / "2" / "saved_model.pb").read_bytes()

    again = run_cli(config, out, "--to", "2.3", "--no-verify", "--report", report_path)
    assert again.code == 2
    entry = json.loads(report_path.read_text())["versions"][0]
    assert entry["key"] == "served/2" and "exists" in entry["error"]
    assert (out / "served" / "2" / "saved_model.pb").read_bytes() == written
    assert run_cli(config, out, "--to", "2.3", "--no-verify", "--force").code == 0
