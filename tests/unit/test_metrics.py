"""What the promoter counts: a duplicate delivery is absorbed, not counted as a second promotion."""

from __future__ import annotations

from aws_lambda_powertools import Metrics

from promoter.metrics import BLOBS_COPIED_METRIC, PROMOTED_METRIC, REPLAYED_METRIC, record_event_result
from promoter.model.outcomes import PROMOTED, ActionResult, CopyStats
from promoter.workflows.service import EventResult


def _result(replayed: bool) -> ActionResult:
    return ActionResult(
        rule="r", source_repository="a", source_tag="t", source_digest="sha256:" + "a" * 64,
        target_repository="b", target_tag="t", outcome=PROMOTED, target_digest="sha256:" + "a" * 64,
        stats=CopyStats(blobs_copied=3, bytes_copied=300, manifests_put=1), replayed=replayed,
    )


def _emitted(results: list[ActionResult]) -> dict:
    metrics = Metrics(namespace="Test", service="test")
    metrics.clear_metrics()
    record_event_result(metrics, EventResult("e-1", tuple(results)))
    emf = metrics.serialize_metric_set()
    metrics.clear_metrics()
    return {m["Name"]: sum(emf[m["Name"]]) for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def test_a_first_promotion_counts_as_promoted_with_its_copied_blobs():
    emitted = _emitted([_result(replayed=False)])
    assert emitted[PROMOTED_METRIC] == 1.0
    assert emitted[BLOBS_COPIED_METRIC] == 3.0
    assert REPLAYED_METRIC not in emitted


def test_a_replayed_promotion_counts_only_as_an_absorbed_duplicate():
    emitted = _emitted([_result(replayed=True)])
    assert emitted == {REPLAYED_METRIC: 1.0}
