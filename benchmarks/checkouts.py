"""Time ``raybench bench`` in two checkouts back to back, alternating, on one machine.

A code change (not a setting, which ``raybench bench --ab`` compares in one process) is
measured against the commit before it this way: each round runs the same bench command in
the "before" checkout, then the "after" one (the order alternates by round, so a drift of
the machine's speed falls on both), and the ratio after / before is taken per round and
reported as its median with the rounds' range. Both checkouts run with this interpreter
(one environment: the same torch), each importing its own ``raybench`` via PYTHONPATH.

    python benchmarks/checkouts.py /tmp/before . --rounds 3 -- \\
        --solvers maml,fomaml --preset quick --no-reference --cpus-per-run 1

``--after-set KEY=VALUE`` gives the after side a setting too (e.g. ``compile=true``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq


def side_key(row: dict) -> tuple[str, str]:
    """Rows pair by solver and by raybench's own step against the reference loop: a change
    may move a solver from one mapping of tasks to another (vmap to loop)."""
    return row["solver"], "reference" if row["implementation"].startswith("ref") else "raybench"


def bench_once(checkout: Path, bench_args: list[str], out: Path) -> dict[tuple[str, str], dict]:
    """One ``raybench bench`` in ``checkout``: its rows by ``side_key``."""
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    cmd = [sys.executable, "-m", "raybench", "bench", "--out", str(out), "-e", "x", *bench_args]
    subprocess.run(cmd, cwd=checkout, env=env, check=True, capture_output=True)
    (table,) = (out / "x" / "bench").glob("*.parquet")  # a fresh folder per call
    return {side_key(r): r for r in pq.read_table(table).to_pylist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--after-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting only the after side gets (one the before checkout may not know)",
    )
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.bench_args = argv[split + 1 :]  # after --: raybench bench's options
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for side in order:
                out = Path(tmp) / f"{side}-{r}"
                extra = [f"--set={kv}" for kv in args.after_set] if side == "after" else []
                runs[side].append(bench_once(getattr(args, side), args.bench_args + extra, out))
    print(f"{args.rounds} rounds, alternating; ms per meta-step (median of rounds)")
    if args.after_set:
        print(f"after side also with: {', '.join(args.after_set)}")
    print("| solver | implementation | before ms | after ms | after / before (min-max) "
          "| before % matmul | after % matmul |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for key in runs["after"][0]:
        b = [rows[key] for rows in runs["before"] if key in rows]
        a = [rows[key] for rows in runs["after"]]
        if not b:
            continue
        ratios = [x["ms_per_step"] / y["ms_per_step"] for x, y in zip(a, b)]

        def med(rows: list[dict], col: str) -> float:
            values = [row[col] for row in rows if row.get(col) is not None]
            return statistics.median(values) if values else float("nan")

        kinds = " -> ".join(dict.fromkeys([b[0]["implementation"], a[0]["implementation"]]))
        print(
            f"| {key[0]} | {kinds} | {med(b, 'ms_per_step'):.1f} | {med(a, 'ms_per_step'):.1f} "
            f"| {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) "
            f"| {100 * med(b, 'peak_fraction'):.1f}% | {100 * med(a, 'peak_fraction'):.1f}% |"
        )
    matmul = [rows[k]["matmul_gflops"] for side in runs.values() for rows in side for k in rows]
    print(f"\nfloat32 matmul in those processes: {min(matmul):.0f}-{max(matmul):.0f} GFLOP/s")


if __name__ == "__main__":
    main()
