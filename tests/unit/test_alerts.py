"""The chart's alerts (templates/prometheusrule.yaml), tested like code.

The chart is the only copy of the rules: it is rendered with `helm template`, its rule groups
are written to a file, and promtool (built from its Go module by hack/build-tools.sh) checks
them (`promtool check rules`) and runs tests/unit/data/alerts_test.yaml against them (`promtool
test rules`): for every alert the input series, a time it must fire and a time it must not.
Each alert's runbook_url points at its section of docs/operations.md, which must exist and say
what the alert means, the first kubectl command to run and the usual fixes.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_chart_render import needs_helm, of_kind, render, render_fails, tools_dir

from whatsapp_testkit.scrape import documented

ROOT = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).parent / "data" / "alerts_test.yaml"
RUNBOOK = ROOT / "docs" / "operations.md"
RUNBOOK_URL = "https://runbooks.test/operations.md"  # what alerts_test.yaml expects
PROMTOOL = tools_dir() / "promtool"
needs_promtool = pytest.mark.skipif(
    not os.access(PROMTOOL, os.X_OK),
    reason=f"promtool not built ({PROMTOOL} missing): run hack/build-tools.sh (make tools)",
)
# The issue's list, one alert each: a new alert must be added here, and so get its tests.
ALERTS = {
    "WhatsAppTokenRenewalOverdue",  # expires within the renewal window, no renewal succeeded
    "WhatsAppTokenRefreshFailing",
    "WhatsAppTenantNotReady",  # for 15 minutes
    "WhatsAppSendingBlocked",
    "WhatsAppDeadLetterRateHigh",  # by reason
    "WhatsAppMetaThrottling",  # 130429 or 131056
    "WhatsAppWorkersConfigStale",  # workers not running the current config
    "WhatsAppOperatorDown",
    "WhatsAppOperatorNoLeader",
    "WhatsAppPostgreSQLUnavailable",
    "WhatsAppWebhookSignatureFailures",
}
ENABLED = ("prometheusRule.enabled=true", f"prometheusRule.runbookUrl={RUNBOOK_URL}")


def rule_docs(*values: str) -> list[dict[str, Any]]:
    return of_kind(render(*values), "PrometheusRule")


@pytest.fixture(scope="module")
def groups() -> list[dict[str, Any]]:
    (rule,) = rule_docs(*ENABLED)
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def alerts_of(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMTOOL), *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


@pytest.fixture
def rules_file(groups: list[dict[str, Any]], tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_sections() -> dict[str, str]:
    """The `### ` sections of docs/operations.md's "## Alerts" by their anchor, with their text."""
    text = RUNBOOK.read_text(encoding="utf-8")
    alerts = re.split(r"^## ", text.split("\n## Alerts\n", 1)[1], flags=re.M)[0]
    parts = re.split(r"^### (.+)$", alerts, flags=re.M)
    return {
        github_anchor(heading): body for heading, body in zip(parts[1::2], parts[2::2], strict=True)
    }


@needs_helm
def test_the_rule_renders_only_when_enabled() -> None:
    assert rule_docs() == []
    assert (
        rule_docs("prometheusRule.enabled=false", f"prometheusRule.runbookUrl={RUNBOOK_URL}") == []
    )
    (rule,) = rule_docs(*ENABLED, "prometheusRule.labels.release=kube-prometheus-stack")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == "ops"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


@needs_helm
def test_without_a_runbook_url_or_chart_home_the_rule_does_not_render() -> None:
    assert "prometheusRule.runbookUrl is required" in render_fails("prometheusRule.enabled=true")


@needs_helm
def test_every_alert_of_the_issue_is_there_with_severity_and_annotations(
    groups: list[dict[str, Any]],
) -> None:
    alerts = alerts_of(groups)
    assert set(alerts) == ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, name
        assert rule["annotations"]["runbook_url"] == f"{RUNBOOK_URL}#{name.lower()}"


@needs_helm
def test_values_reach_the_rules() -> None:
    (rule,) = rule_docs(
        *ENABLED,
        "prometheusRule.operatorJob=ops/whatsapp",
        "prometheusRule.ruleLabels.team=platform",
        "prometheusRule.alerts.deadLetterRate.threshold=2",
        "prometheusRule.alerts.deadLetterRate.window=30m",
        "prometheusRule.alerts.tenantNotReady.for=1h",
        "prometheusRule.alerts.sendingBlocked.severity=page",
    )
    alerts = alerts_of(rule["spec"]["groups"])
    assert 'up{job="ops/whatsapp"} == 1' in alerts["WhatsAppOperatorDown"]["expr"]
    assert 'whatsapp_tenant_ready{job="ops/whatsapp"}' in alerts["WhatsAppTenantNotReady"]["expr"]
    dead = alerts["WhatsAppDeadLetterRateHigh"]["expr"]
    assert "[30m]" in dead
    assert dead.endswith("> 2")
    assert alerts["WhatsAppTenantNotReady"]["for"] == "1h"
    assert alerts["WhatsAppSendingBlocked"]["labels"]["severity"] == "page"
    assert all(a["labels"]["team"] == "platform" for a in alerts.values())


