"""A stand-in worker host for the submit tests: a launched DBOS application that registers a
workflow under the contract's name (:data:`cname_flow.scaleout.spec.BIND_WORKFLOW`) and the
binding queue, and "binds" each binding by recording BOUND in the store of record.

``python -m tests.unit.scaleout.bind_host PG_URL CONFIG SECONDS``

It checks the submitting side against a real DBOS worker: the queue name, the workflow name,
``app_version`` and the input (decoded with :func:`cname_flow.scaleout.spec.decode`). The real
binding workflow (``cname_flow.scaleout.workflows``) is tested with its own module.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from dbos import DBOS

import cname_flow
from cname_flow import service
from cname_flow.config import load_settings
from cname_flow.journal import JournalEvent
from cname_flow.model import Phase, Step
from cname_flow.scaleout import spec


def main(argv: list[str]) -> int:
    url, config, seconds = argv
    settings = load_settings(Path(config))

    @DBOS.workflow(name=spec.BIND_WORKFLOW)
    def bind(binding: spec.BindingSpec) -> str:
        key = spec.decode(binding).key
        with service.open_store(settings) as store:
            store.record(JournalEvent(key=key, step=Step.VERIFY, status="done",
                                      phase=Phase.BOUND))
        return key

    DBOS(config={"name": "cname-flow", "system_database_url": url, "executor_id": "stand-in",
                 "application_version": cname_flow.__version__, "log_level": "WARNING"})
    DBOS.launch()
    DBOS.register_queue(spec.BIND_QUEUE)
    print("launched", flush=True)
    try:
        time.sleep(float(seconds))
    finally:
        DBOS.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
