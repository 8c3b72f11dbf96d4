"""promoter.model.senders: which SQS SenderIds the handler and redrive refuse (issue 18)."""

from __future__ import annotations

import pytest

from promoter.model.senders import REDRIVEN_SENDER_ATTRIBUTE, delivery_note, record_sender, sender_refusal

ROOT = "123456789012"
ROLE_SESSION = "AROAEXAMPLEROLEID1234:ci-run-7"
SERVICE_OR_USER = "AIDAEXAMPLESERVICE123"


@pytest.mark.parametrize("sender", [ROOT, ROLE_SESSION])
def test_a_principal_of_an_account_is_refused(sender):
    assert sender_refusal(sender) == (
        f"sent by {sender} ({'the account root' if sender == ROOT else 'a role session'}), not by EventBridge"
    )


def test_an_id_of_the_services_form_is_taken_for_eventbridge_and_no_sender_is_not_checked():
    assert sender_refusal(SERVICE_OR_USER) is None
    assert sender_refusal(None) is None and sender_refusal("") is None


def test_a_redriven_message_is_judged_by_its_first_sender():
    assert sender_refusal(ROLE_SESSION, SERVICE_OR_USER) is None
    assert "first sent by 123456789012 (the account root)" in (sender_refusal(ROLE_SESSION, ROOT) or "")
    assert "first sent by ? (nobody known)" in (sender_refusal(ROOT, "") or "")


def test_the_record_as_lambda_hands_it_over():
    record = {
        "attributes": {"SenderId": ROOT},
        "messageAttributes": {
            REDRIVEN_SENDER_ATTRIBUTE: {"stringValue": SERVICE_OR_USER, "dataType": "String"}
        },
    }
    assert record_sender(record) == (ROOT, SERVICE_OR_USER)
    assert record_sender({"attributes": {}, "messageAttributes": {}}) == (None, None)


def test_the_delivery_note_says_it_is_an_inference():
    assert (
        delivery_note(SERVICE_OR_USER)
        == f"delivered by EventBridge (inferred from SQS SenderId {SERVICE_OR_USER})"
    )
    assert delivery_note(ROLE_SESSION, SERVICE_OR_USER) == (
        f"redriven by {ROLE_SESSION} from a message delivered by EventBridge "
        f"(inferred from its SQS SenderId {SERVICE_OR_USER})"
    )
    assert delivery_note(None) == ""
