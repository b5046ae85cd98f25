"""Where the library's events go (:mod:`cname_flow.logs`): nowhere by default, to the host's
stdlib ``logging`` once it is configured, through structlog once the CLI (or a host) configured
that, the CLI's output unchanged."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from cname_flow.cli import log as cli_log
from cname_flow.logs import ROOT_LOGGER, get_logger


@pytest.fixture(autouse=True)
def unconfigured_structlog() -> Iterator[None]:
    """structlog never configured, as in a host application; restored afterwards."""
    configured, saved = structlog.is_configured(), structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.contextvars.clear_contextvars()
    if configured:
        structlog.configure(**saved)
    else:
        structlog.reset_defaults()


def test_the_library_root_logger_has_only_a_null_handler() -> None:
    handlers = logging.getLogger(ROOT_LOGGER).handlers
    assert [type(h) for h in handlers] == [logging.NullHandler]


def test_unconfigured_events_print_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    log = get_logger("cname_flow.test")
    log.info("txt.created", record_id="1")
    log.warning("certificate.warning", warning="expires soon")
    assert capsys.readouterr() == ("", "")


def test_a_host_that_configures_logging_gets_the_event_its_fields_and_the_binding(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger=ROOT_LOGGER)
    structlog.contextvars.bind_contextvars(binding="examplebucket/a.example.com")
    get_logger("cname_flow.workflow.steps").info(
        "txt.upserted", record_id="100001", access_key_secret="s3cr3t", note="two words")

    [record] = caplog.records
    assert (record.name, record.levelno) == ("cname_flow.workflow.steps", logging.INFO)
    assert record.getMessage() == ('event=txt.upserted record_id=100001 '
                                   'access_key_secret=[redacted] note="two words" '
                                   'binding=examplebucket/a.example.com')
    assert vars(record)[ROOT_LOGGER] == {
        "event": "txt.upserted", "record_id": "100001", "access_key_secret": "[redacted]",
        "note": "two words", "binding": "examplebucket/a.example.com"}
    assert capsys.readouterr().out == ""


def test_levels_below_the_hosts_are_dropped_and_exceptions_keep_their_traceback(
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=ROOT_LOGGER)
    log = get_logger("cname_flow.oss.adapter")
    log.debug("oss.call")
    log.info("oss.cname.put")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("oss.internal_error", request_id="r1")

    [record] = caplog.records
    assert (record.levelno, record.getMessage()) == (
        logging.ERROR, "event=oss.internal_error request_id=r1")
    assert record.exc_info is not None and record.exc_info[0] is ValueError


def test_once_the_cli_configures_structlog_events_go_there_and_not_to_stdlib(
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=ROOT_LOGGER)
    log = get_logger("cname_flow.workflow.runner")  # made before the configuration, as at import
    out = io.StringIO()
    cli_log.configure(json_logs=True, stream=out)
    log.info("step.done", step="verify", sts_token="t0k")

    line = json.loads(out.getvalue())
    assert (line["event"], line["step"], line["sts_token"], line["level"]) == (
        "step.done", "verify", "[redacted]", "info")
    assert caplog.records == []
