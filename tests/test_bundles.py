"""Bundles on the command line (docs/bundles.md): export, apply, dry runs, prune, `${env:…}`,
YAML and JSON, and the JSON Schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from app.domain.bundle_format import bundle_json_schema
from tests.helpers.bundles import BundleCli, bundle, seed
from tests.helpers.keys import everything

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli(settings: Any, tmp_path: Path) -> BundleCli:
    return BundleCli(settings.database_url, tmp_path)


async def test_an_organisation_exported_applied_to_an_empty_one_exports_the_same(
    client, org, other_org, cli
):
    made = await seed(client, org)
    exported = json.loads(cli.export(org.org_id))
    assert [entry["ref"] for entry in exported["assistants"]] == ["support", "sales", made[2]["id"]]
    support = exported["assistants"][0]
    assert [i["integration_id"] for i in support["integrations"]] == ["internal", "whatsapp"]
    assert [a["name"] for a in support["actions"]] == ["Lookup", "Mail"]
    text = json.dumps(exported)
    assert "secret_key" not in text
    assert made[0]["id"] not in text
    assert '"id"' not in text
    plan = cli.apply(cli.write(json.dumps(exported)), other_org.org_id)
    assert plan["summary"] == {"create": 3, "update": 0, "unchanged": 0, "delete": 0}
    assert json.loads(cli.export(other_org.org_id)) == exported


async def test_yaml_round_trips_too_and_json_and_yaml_say_the_same(client, org, make_org, cli):
    await seed(client, org)
    as_yaml = cli.export(org.org_id, "--format", "yaml")
    assert yaml.safe_load(as_yaml) == json.loads(cli.export(org.org_id))
    target = await make_org("Yaml")
    plan = cli.apply(cli.write(as_yaml, "bundle.yaml"), target.org_id)
    assert plan["summary"]["create"] == 3
    assert cli.export(target.org_id, "--format", "yaml") == as_yaml


async def test_export_with_refs_names_only_those_and_an_unknown_ref_fails(client, org, cli):
    await seed(client, org)
    only = json.loads(cli.export(org.org_id, "--ref", "sales"))
    assert [entry["ref"] for entry in only["assistants"]] == ["sales"]
    done = cli.run("export", org.org_id, "--ref", "nope")
    assert done.returncode != 0
    assert "nope" in done.stderr


async def test_applying_the_same_bundle_twice_writes_nothing_the_second_time(client, org, db, cli):
    await seed(client, org)
    path = cli.write(cli.export(org.org_id))
    before = await everything(db)
    plan = cli.apply(path, org.org_id)
    assert plan["summary"] == {"create": 0, "update": 0, "unchanged": 3, "delete": 0}
    assert all(step["changes"] == [] for step in plan["assistants"])
    assert await everything(db) == before


async def test_a_change_is_planned_in_the_revisions_format_and_written_as_a_bundle_revision(
    client, org, cli
):
    made = await seed(client, org)
    exported = json.loads(cli.export(org.org_id))
    exported["assistants"][0]["config"]["tts"]["voice_id"] = "v2"
    exported["assistants"][0]["integrations"][1]["config"] = {"phone": "+44"}
    exported["assistants"][0]["actions"].reverse()
    path = cli.write(json.dumps(exported))
    plan = cli.apply(path, org.org_id)
    assert plan["summary"] == {"create": 0, "update": 1, "unchanged": 2, "delete": 0}
    assert plan["assistants"][0]["changes"] == [
        {"path": "config.tts.voice_id", "from": "v1", "to": "v2"},
        {"path": "integrations.whatsapp.config", "from": {"phone": "+351"}, "to": {"phone": "+44"}},
        {"path": "actions.order", "from": ["Lookup", "Mail"], "to": ["Mail", "Lookup"]},
    ]
    url = f"/orgs/{org.org_id}/assistants/{made[0]['id']}"
    read = (await client.get(url, headers=org.headers)).json()
    assert read["version"] == 2
    assert [a["name"] for a in read["actions"]] == ["Mail", "Lookup"]
    [revision, *_] = (await client.get(f"{url}/revisions", headers=org.headers)).json()
    assert revision["source"] == "bundle"
    assert revision["actor_key_id"] is None
    assert revision["changes"] == [{"path": "config.tts.voice_id", "from": "v1", "to": "v2"}]
    again = cli.apply(path, org.org_id)
    assert again["summary"]["unchanged"] == 3


async def test_a_dry_run_plans_and_writes_nothing(client, org, other_org, db, cli):
    await seed(client, org)
    exported = json.loads(cli.export(org.org_id))
    exported["assistants"][1]["name"] = "Sales team"
    path = cli.write(json.dumps(exported))
    before = await everything(db)
    plan = cli.apply(path, org.org_id, "--dry-run")
    assert plan["applied"] is False
    assert plan["assistants"][1]["changes"] == [
        {"path": "name", "from": "Sales", "to": "Sales team"}
    ]
    created = cli.apply(path, other_org.org_id, "--dry-run", "--prune")
    assert created["summary"] == {"create": 3, "update": 0, "unchanged": 0, "delete": 0}
    assert created["assistants"][0]["id"] is None
    assert await everything(db) == before


async def test_prune_deletes_the_assistants_with_a_ref_not_in_the_bundle(client, org, cli):
    made = await seed(client, org)
    exported = json.loads(cli.export(org.org_id))
    exported["assistants"] = [exported["assistants"][0]]  # support only
    path = cli.write(json.dumps(exported))
    kept = cli.apply(path, org.org_id)
    assert kept["summary"] == {"create": 0, "update": 0, "unchanged": 1, "delete": 0}
    pruned = cli.apply(path, org.org_id, "--prune")
    assert pruned["summary"] == {"create": 0, "update": 0, "unchanged": 1, "delete": 1}
    assert pruned["assistants"][1] == {
        "ref": "sales",
        "action": "delete",
        "id": made[1]["id"],
        "changes": [{"path": "deleted", "from": False, "to": True}],
    }
    base = f"/orgs/{org.org_id}/assistants"
    assert (await client.get(f"{base}/{made[1]['id']}", headers=org.headers)).status_code == 404
    # an assistant without a ref is never pruned
    assert (await client.get(f"{base}/{made[2]['id']}", headers=org.headers)).status_code == 200


async def test_bad_input_names_the_entry_and_field_and_applies_nothing(client, org, db, cli):
    await seed(client, org)
    good = {"ref": "new-one", "name": "New"}
    bad = {"ref": "broken", "name": "Broken", "config": {"language": "not a language"}}
    path = cli.write(json.dumps(bundle(good, bad)))
    before = await everything(db)
    done = cli.run("apply", str(path), "--org", org.org_id, "--prune")
    assert done.returncode == 1
    assert "VALIDATION_FAILED" in done.stderr
    assert "assistants.1.config.language: entry 1 (ref 'broken')" in done.stderr
    assert await everything(db) == before


@pytest.mark.parametrize(
    ("document", "named"),
    [
        (bundle({"ref": "a", "name": "A"}, {"ref": "a", "name": "B"}), "assistants.1.ref"),
        (bundle({"ref": "Not OK", "name": "A"}), "assistants.0.ref"),
        (bundle({"ref": "a", "name": "A", "id": "x"}), "assistants.0.id"),
        (bundle({"ref": "a", "name": "A", "secret_key": "x"}), "assistants.0.secret_key"),
        (bundle({"ref": "a", "name": "A", "actions": [{"name": "x"}]}), "assistants.0.actions.0"),
        ({"kind": "other", "version": 1, "assistants": []}, "kind"),
        ({"kind": "assistants-api/bundle", "version": 2, "assistants": []}, "version"),
        ({"kind": "assistants-api/bundle", "version": 1}, "assistants"),
    ],
)
async def test_each_kind_of_bad_input_is_named(org, cli, document, named):
    done = cli.run("apply", str(cli.write(json.dumps(document))), "--org", org.org_id)
    assert done.returncode == 1
    assert f"  {named}" in done.stderr


async def test_env_references_are_substituted_on_the_command_line(client, org, cli):
    entry = {"ref": "env", "name": "From env", "config": {"instructions": "Key: ${env:BUNDLE_T}"}}
    path = cli.write(json.dumps(bundle(entry)))
    plan = cli.apply(path, org.org_id, BUNDLE_T="s3cret")
    url = f"/orgs/{org.org_id}/assistants/{plan['assistants'][0]['id']}"
    read = (await client.get(url, headers=org.headers)).json()
    assert read["config"]["instructions"] == "Key: s3cret"
    # in a thread: the app's own write after the GET (the key's last use) may still be going on,
    # and it needs this loop to commit
    missing = await asyncio.to_thread(cli.run, "apply", str(path), "--org", org.org_id)
    assert missing.returncode == 1
    assert "BUNDLE_T" in missing.stderr
    assert "assistants.0.config.instructions" in missing.stderr


async def test_standard_input_and_files_without_a_known_suffix_are_read_too(org, cli):
    as_json = json.dumps(bundle({"ref": "in", "name": "From stdin"}))
    done = cli.run("apply", "-", "--org", org.org_id, "--dry-run", stdin=as_json)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["create"] == 1
    as_yaml = yaml.safe_dump(bundle({"ref": "in", "name": "From a file"}))
    plan = cli.apply(cli.write(as_yaml, "assistants.bundle"), org.org_id, "--dry-run")
    assert plan["summary"]["create"] == 1


async def test_files_that_are_not_bundles_are_refused_cleanly(org, cli):
    for name, text in (
        ("b.yaml", "a: [unclosed"),
        ("b.json", "{nope"),
        ("c.yaml", "!!python/object:os.system {}"),
    ):
        done = cli.run("apply", str(cli.write(text, name)), "--org", org.org_id)
        assert done.returncode == 1, name
        assert done.stderr.startswith("error: "), done.stderr
    big = cli.write(" " * (5 * 1024 * 1024 + 1), "big.json")
    done = cli.run("apply", str(big), "--org", org.org_id)
    assert done.returncode == 1
    assert "5 MiB" in done.stderr


async def test_the_json_schema_is_the_committed_file_and_validates_real_bundles(client, org, cli):
    committed = json.loads((ROOT / "docs" / "bundle.schema.json").read_text())
    assert committed == bundle_json_schema()
    served = await client.get("/schemas/bundle.json")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/schema+json")
    assert served.json() == committed
    await seed(client, org)
    validator = jsonschema.Draft202012Validator(committed)
    validator.validate(json.loads(cli.export(org.org_id)))
    validator.validate(yaml.safe_load(cli.export(org.org_id, "--format", "yaml")))
    errors = list(validator.iter_errors(bundle({"ref": "Bad!", "name": "", "extra": 1})))
    assert len(errors) >= 1
