"""The drain's decision after a failed publish call, as a pure function (no server, no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from socialbot.errors import (
    AmbiguousError,
    AuthError,
    DuplicateError,
    PermanentError,
    RateLimited,
    TransientError,
)
from socialbot.models import DeliveryStatus
from socialbot.publish import RetryPolicy, decide

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, backoff_between_runs=timedelta(minutes=2))


def run(exc: BaseException, *, idempotent: bool = False, may: bool = False, attempts: int = 1):
    return decide(
        exc,
        idempotent=idempotent,
        may_have_posted=may,
        attempts=attempts,
        policy=POLICY,
        now=NOW,
    )


def test_a_transient_error_waits_for_a_later_run_with_backoff():
    first = run(TransientError("503", network="x"), attempts=1)
    second = run(TransientError("503", network="x"), attempts=2)
    assert first.status is DeliveryStatus.PENDING and not first.uncertain
    assert first.next_attempt_at == NOW + timedelta(minutes=2)
    assert second.next_attempt_at == NOW + timedelta(minutes=4)
    assert not first.stop_network


def test_out_of_attempts_is_a_dead_letter():
    decision = run(TransientError("503", network="x"), attempts=3)
    assert decision.status is DeliveryStatus.FAILED
    assert decision.error is not None and decision.error.startswith("gave up after 3 attempts")


def test_a_rate_limit_holds_the_network_and_costs_no_attempt():
    until = NOW + timedelta(minutes=15)
    decision = run(RateLimited("429", network="x", retry_at=until))
    assert decision.status is DeliveryStatus.PENDING
    assert (decision.hold_until, decision.next_attempt_at) == (until, until)
    assert decision.stop_network and not decision.count_attempt


def test_refused_credentials_stop_the_network_and_cost_no_attempt():
    decision = run(AuthError("401", network="x"))
    assert decision.status is DeliveryStatus.PENDING
    assert decision.stop_network and not decision.count_attempt


@pytest.mark.parametrize(
    "exc",
    [
        TransientError("503", network="mastodon"),
        RateLimited("429", network="mastodon", retry_at=NOW + timedelta(minutes=1)),
        AuthError("401", network="mastodon"),
        PermanentError("422", network="mastodon"),
    ],
)
def test_after_a_possible_post_every_later_error_keeps_it_uncertain(exc: BaseException):
    """Finding 13: an accept-then-reset earlier in the run is never forgotten."""
    decision = run(exc, idempotent=True, may=True)
    assert decision.uncertain


def test_an_ambiguous_create_is_unknown_without_a_key_and_retried_with_one():
    without = run(AmbiguousError("reset", network="x"))
    with_key = run(AmbiguousError("reset", network="mastodon"), idempotent=True)
    assert (without.status, without.uncertain) == (DeliveryStatus.UNKNOWN, True)
    assert (with_key.status, with_key.uncertain) == (DeliveryStatus.PENDING, True)


def test_a_bug_in_an_adapter_is_treated_as_ambiguous():
    decision = run(KeyError("id"))
    assert decision.status is DeliveryStatus.UNKNOWN and decision.uncertain
    assert decision.error is not None and "may have been posted" in decision.error


def test_a_duplicate_is_posted_when_the_key_is_ours_or_an_attempt_may_have_posted():
    assert run(DuplicateError("dup", network="bluesky"), idempotent=True).status is (
        DeliveryStatus.POSTED
    )
    assert run(DuplicateError("dup", network="x"), may=True).status is DeliveryStatus.POSTED
    plain = run(DuplicateError("dup", network="x"))
    assert plain.status is DeliveryStatus.FAILED


def test_a_permanent_refusal_fails_and_a_length_refusal_says_to_approve_again():
    plain = run(PermanentError("the page does not exist", network="facebook"))
    length = run(PermanentError("Text character limit of 500 exceeded", network="mastodon"))
    assert plain.status is DeliveryStatus.FAILED and "approve" not in (plain.error or "")
    assert length.status is DeliveryStatus.FAILED and "approve it again" in (length.error or "")


def test_a_permanent_refusal_after_a_possible_post_without_a_key_needs_a_look():
    decision = run(PermanentError("422", network="x"), may=True)
    assert (decision.status, decision.uncertain) == (DeliveryStatus.UNKNOWN, True)
