"""Runs benchmark scripts and writes what they printed to a results page, with the machine and
the date: `make bench` runs every `benchmarks/bench_*.py` through it into
`benchmarks/results/cpu.md`, which the documentation site shows (docs/results.md).

Each script's output goes to the terminal as it runs and into the page, under the command that
printed it, so every figure stands beside its command. The page is written even when a target
does not hold (that is when it matters); the exit status is then 1, the first failing script's.

    .venv/bin/python benchmarks/record_results.py OUT.md SCRIPT.py [SCRIPT.py ...] [-- ARGS]
"""

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance() -> tuple[str, str]:
    """The checkout's short commit and the time now (UTC): where a results page comes from."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return commit, datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine() -> list[str]:
    """The lines that say where and when the figures were measured."""
    import torch  # the benchmarks' own dependency; imported here only for its version

    try:
        load = "%.2f, %.2f, %.2f" % os.getloadavg()  # noqa: UP031 -- three floats
    except OSError:
        load = "unknown"
    commit, now = provenance()
    return [
        f"- date: {now}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()}",
        f"- torch {torch.__version__}, Python {platform.python_version()}"
        + (f", CUDA {torch.version.cuda}" if torch.cuda.is_available() else ", no GPU used"),
        f"- load average (1, 5, 15 min) at the start: {load}: figures measured under load are "
        "noisier than on an idle machine",
        f"- commit: {commit or 'unknown'}",
    ]


def run(script: str, args: list[str]) -> tuple[int, str]:
    """Runs one script with the current Python, echoing and returning its output."""
    process = subprocess.Popen(
        [sys.executable, script, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in process.stdout:
        sys.stdout.write(line)
        lines.append(line)
    return process.wait(), "".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    if len(argv) < 2:
        print(__doc__.rsplit("\n\n", 1)[1].strip(), file=sys.stderr)
        return 2
    out, scripts = Path(argv[0]), argv[1:]
    # Level-2 headings: docs/results.md includes the page under its own title.
    page = [f"## {out.stem.upper()}: {' '.join(Path(s).name for s in scripts)}", "", *machine(), ""]
    status = 0
    for script in scripts:
        command = " ".join(["python", script, *args])
        print(f"== {command}", flush=True)
        code, output = run(script, args)
        verdict = "exit status 0" if code == 0 else f"exit status {code}: a target does not hold"
        page += [f"### `{Path(script).name}`", "", f"`{command}` ({verdict}):", ""]
        page += ["```", output.rstrip(), "```", ""]
        status = status or code
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(page))
    print(f"written: {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
