"""The kubectl plugin's commands without a cluster: flags (kubectl's, before or after the
command), one-line errors, the test message, and the audit command's hand-over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from whatsapp_kubectl import cli, kube, send
from whatsapp_worker.producer import checked_key


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["status"], {"namespace": None, "context": None, "all_namespaces": False}),
        (["-n", "shop", "status"], {"namespace": "shop"}),
        (["status", "-n", "shop", "-o", "json"], {"namespace": "shop", "output": "json"}),
        (["--context", "a", "status", "--context", "b"], {"context": "b"}),
        (["status", "-A"], {"all_namespaces": True}),
        (["revalidate", "acme", "--timeout", "5"], {"tenant": "acme", "timeout": 5.0}),
        (["refresh", "acme", "--kubeconfig", "/k"], {"tenant": "acme", "kubeconfig": "/k"}),
        (["send", "acme", "--to", "+34600", "--text", "hi"], {"to": "+34600", "wait": 60.0}),
        (["send", "acme", "--to", "+1", "--text", "hi", "--wait", "5"], {"wait": 5.0}),
        (["send", "acme", "--to", "+1", "--text", "hi", "--no-wait"], {"wait": None}),
        (["check", "--operator-url", "http://x"], {"operator_url": "http://x"}),
        (
            ["audit", "verify", "--database-url", "postgresql://d"],
            {"database_url": "postgresql://d"},
        ),
    ],
)
def test_flags(argv: list[str], expected: dict[str, Any]) -> None:
    args = vars(cli.parser().parse_args(argv))
    assert {k: args[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (404, "Not Found", 'whatsapptenant "x": not found'),
        (403, "Forbidden", 'whatsapptenant "x": forbidden (403 Forbidden); check your RBAC'),
        (401, "Unauthorized", 'whatsapptenant "x": forbidden (401 Unauthorized); check your RBAC'),
        (500, "Internal", 'whatsapptenant "x": the API server answered 500 Internal'),
    ],
)
def test_api_errors_are_one_line(status: int, reason: str, expected: str) -> None:
    assert (
        str(kube.api_error(ApiException(status=status, reason=reason), 'whatsapptenant "x"'))
        == expected
    )


def test_no_cluster_is_one_line_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing"
    assert cli.main(["--kubeconfig", str(missing), "status"]) == 1
    assert capsys.readouterr().err == f"error: kubeconfig {missing} not found\n"


def test_an_unknown_context_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: a, context: {cluster: c, user: u, namespace: shop}}]\n"
    )
    assert kube.context_namespace(str(config), None) == "shop"
    assert cli.main(["--kubeconfig", str(config), "--context", "nope", "status"]) == 1
    assert capsys.readouterr().err == 'error: context "nope" not found in the kubeconfig\n'


def test_an_unreachable_api_server_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: a, context: {cluster: c, user: u}}]\n"
    )
    assert cli.main(["--kubeconfig", str(config), "status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the API server at http://127.0.0.1:9")
    assert err.count("\n") == 1


def test_outside_a_cluster_without_kubeconfig(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert cli.main(["status"]) == 1
    assert capsys.readouterr().err == (
        "error: no kubeconfig (give --kubeconfig or set KUBECONFIG) and not in a cluster\n"
    )


@pytest.mark.parametrize(
    ("kubeconfig", "env", "path", "use"),
    [
        ("/a", "/b", "/a", True),
        (None, "/b:/c", "/b", True),
        (None, "", None, False),  # HOME without ~/.kube/config: in-cluster
    ],
    ids=["--kubeconfig first", "then the first of $KUBECONFIG", "else in-cluster"],
)
def test_config_source(
    kubeconfig: str | None,
    env: str,
    path: str | None,
    use: bool,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text("")
    rooted = {"/a": f"{tmp_path}/a", "/b": f"{tmp_path}/b", "/c": f"{tmp_path}/c"}
    monkeypatch.setenv("KUBECONFIG", ":".join(rooted.get(e, e) for e in env.split(":")))
    monkeypatch.setenv("HOME", str(tmp_path))
    given = rooted.get(kubeconfig, kubeconfig) if kubeconfig else None
    assert kube.config_source(given, None) == (rooted.get(path, path) if path else None, use)


TENANT = {
    "metadata": {"name": "acme", "namespace": "shop"},
    "spec": {"tenantId": "t_acme", "phoneNumberId": "106540352242922", "senderPool": "p1"},
}


def test_the_test_message_is_the_seeds_format_and_passes_the_workers_checks() -> None:
    message = send.test_message(TENANT, "+34600000001", "hello", None)
    assert message["wabaPayload"] == {
        "to": "+34600000001",
        "type": "text",
        "text": {"body": "hello"},
    }
    assert message["metadata"]["tenantId"] == "t_acme"
    assert message["metadata"]["phoneNumberId"] == "106540352242922"
    assert checked_key(message) == message["metadata"]["messageId"]
    again = send.test_message(TENANT, "+34600000001", "hello", None)
    assert again["metadata"]["messageId"] != message["metadata"]["messageId"]  # not deduplicated
    assert send.test_message(TENANT, "+1", "x", "my-id")["metadata"]["messageId"] == "my-id"
    assert send.sender_pool(TENANT) == "p1"
    assert send.sender_pool({"spec": {}}) == "default"


def test_a_message_the_worker_would_refuse_is_not_published() -> None:
    message = send.test_message(TENANT, "not-a-number", "hello", None)
    with pytest.raises(kube.PluginError, match="the worker would refuse this message"):
        send.publish("amqp://127.0.0.1:9//", "p1", message)


def test_send_needs_a_broker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(cli.AMQP_ENV, raising=False)
    monkeypatch.setenv("KUBECONFIG", "/nonexistent")
    assert cli.main(["send", "acme", "--to", "+34600000001", "--text", "x"]) == 1
    assert "error: " in capsys.readouterr().err


def test_audit_verify_hands_over_to_whatsapp_audit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str]] = []

    def fake(argv: list[str]) -> int:
        seen.append(argv)
        return 1

    from whatsapp_operator.postgres import audit

    monkeypatch.setattr(audit, "main", fake)
    argv = ["audit", "verify", "--database-url", "postgresql://d", "--audit-key-file", "/k"]
    assert cli.main(argv) == 1
    assert cli.main(["audit", "verify"]) == 1
    assert seen == [
        ["verify", "--database-url", "postgresql://d", "--audit-key-file", "/k"],
        ["verify"],
    ]


def test_health_bodies() -> None:
    assert kube.parse_health(b'{"graph": {"state": "up"}}', "x") == {"graph": {"state": "up"}}
    for body in (b"<html>", b"[1]"):
        with pytest.raises(kube.PluginError, match="the health endpoint of x did not answer"):
            kube.parse_health(body, "x")
