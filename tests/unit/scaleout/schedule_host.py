"""One worker host for the schedule test: launch DBOS with its own executor id, register the
reconcile schedule (every host registers the same one), record every pass it runs, stop.

``python -m tests.unit.scaleout.schedule_host PG_URL EXECUTOR CONFIG MANIFEST CRON SECONDS``

The pass itself (:func:`cname_flow.scaleout.schedule.run_pass`) is replaced by a row in table
``fired`` (slot, executor); each host waits for three rows in ``ready`` (every host
launched and registered) before its ``SECONDS`` start. This test is about which host runs
which slot; the pass is tested in-process.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

import psycopg
from dbos import DBOS

import cname_flow
from cname_flow.config import Settings, load_settings
from cname_flow.scaleout import schedule


def main(argv: list[str]) -> int:
    url, executor, config, manifest, cron, seconds = argv

    def record(settings: Settings, context: schedule.ScheduleContext, scheduled_at: datetime,
               **_: object) -> dict[str, object]:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("insert into fired(slot, executor, manifest) values (%s, %s, %s)",
                         (scheduled_at.isoformat(), executor, context["manifest"]))
        return {}

    schedule.run_pass = record
    DBOS(config={"name": "cname-flow", "system_database_url": url, "executor_id": executor,
                 "application_version": cname_flow.__version__, "log_level": "WARNING"})
    DBOS.launch()
    try:
        schedule.register(load_settings(Path(config)), manifest=Path(manifest), cron=cron)
        schedule.register(load_settings(Path(config)), manifest=Path(manifest), cron=cron)
        print("registered", flush=True)
        with psycopg.connect(url, autocommit=True) as conn:  # every host up before the clock
            conn.execute("insert into ready(executor) values (%s)", (executor,))
            while conn.execute("select count(*) from ready").fetchone() != (3,):
                time.sleep(0.1)
        time.sleep(float(seconds))
    finally:
        DBOS.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