@needs_helm
def test_the_values_schema_refuses_an_unknown_alert_key() -> None:
    stderr = render_fails(*ENABLED, "prometheusRule.alerts.tenantNotReady.threshold=3")
    assert "threshold" in stderr


@needs_helm
@needs_promtool
def test_promtool_checks_the_rules(rules_file: Path) -> None:
    proc = promtool(
        "check", "rules", "--lint=all", "--lint-fatal", str(rules_file), cwd=rules_file.parent
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in proc.stdout


@needs_helm
@needs_promtool
def test_promtool_unit_tests_pass(rules_file: Path) -> None:
    tests = yaml.safe_load(TESTS.read_text())
    tests["rule_files"] = [rules_file.name]
    path = rules_file.parent / "alerts_test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    proc = promtool("test", "rules", path.name, cwd=rules_file.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@needs_helm
@needs_promtool
def test_promtool_fails_a_wrong_expectation(rules_file: Path) -> None:
    """The unit tests can fail: the same tests against rules with a 1-hour tenantNotReady
    (the test expects it firing after 16 minutes) do."""
    tests = yaml.safe_load(TESTS.read_text())
    (rule,) = rule_docs(*ENABLED, "prometheusRule.alerts.tenantNotReady.for=1h")
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    tests["rule_files"] = [rules_file.name]
    path = rules_file.parent / "alerts_test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    proc = promtool("test", "rules", path.name, cwd=rules_file.parent)
    assert proc.returncode != 0
    assert "WhatsAppTenantNotReady" in proc.stdout + proc.stderr


def test_every_alert_has_a_test_that_fires_and_one_that_does_not() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for group in yaml.safe_load(TESTS.read_text())["tests"]:
        for case in group.get("alert_rule_test", []):
            (fires if case["exp_alerts"] else silent).add(case["alertname"])
            for alert in case["exp_alerts"]:
                assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}
                assert "severity" in alert["exp_labels"]
    assert fires == ALERTS
    assert silent == ALERTS


@needs_helm
def test_every_alert_has_a_runbook_section(groups: list[dict[str, Any]]) -> None:
    sections = runbook_sections()
    for name, rule in alerts_of(groups).items():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in sections, f"{name}: no '### {name}' section in docs/operations.md"
        body = sections[anchor]
        for part in ("**What it means.**", "**First command.**", "**Usual fixes.**"):
            assert part in body, f"{name}: its runbook section has no {part}"
        first = body.split("**First command.**", 1)[1]
        command = re.search(r"```(?:bash|console)\n(.+?)```", first, flags=re.S)
        assert command is not None, f"{name}: no command after **First command.**"
        assert "kubectl " in command.group(1), name
    # and no runbook section for an alert that is not there
    assert set(sections) == {name.lower() for name in ALERTS}


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("WhatsAppOperatorDown", "whatsappoperatordown"),
        ("Token expiry: what now?", "token-expiry-what-now"),
        ("a_b c-d", "a_b-c-d"),
    ],
)
def test_github_anchor(heading: str, anchor: str) -> None:
    assert github_anchor(heading) == anchor


# Labels Prometheus adds to every scraped series (target labels), beside a metric's own.
TARGET_LABELS = {"job", "namespace", "pod", "instance", "service", "endpoint", "container"}
_SELECTOR = re.compile(r"\b(whatsapp_[a-z0-9_]+|up)\b\s*(?:\{([^}]*)\})?")
_MATCHER = re.compile(r"([a-z_][a-z0-9_]*)\s*(?:=~|!~|!=|=)")


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """Each `metric{label="..."}` of a PromQL expression: the metric and the labels it matches."""
    return [(m.group(1), set(_MATCHER.findall(m.group(2) or ""))) for m in _SELECTOR.finditer(expr)]


def test_selectors() -> None:
    expr = (
        'sum by (x) (rate(whatsapp_a_total{code=~"1|2", job="j"}[5m])) and whatsapp_b '
        'unless up{job!="k"} > time()'
    )
    assert selectors(expr) == [
        ("whatsapp_a_total", {"code", "job"}),
        ("whatsapp_b", set()),
        ("up", {"job"}),
    ]


@needs_helm
def test_the_alerts_use_only_documented_metrics_and_labels(groups: list[dict[str, Any]]) -> None:
    """Every metric an alert reads is in docs/metrics.md's table (which the live scrape test
    keeps true), and matched only by labels the table gives it (or a target label)."""
    table = documented()
    for name, rule in alerts_of(groups).items():
        used = selectors(rule["expr"])
        assert used, name
        for metric, labels in used:
            if metric == "up":  # Prometheus's own
                continue
            assert metric in table, f"{name}: {metric} is not in docs/metrics.md"
            unknown = labels - set(table[metric].labels) - TARGET_LABELS
            assert not unknown, f"{name}: {metric} has no label {unknown}"
