"""How long a one-shot command takes from a cold process: `kling-bot balance --demo`
(target: under 0.35 s) and `kling-bot --help`, and which heavy modules each imports.

    python3 benchmarks/bench_startup.py            # 15 runs each
    python3 benchmarks/bench_startup.py --runs 5

It prints figures and asserts nothing: machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sqlalchemy", "slack_sdk", "slack_bolt", "apscheduler", "psycopg", "waitress")
PROBE = """
import io, json, sys
from bot.cli import main
code = main({argv!r}, environ={{}}, stdout=io.StringIO(), stderr=io.StringIO())
print(json.dumps({{"code": code, "loaded": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""


def timed(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bot", *argv], cwd=ROOT, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return times


def loaded(argv: list[str]) -> dict[str, object]:
    code = PROBE.format(argv=argv, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    baseline = timed(["--version"], args.runs)
    print(f"python {sys.version.split()[0]}, {args.runs} runs each, wall time of the whole process")
    version_ms = statistics.median(baseline) * 1000
    print(f"  python -m bot --version      median {version_ms:6.0f} ms (interpreter + argparse)")
    for argv in (["balance", "--demo"], ["balance", "--demo", "--json"], ["--help"]):
        times = timed(argv, args.runs)
        heavy = loaded(argv) if argv != ["--help"] else {"loaded": "-"}
        print(
            f"  kling-bot {' '.join(argv):<22} median {statistics.median(times) * 1000:6.0f} ms, "
            f"min {min(times) * 1000:4.0f}, max {max(times) * 1000:4.0f}; heavy modules loaded: {heavy['loaded']}"
        )
    print("Target: `balance --demo` under 350 ms; it should load none of", ", ".join(HEAVY))


if __name__ == "__main__":
    main()
