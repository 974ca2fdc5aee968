"""The report of a sweep, rebuilt from its directory alone: `python -m orbitcl.report SWEEP_DIR`.

Writes `sweep_report.csv`, `sweep_report.md` and the plots into SWEEP_DIR (see
`orbitcl.experiments.report`) and prints the Markdown. A sweep that declared a `study:` (a
preset's) gets its comparisons, claims and figures back as the sweep ended with them.

    python -m orbitcl.report DIR --metrics 'orbit/*' geometry/uniformity   # any logged metric
    python -m orbitcl.report DIR --list-metrics                            # what was logged
    python -m orbitcl.report DIR --compare loss --reference orl            # paired differences
    python -m orbitcl.report DIR --figures                                 # + the figures
"""

import argparse
import sys
from pathlib import Path

from orbitcl.experiments.report import (
    ALL_METRICS,
    METRICS,
    REPLICATE_KEY,
    X_KEY,
    StudyError,
    build_report,
    load_jobs,
    logged_metrics,
)
from orbitcl.experiments.trust import add_allow_target
from orbitcl.training.swept_keys import job_values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orbitcl.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_dir", type=Path, help="a sweep's directory (hydra.sweep.dir)")
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=list(METRICS),
        help=f"the columns: names, patterns such as 'orbit/*', or {ALL_METRICS} (every metric "
        "logged); default: a short list",
    )
    parser.add_argument("--list-metrics", action="store_true", help="print the logged metrics")
    parser.add_argument("--x", default=X_KEY, help="the swept key the plots run along")
    parser.add_argument("--replicate", default=REPLICATE_KEY, help="the swept key averaged over")
    parser.add_argument("--compare", metavar="KEY", help="compare the settings of this swept key")
    parser.add_argument("--reference", metavar="VALUE", help="... with this one (e.g. orl)")
    parser.add_argument(
        "--figures",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw the write-up's figures from one checkpoint per setting (default: when the "
        "sweep's study asks for them)",
    )
    add_allow_target(parser)
    args = parser.parse_args(argv)
    if (args.compare is None) != (args.reference is None):
        parser.error("--compare and --reference go together")
    reference = None
    if args.compare is not None:  # typed as the jobs' values are: 0.5 a float, orl a string
        reference = job_values([f"{args.compare}={args.reference}"], [args.compare])[args.compare]
    try:
        if args.list_metrics:
            print("\n".join(logged_metrics(load_jobs(args.sweep_dir)[1])))
            return 0
        report = build_report(
            args.sweep_dir,
            args.metrics,
            args.x,
            args.replicate,
            args.compare,
            reference,
            args.figures,
            args.allow_target,
        )
    except (FileNotFoundError, StudyError) as err:
        print(f"orbitcl.report: error: {err}", file=sys.stderr)
        return 2
    print((args.sweep_dir / "sweep_report.md").read_text())
    print(f"report in {args.sweep_dir}: sweep_report.csv, .md and {len(report.images)} pictures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
