"""Cost of recording one transition in the journal, by journal size.

For each size N (transitions already in the file, spread over N/10 bindings), the journal is
prefilled without fsync, reopened with fsync on, and then timed:

* ``record``: one ``Journal.record`` (write + fsync) per transition;
* ``group/50``: 50 ``record`` calls inside one ``Journal.group()`` (one write + one fsync),
  divided by 50;
* ``no-fsync``: one ``Journal.record`` with ``fsync=False`` (the CPU part alone).

Each figure is the median in microseconds; samples are taken round-robin over the sizes so
that drift in disk latency hits every size alike. The journals grow by what is measured (the
1,000 one ends near 3,000 after the groups). The ratio N_max/N_min shows whether the cost grows
with the journal (target ≤ 1.5).

Usage::

    .venv/bin/python bench/journal.py [--sizes 1000,10000,100000] [--samples 300] [--groups 40]
                                      [--dir DIR] [--store]

``--store`` measures the shared store of record (:class:`cname_flow.store.JsonStore`: append
lock, catch-up from the last offset) instead of a one-writer journal file.

``--store-url postgresql://…`` measures the PostgreSQL store
(:class:`cname_flow.store.postgres.PgStore`: one transaction per ``record``, one per group).
Each size gets a database of its own (``CREATE DATABASE cname_flow_bench_…``, dropped at the
end: the URL's user needs CREATEDB); durability is the server's (``synchronous_commit``), so
``no-fsync`` is left out.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cname_flow.journal import Journal, JournalEvent
from cname_flow.model import Phase, Step
from cname_flow.store import JsonStore
from cname_flow.store.postgres import PgStore

GROUP = 50
_FLOW = [
    (Step.CREATE_TOKEN, "running", Phase.PENDING),
    (Step.CREATE_TOKEN, "done", Phase.TOKEN_READY),
    (Step.WRITE_TXT, "running", Phase.TOKEN_READY),
    (Step.WRITE_TXT, "done", Phase.TXT_WRITTEN),
    (Step.WAIT_PROPAGATION, "running", Phase.TXT_WRITTEN),
    (Step.WAIT_PROPAGATION, "done", Phase.TXT_VISIBLE),
    (Step.PUT_CNAME, "running", Phase.TXT_VISIBLE),
    (Step.PUT_CNAME, "done", Phase.CNAME_PUT),
    (Step.VERIFY, "running", Phase.CNAME_PUT),
    (Step.VERIFY, "done", Phase.VERIFIED),
]


def transitions(bindings: int, start: int = 0) -> Iterator[JournalEvent]:
    """An endless, realistic stream: each binding walks the flow, ten events apiece."""
    n = start
    while True:
        step, status, phase = _FLOW[(n // bindings) % len(_FLOW)]
        key = f"bench-bucket/d{n % bindings}.example.com"
        outputs = {"token": f"tok-{n}", "token_expires_at": "2030-01-01T00:00:00Z"}
        yield JournalEvent(key, step, status, phase, outputs if status == "done" else {})  # type: ignore[arg-type]
        n += 1


#: What is measured: a journal file, the JSON store, or the PostgreSQL store.
Log = Journal | PgStore
#: Opens the log under test at a path: a one-writer Journal, or (``--store``) the shared store.
Opener = Callable[[Path, bool], Log]


def open_journal(path: Path, fsync: bool) -> Journal:
    """A one-writer :class:`Journal` file at ``path``."""
    return Journal(path, fsync=fsync)


def open_store(path: Path, fsync: bool) -> Journal:
    """The shared :class:`~cname_flow.store.JsonStore` in the directory ``path`` (catch-up,
    append lock and all)."""
    return JsonStore(path, fsync=fsync)


class PgOpener:
    """Opens a :class:`PgStore` in a database of its own per path (``--store-url``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[str] = []

    def _database(self, path: Path) -> str:
        import psycopg

        name = "cname_flow_bench_" + "".join(c if c.isalnum() else "_" for c in path.stem)
        if name not in self.made:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                conn.execute(f'CREATE DATABASE "{name}"')
            self.made.append(name)
        base, _, _ = self.url.partition("?")
        return base.rsplit("/", 1)[0] + "/" + name

    def __call__(self, path: Path, fsync: bool) -> PgStore:
        return PgStore(self._database(path))

    def drop(self) -> None:
        """Drop the databases made."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            for name in self.made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def prefill(path: Path, size: int, opener: Opener = open_journal) -> int:
    """Write ``size`` transitions (no fsync); return the number of bindings used."""
    bindings = max(1, size // len(_FLOW))
    stream = transitions(bindings)
    with opener(path, False) as journal:
        for start in range(0, size, 1000):
            journal.record_many([next(stream) for _ in range(min(1000, size - start))])
    return bindings


def time_single(journal: Log, stream: Iterator[JournalEvent]) -> float:
    """Nanoseconds for one ``record`` call."""
    item = next(stream)
    begin = time.perf_counter_ns()
    journal.record(item)
    return time.perf_counter_ns() - begin


def time_group(journal: Log, stream: Iterator[JournalEvent]) -> float:
    """Nanoseconds per transition of one ``group()`` of :data:`GROUP` records."""
    items = [next(stream) for _ in range(GROUP)]
    begin = time.perf_counter_ns()
    with journal.group():
        for item in items:
            journal.record(item)
    return (time.perf_counter_ns() - begin) / GROUP


Timer = Callable[[Log, Iterator[JournalEvent]], float]


def measure(
    workdir: Path, sizes: list[int], rounds: int, timer: Timer, *, fsync: bool,
    opener: Opener = open_journal,
) -> list[float]:
    """Median µs per transition at each size.

    One journal per size is prefilled, flushed to disk (``os.sync``) and reopened; then the
    samples are taken round-robin over the sizes, so disk-latency drift hits every size alike.
    """
    with contextlib.ExitStack() as stack:
        opened: list[tuple[Log, Iterator[JournalEvent]]] = []
        for size in sizes:
            path = workdir / f"j{size}-{timer.__name__}-{fsync}.jsonl"
            bindings = prefill(path, size, opener)
            log = opener(path, fsync)
            stack.enter_context(log)
            opened.append((log, transitions(bindings, size)))
        os.sync()
        costs: list[list[float]] = [[] for _ in sizes]
        for _ in range(rounds):
            for column, (journal, stream) in zip(costs, opened, strict=True):
                column.append(timer(journal, stream))
    return [statistics.median(column) / 1000.0 for column in costs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--samples", type=int, default=300, help="record calls per size")
    parser.add_argument("--groups", type=int, default=40, help=f"groups of {GROUP} per size")
    parser.add_argument("--dir", type=Path, default=None, help="where the temp dir goes")
    parser.add_argument("--store", action="store_true",
                        help="measure the shared store of record (JsonStore) instead")
    parser.add_argument("--store-url", default=None,
                        help="measure the PostgreSQL store at this server instead")
    args = parser.parse_args()
    pg = PgOpener(args.store_url) if args.store_url else None
    opener: Opener = pg or (open_store if args.store else open_journal)
    sizes = [int(size) for size in args.sizes.split(",")]
    modes: list[tuple[str, Timer, int, bool]] = [
        ("record", time_single, args.samples, True),
        (f"group/{GROUP}", time_group, args.groups, True),
        ("no-fsync", time_single, args.samples, False),
    ]
    modes = modes[:2] if pg else modes
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="cname-flow-bench-") as tmp:
        print(
            f"journal bench in {tmp}: median µs per transition "
            f"({args.samples} records, {args.groups} groups of {GROUP} per size)"
        )
        try:
            columns = [
                measure(Path(tmp), sizes, rounds, timer, fsync=fsync, opener=opener)
                for _, timer, rounds, fsync in modes
            ]
        finally:
            if pg is not None:
                pg.drop()
    print(f"{'transitions':>13}" + "".join(f"{name:>12}" for name, *_ in modes))
    for row, size in enumerate(sizes):
        print(f"{size:>13,}" + "".join(f"{column[row]:>12.1f}" for column in columns))
    ratios = "".join(f"{column[-1] / column[0]:>12.2f}" for column in columns)
    print(f"{f'{sizes[-1]:,}/{sizes[0]:,}':>13}" + ratios + "   (target ≤ 1.5)")


if __name__ == "__main__":
    main()
