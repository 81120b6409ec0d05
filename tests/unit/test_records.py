"""Record keys: one printed form, one reader of it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from talkcore.records import Kind, RecordKey


@given(st.sampled_from(list(Kind)), st.text(min_size=1).filter(lambda t: t.strip() == t))
def test_a_key_reads_back_from_its_printed_form(kind: Kind, record_id: str) -> None:
    key = RecordKey.of(kind, record_id)
    assert RecordKey.parse(str(key)) == key


def test_an_id_may_hold_colons() -> None:
    key = RecordKey.parse("zendesk:organization:a:b")
    assert key == RecordKey.of(Kind.ORGANIZATION, "a:b")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "zendesk",
        "zendesk:user",
        "zendesk:user:",
        "jira:user:1",
        "zendesk:cow:1",
        "zendesk:customer:1",
    ],
)
def test_anything_else_is_refused_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError, match=r"record key|does not live"):
        RecordKey.parse(text)
