"""The Lambda handler's own decisions that need no AWS: where the config is, and what an
unreadable record does to the batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promoter import handler, settings
from promoter.model.config import ConfigError
from tests.fixtures import EVENTS_DIR
from tests.lambda_events import FakeLambdaContext


@pytest.fixture
def staged_config(tmp_path, monkeypatch):
    path = tmp_path / settings.STAGED_CONFIG_FILE
    path.write_text(
        json.dumps(
            {"rules": [{"name": "r", "source": {"repository": "ab"}, "targets": [{"repository": "cd"}]}]}
        )
    )
    monkeypatch.setenv(settings.CONFIG_PATH_ENV, str(path))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unit")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unit")
    # Nothing in these tests may reach AWS: point every client at a closed port.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    handler.runtime.cache_clear()
    yield path
    handler.runtime.cache_clear()


def test_config_path_defaults_to_the_staged_json_beside_the_package(monkeypatch):
    monkeypatch.delenv(settings.CONFIG_PATH_ENV, raising=False)
    assert handler.config_path() == Path(handler.__file__).parent / settings.STAGED_CONFIG_FILE


def test_config_path_follows_the_environment(staged_config):
    assert handler.config_path() == staged_config
    assert handler.runtime().config.rules[0].name == "r"


def sqs_records(*bodies: str) -> dict:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": "h",
                "body": b,
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q",
                "awsRegion": "us-east-1",
            }
            for i, b in enumerate(bodies)
        ]
    }


def test_messages_that_are_not_events_are_failed_for_the_dlq_and_counted(staged_config, capsys):
    response = handler.handle_queue(sqs_records("not json", '{"id": "x"}'), FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf and emf[-1]["InvalidEvents"] == [1.0, 1.0]


def test_events_that_ask_for_nothing_succeed_without_touching_aws(staged_config, capsys):
    samples = EVENTS_DIR
    bodies = [
        (samples / name).read_text()
        for name in ("ecr-delete.json", "ecr-image-scan.json", "ecr-push-untagged.json", "ecr-push.json")
    ]
    assert handler.handle_queue(sqs_records(*bodies), FakeLambdaContext()) == {"batchItemFailures": []}
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf[-1]["EventsIgnored"] == [1.0] * 4


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_broken_staged_config_stops_the_cold_start(staged_config):
    staged_config.write_text('{"rules": [{"name": "Bad"}]}')
    handler.runtime.cache_clear()
    with pytest.raises(ConfigError, match="name must be"):
        handler.handle_queue(sqs_records("{}"), FakeLambdaContext())


def test_the_lambda_package_does_not_import_yaml_at_module_level():
    package = Path(handler.__file__).parent
    for module in package.glob("*.py"):
        top_level = [line for line in module.read_text().splitlines() if line.startswith(("import", "from"))]
        assert not [line for line in top_level if "yaml" in line], module.name


def test_an_event_with_invalid_detail_is_counted_but_not_redelivered(staged_config, capsys):
    request = {
        "id": "r1",
        "source": settings.REQUEST_EVENT_SOURCE,
        "detail-type": settings.REQUEST_DETAIL_TYPE,
        "detail": {"image-tag": "v1"},
    }  # no repository-name

    response = handler.handle_queue(sqs_records(json.dumps(request)), FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf[-1]["InvalidEvents"] == [1.0]


def test_invocations_side_by_side_each_answer_for_their_own_records(staged_config):
    """The local event source mapping (and a burst) run invocations in threads of one process: a
    failed record must be reported by its own invocation, never lost into another's answer."""
    from concurrent.futures import ThreadPoolExecutor

    samples = EVENTS_DIR
    ignored = (samples / "ecr-delete.json").read_text()

    def invoke(i: int) -> tuple[int, dict]:
        batch = sqs_records(*([ignored] * 20 + ["not json"]))
        for record in batch["Records"]:
            record["messageId"] = f"{i}-{record['messageId']}"
        return i, handler.handle_queue(batch, FakeLambdaContext())

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(invoke, range(32)))

    for i, response in answers:
        assert response == {"batchItemFailures": [{"itemIdentifier": f"{i}-m20"}]}, i
