"""`knnvocab token …` on SQLite and Postgres: the secret alone on the last line (or in
--json), a table without secrets, revoke, and one-line errors."""

from __future__ import annotations

import json

from click.testing import Result

from knnvocab.tokens import PREFIX
from tests.conftest import Run


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def refused(result: Result, *parts: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
    for part in parts:
        assert part in line, line


def test_create_prints_the_token_last(cli: Run) -> None:
    ok(cli("domain", "create", "shop"))
    result = ok(cli("token", "create", "shop", "--scope", "query", "--expires", "7"))
    lines = result.stdout.splitlines()
    secret = lines[-1]
    assert secret.startswith(PREFIX) and secret.strip() == secret and " " not in secret
    assert "shown only once" in result.output
    assert "shop-query-" in result.stdout and "scope query" in result.stdout
    assert secret not in "\n".join(lines[:-1])
    listed = ok(cli("token", "list"))
    assert secret not in listed.output and secret[len(PREFIX) :][:8] not in listed.output
    assert "shop" in listed.stdout and "active" in listed.stdout


def test_create_json(cli: Run) -> None:
    ok(cli("domain", "create", "shop"))
    data = json.loads(ok(cli("token", "create", "shop", "--scope", "write", "--json")).stdout)
    assert set(data) == {"id", "name", "domain", "scope", "expires", "token"}
    assert data["domain"] == "shop" and data["scope"] == "write" and data["expires"] is None
    assert data["token"].startswith(PREFIX)
    args = ("token", "create", "--all-domains", "--scope", "admin", "--name", "ops", "--json")
    deployment = json.loads(ok(cli(*args)).stdout)
    assert deployment["domain"] is None and deployment["name"] == "ops"
    listed = json.loads(ok(cli("token", "list", "--json")).stdout)
    assert [(t["name"], t["domain"], t["state"]) for t in listed] == [
        (data["name"], "shop", "active"),
        ("ops", None, "active"),
    ]
    assert all("token" not in t for t in listed)


def test_list_and_revoke(cli: Run) -> None:
    ok(cli("domain", "create", "shop"))
    ok(cli("token", "create", "shop", "--scope", "query", "--name", "reader"))
    ok(cli("token", "create", "--all-domains", "--scope", "admin", "--name", "ops"))
    assert "revoked token reader" in ok(cli("token", "revoke", "reader")).stdout
    table = ok(cli("token", "list")).stdout
    assert "(all" in table and "revoked" in table and "active" in table
    states = json.loads(ok(cli("token", "list", "--json")).stdout)
    assert [(t["name"], t["state"], t["revoked"] is None) for t in states] == [
        ("reader", "revoked", False),
        ("ops", "active", True),
    ]
    only = ok(cli("token", "list", "shop")).stdout
    assert "reader" in only and "ops" not in only
    refused(cli("token", "revoke", "reader"), "token 'reader' was already revoked")
    refused(cli("token", "revoke", "nobody"), "no token has the id or name 'nobody'")


def test_errors_are_one_line(cli: Run) -> None:
    ok(cli("domain", "create", "shop"))
    refused(cli("token", "create", "--scope", "query"), "exactly one of DOMAIN and --all-domains")
    refused(
        cli("token", "create", "shop", "--all-domains", "--scope", "query"),
        "exactly one of DOMAIN and --all-domains",
    )
    refused(cli("token", "create", "shop", "--scope", "root"), "query, write, admin")
    refused(cli("token", "create", "nope", "--scope", "query"), "domain 'nope' does not exist")
    refused(cli("token", "create", "shop", "--scope", "query", "--expires", "0"), "days")
    ok(cli("token", "create", "shop", "--scope", "query", "--name", "x"))
    refused(cli("token", "create", "shop", "--scope", "query", "--name", "x"), "'x' already")
    assert "no tokens" not in ok(cli("token", "list")).stdout
