"""docs/prometheus-alerts.yml is a Prometheus rule file that only names series /metrics
serves (promtool is not installed here: the shape is checked instead), and
docs/metrics.md documents every series a scrape serves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dashboard.probes.metrics import LayerCollector, render
from tests.dashboard.test_metrics import FakeQueueState, tally

DOCS = Path(__file__).resolve().parents[2] / "docs"
DURATION = re.compile(r"^\d+[smhdwy]$")
SERIES = re.compile(r"\btasklayer_[a-z_]+\b")


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text())
    assert set(document) == {"groups"}
    found = []
    names = set()
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        assert group["name"] not in names
        names.add(group["name"])
        found.extend(group["rules"])
    return found


def scraped_sample_names() -> set[str]:
    """Every sample and family name of a scrape with a finished job and a queue."""
    tally("app.tasks.one", 3)
    state = FakeQueueState("default", 3, 1.0, 1.0, 1.0, 1.0, 2.0, False, 1)
    text = render(LayerCollector(queue_states=lambda: [state])).decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    } | {family.name for family in text_string_to_metric_families(text)}


def test_the_alert_rules_are_well_formed() -> None:
    found = rules()
    assert len(found) >= 10
    for rule in found:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
        assert isinstance(rule["expr"], str)
        assert rule["expr"].strip()
        assert DURATION.match(rule.get("for", "0s"))
        for mapping in ("labels", "annotations"):
            assert all(isinstance(v, str) for v in rule.get(mapping, {}).values())
        # Balanced brackets: the cheapest PromQL syntax check without promtool.
        for opening, closing in ("()", "[]", "{}"):
            assert rule["expr"].count(opening) == rule["expr"].count(closing), rule["alert"]


def test_the_alerts_cover_what_the_issue_asks() -> None:
    exprs = " ".join(rule["expr"] for rule in rules())
    for series in (
        'tasklayer_jobs_finished_total{status="FAILURE"}',  # failure ratio
        "tasklayer_workers_online",
        "tasklayer_workers_lost",
        "tasklayer_queue_depth",
        "tasklayer_queue_drain_seconds",
        "tasklayer_dead_letters",
        "tasklayer_publish_failed",
    ):
        assert series in exprs


@pytest.mark.django_db
def test_every_series_the_alerts_use_is_served() -> None:
    served = scraped_sample_names()
    used = {name for rule in rules() for name in SERIES.findall(rule["expr"])}
    assert used <= served, used - served


@pytest.mark.django_db
def test_every_series_served_is_documented() -> None:
    documented = set(SERIES.findall((DOCS / "metrics.md").read_text()))
    served = scraped_sample_names()
    families = {
        name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for name in served
    }
    # A counter's family is named without the `_total` of its sample.
    missing = {n for n in families if n not in documented and f"{n}_total" not in documented}
    assert not missing, missing
