"""The CLI's log set-up: JSON or console lines on stderr, secrets blanked, e-mails masked."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from cli.logs import REDACTED, Redactor, bind_run, configure_logging, mask_email


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """The CLI configures structlog globally; put it back so later tests log normally."""
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_run_id_and_level() -> None:
    out = io.StringIO()
    configure_logging(log_format="json", stream=out)
    bind_run("run123")
    try:
        structlog.get_logger().info("sync.start", full=True)
    finally:
        structlog.contextvars.clear_contextvars()
    (line,) = lines(out)
    assert line["event"] == "sync.start"
    assert line["run_id"] == "run123"
    assert line["level"] == "info"


def test_debug_lines_appear_only_when_verbose() -> None:
    quiet, loud = io.StringIO(), io.StringIO()
    configure_logging(log_format="json", stream=quiet)
    structlog.get_logger().debug("detail")
    configure_logging(log_format="json", stream=loud, verbose=True)
    structlog.get_logger().debug("detail")
    assert quiet.getvalue() == ""
    assert lines(loud)[0]["event"] == "detail"


def test_emails_are_masked_at_info_and_kept_at_debug() -> None:
    out = io.StringIO()
    configure_logging(log_format="json", stream=out, verbose=True)
    log = structlog.get_logger()
    log.info("linked", who="kari.nordmann@acme.no", note="user Kari <kari@acme.no> linked")
    log.debug("linked", who="kari.nordmann@acme.no")
    info, debug = lines(out)
    assert "kari" not in json.dumps(info)
    assert info["who"] == "…@acme.no"
    assert debug["who"] == "kari.nordmann@acme.no"


def test_secrets_are_blanked_by_value_and_by_name_at_every_level() -> None:
    out = io.StringIO()
    configure_logging(log_format="json", stream=out, verbose=True, secrets=["s3cr3t-value"])
    log = structlog.get_logger()
    log.debug("request", url="https://x/?key=s3cr3t-value", headers={"n": ["s3cr3t-value"]})
    log.info("auth", api_token="anything", client_key="other")
    text = out.getvalue()
    assert "s3cr3t-value" not in text
    assert "anything" not in text
    assert "other" not in text
    auth = lines(out)[1]
    assert auth["api_token"] == REDACTED


def test_console_format_is_plain_text() -> None:
    out = io.StringIO()
    configure_logging(log_format="console", stream=out)
    structlog.get_logger().info("sync.done", applied=3)
    assert "sync.done" in out.getvalue()
    assert "applied=3" in out.getvalue()
    assert not out.getvalue().startswith("{")


def test_format_follows_the_terminal_when_not_given() -> None:
    out = io.StringIO()  # not a TTY: JSON
    configure_logging(stream=out)
    structlog.get_logger().info("x")
    assert json.loads(out.getvalue())["event"] == "x"


def test_short_values_are_not_treated_as_secrets() -> None:
    redact = Redactor(["ab", None, ""])
    assert redact(None, "info", {"event": "about abc"}) == {"event": "about abc"}


def test_mask_email_keeps_the_domain() -> None:
    assert mask_email("from a.b+c@d.example.no, ok") == "from …@d.example.no, ok"
