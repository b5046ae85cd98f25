"""Start-up time of the console commands: the median wall time of N runs of each.

Prints, for ``cname-flow --help``, ``--version`` and ``bind --help``, the median and the best
of N subprocess runs (wall clock, seconds), next to ``python -c pass`` (the interpreter's own
floor) and the ratio to it. Run::

    PYTHONPATH=. .venv/bin/python bench/startup.py [-n 15]

Each run is ``python -m cname_flow``, so the code measured is the first ``cname_flow`` on the
path, and ``-m`` puts the current directory first: run it from the checkout to measure.

The target (issue 16): under 0.3 s for ``--help`` and ``--version``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "cname-flow --help": [sys.executable, "-m", "cname_flow", "--help"],
    "cname-flow --version": [sys.executable, "-m", "cname_flow", "--version"],
    "cname-flow bind --help": [sys.executable, "-m", "cname_flow", "bind", "--help"],
}


def timed(argv: list[str]) -> float:
    """Wall time of one run of ``argv`` in seconds (output discarded).

    Raises:
        subprocess.CalledProcessError: the command failed.
    """
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    """Measure each command ``-n`` times (after one warm-up run) and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=15, help="runs per command (default 15)")
    n = parser.parse_args().n
    medians: dict[str, float] = {}
    print(f"{'command':<26} {'median s':>9} {'best s':>8} {'x floor':>8}")
    for name, argv in COMMANDS.items():
        timed(argv)  # warm the file cache and the bytecode
        runs = [timed(argv) for _ in range(n)]
        medians[name] = statistics.median(runs)
        floor = medians["python -c pass"]
        print(f"{name:<26} {medians[name]:>9.3f} {min(runs):>8.3f} "
              f"{medians[name] / floor:>8.1f}")


if __name__ == "__main__":
    main()
