"""The report of a sweep, rebuilt from its directory alone: `python -m orbitcl.report SWEEP_DIR`.

Writes `sweep_report.csv`, `sweep_report.md` and one plot per metric into SWEEP_DIR (see
`orbitcl.experiments.report`) and prints the Markdown.
"""

import argparse
import sys
from pathlib import Path

from orbitcl.experiments.report import METRICS, REPLICATE_KEY, X_KEY, build_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orbitcl.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_dir", type=Path, help="a sweep's directory (hydra.sweep.dir)")
    parser.add_argument("--metrics", nargs="+", default=list(METRICS))
    parser.add_argument("--x", default=X_KEY, help="the swept key the plots run along")
    parser.add_argument("--replicate", default=REPLICATE_KEY, help="the swept key averaged over")
    args = parser.parse_args(argv)
    try:
        report = build_report(args.sweep_dir, args.metrics, args.x, args.replicate)
    except FileNotFoundError as err:
        print(f"orbitcl.report: error: {err}", file=sys.stderr)
        return 2
    print((args.sweep_dir / "sweep_report.md").read_text())
    print(f"report in {args.sweep_dir}: sweep_report.csv, .md and {len(report.plots)} plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
