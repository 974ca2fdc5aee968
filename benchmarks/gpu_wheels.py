"""Prepares what `make gpu-check` needs on a GPU machine without network (`make gpu-wheels`).

The GPU machines have PyTorch, Lightning, timm, pytest and xdist, but not Hydra, OmegaConf, W&B
or lightly (``DEVICE_HAS`` lists what they hold, by name). This downloads, for the device's
Python (3.12, manylinux x86-64), the wheels of ``ROOTS`` and of everything they require that the
device lacks, into ``.gpu-wheels/`` (ignored by git), and copies the datasets the check trains
on into ``.gpu-data/``: MNIST as its ``.gz`` files (torchvision extracts them offline) and the
CIFAR-10 copy. Then it checks three things and exits 1 if one fails:

- the closure: every requirement of every wheel (for Python 3.12 on Linux) is met by a wheel
  in the folder or is a package the device has;
- pip itself resolves the roots that need no PyTorch from the folder alone (``--dry-run
  --no-index --ignore-installed``, for Python 3.12);
- the size: the working tree, the wheels and the data together fit the 64 MiB that travel to
  the device machine.

    python benchmarks/gpu_wheels.py [--wheels .gpu-wheels] [--data .gpu-data]

On the device, `make gpu-check` runs ``pip install --no-index --find-links .gpu-wheels``
(``INSTALL``), which installs only what the device lacks.
"""

import argparse
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
PYTHON_VERSION = "3.12"  # the device's python3 (/opt/torch/.venv/bin/python3, Python 3.12.3)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")
# What the check imports that the device lacks, and pytest's plugins in case it lacks them.
ROOTS = ("hydra-core", "omegaconf", "lightly", "pytest", "pytest-xdist")
# The roots whose closure leaves out PyTorch: pip resolves these from the folder alone.
TORCH_FREE_ROOTS = ("hydra-core", "omegaconf", "pytest", "pytest-xdist")
# Packages on the device machines (its image's `pip list`, 2026-11), by name: never downloaded.
# Requirements on them are trusted to hold (their versions there are not all known).
DEVICE_HAS = """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn
einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec
gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio
iniconfig interface-meta jax jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning
lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch
mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-ml-py
onnx onnxruntime opencv-python-headless optax opt-einsum orbax-checkpoint packaging pandas
pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil
pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pytest pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich safetensors scikit-image
scikit-learn scipy seaborn sentencepiece setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile
timm tokenizers toolz torch torchaudio torchmetrics torchvision tqdm transformers triton typer
typing-extensions typing-inspect urllib3 wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
zipp
"""
DEVICE_HAS = {canonicalize_name(name) for name in DEVICE_HAS.split()}
# Downloaded although the device has them: their version there may be too old for a root
# (lightly's pydantic needs a recent typing-extensions, ...) and is not known here. pip installs
# each only where the device's own does not satisfy a requirement. W&B is not among the roots:
# orbitcl imports it only in runs that log to it, and the check logs nowhere.
ALSO = (
    *("pytest", "pytest-xdist", "pluggy", "iniconfig", "execnet", "pygments", "packaging"),
    *("typing-extensions", "pyyaml", "requests", "urllib3", "idna", "certifi"),
    "charset-normalizer",
)
# antlr4-python3-runtime 4.9.3 (OmegaConf pins 4.9.*) is published as a source archive only:
# built here into a pure-Python wheel.
SOURCE_ONLY = {"antlr4-python3-runtime": "4.9.3"}
CARRY_LIMIT_MIB = 64  # what travels to the device machine: working tree + carried paths
DATA_FILES = [
    "MNIST/raw/train-images-idx3-ubyte.gz",
    "MNIST/raw/train-labels-idx1-ubyte.gz",
    "MNIST/raw/t10k-images-idx3-ubyte.gz",
    "MNIST/raw/t10k-labels-idx1-ubyte.gz",
    "cifar-10-batches-py",
]
INSTALL = "pip install -q --no-index --no-cache-dir --no-compile --find-links {wheels} " + " ".join(
    ROOTS
)


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False
    )


def target_args() -> list[str]:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    return ["--python-version", PYTHON_VERSION, "--implementation", "cp", *platforms]


def environment() -> dict[str, str]:
    """The markers' environment of the device's Python."""
    env = default_environment()
    full = {"3.12": "3.12.3"}.get(PYTHON_VERSION, PYTHON_VERSION)
    env.update(python_version=PYTHON_VERSION, python_full_version=full)
    env.update(sys_platform="linux", platform_system="Linux", platform_machine="x86_64")
    env.update(implementation_name="cpython", platform_python_implementation="CPython")
    return env


def requirements(wheel: Path) -> list[Requirement]:
    """The wheel's requirements that hold on the device's Python, extras left out."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(name).decode().splitlines()
    found = []
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is None or req.marker.evaluate(environment() | {"extra": ""}):
            found.append(req)
    return found


def wheels_in(folder: Path) -> dict[str, Path]:
    return {canonicalize_name(parse_wheel_filename(w.name)[0]): w for w in folder.glob("*.whl")}


def pinned(name: str) -> str:
    """``name==the version installed here`` (the combination the tests ran with), else name."""
    try:
        return f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return name


def fetch(name: str, folder: Path) -> None:
    """One package's wheel into ``folder``: a binary for the device, else built from source."""
    key = canonicalize_name(name)
    if key in SOURCE_ONLY:
        spec = f"{key}=={SOURCE_ONLY[key]}"
        done = pip("wheel", "-q", "--no-deps", "--no-binary", ":all:", "-w", str(folder), spec)
    else:
        done = pip(
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            *target_args(),
            "-d",
            str(folder),
            pinned(name),
        )
    if done.returncode != 0:
        raise SystemExit(f"gpu-wheels: could not fetch {name}:\n{done.stderr[-2000:]}")


def download(folder: Path) -> None:
    """The roots and their closure, less what the device has (``DEVICE_HAS``, except ``ALSO``)."""
    folder.mkdir(exist_ok=True)
    wanted = [*ROOTS, *ALSO]
    while wanted:
        name = canonicalize_name(wanted.pop())
        if name in wheels_in(folder):
            continue
        fetch(name, folder)
        for req in requirements(wheels_in(folder)[name]):
            dep = canonicalize_name(req.name)
            if dep not in DEVICE_HAS and dep not in wheels_in(folder):
                wanted.append(dep)


def closure_problems(folder: Path) -> list[str]:
    """Requirements met neither by a wheel in ``folder`` nor by a package of the device."""
    have = wheels_in(folder)
    problems = []
    for name, wheel in sorted(have.items()):
        for req in requirements(wheel):
            dep = canonicalize_name(req.name)
            if dep in have:
                version = parse_wheel_filename(have[dep].name)[1]
                if not req.specifier.contains(version, prereleases=True) and dep not in DEVICE_HAS:
                    problems.append(f"{name} needs {req}, the folder has {dep} {version}")
            elif dep not in DEVICE_HAS:
                problems.append(f"{name} needs {req}: neither in the folder nor on the device")
    return problems


def pip_resolves(folder: Path) -> str:
    """pip's own resolution of the PyTorch-free roots with no index: from the folder, and for
    the packages the device has, from their wheels fetched into a scratch folder ('' if it
    works)."""
    with tempfile.TemporaryDirectory() as target, tempfile.TemporaryDirectory() as device:
        wanted, seen = list(TORCH_FREE_ROOTS), set()
        while wanted:  # the roots' closure; what the folder lacks is fetched into `device`
            name = canonicalize_name(wanted.pop())
            if name in seen:
                continue
            seen.add(name)
            wheels = wheels_in(folder) | wheels_in(Path(device))
            if name not in wheels:
                fetch(name, Path(device))
                wheels = wheels_in(folder) | wheels_in(Path(device))
            wanted += [r.name for r in requirements(wheels[name])]
        done = pip(
            "install",
            "--dry-run",
            "--quiet",
            "--ignore-installed",
            "--no-index",
            "--find-links",
            str(folder),
            "--find-links",
            device,
            "--only-binary=:all:",
            *target_args(),
            "--target",
            target,
            *TORCH_FREE_ROOTS,
        )
    return "" if done.returncode == 0 else done.stderr[-2000:]


def copy_data(source: Path, data: Path) -> None:
    """The check's datasets into ``data`` (MNIST compressed, CIFAR-10 as it is)."""
    for relative in DATA_FILES:
        src, dst = source / relative, data / relative
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)


def mib(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def tree_mib() -> float:
    """The working tree that travels: tracked and untracked files that git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    return sum((ROOT / f).stat().st_size for f in listed if f and (ROOT / f).is_file()) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=ROOT / ".gpu-wheels")
    parser.add_argument("--data", type=Path, default=ROOT / ".gpu-data")
    default_source = os.environ.get("ORBITCL_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--source", type=Path, default=Path(default_source))
    args = parser.parse_args(argv)
    download(args.wheels)
    copy_data(args.source, args.data)
    for wheel in sorted(args.wheels.glob("*.whl")):
        print(f"  {wheel.stat().st_size / 2**20:6.2f} MiB  {wheel.name}")
    ok = True
    if problems := closure_problems(args.wheels):
        print("closure: DOES NOT HOLD\n  " + "\n  ".join(problems))
        ok = False
    else:
        print(
            f"closure: every requirement met by the folder or the device (Python {PYTHON_VERSION})"
        )
    if error := pip_resolves(args.wheels):
        print(f"pip --dry-run --no-index of {' '.join(TORCH_FREE_ROOTS)}: DOES NOT HOLD\n{error}")
        ok = False
    else:
        print(f"pip --dry-run --no-index resolves {' '.join(TORCH_FREE_ROOTS)} from the folder")
    sizes = {"working tree": tree_mib(), "wheels": mib(args.wheels), "data": mib(args.data)}
    total = sum(sizes.values())
    verdict = "holds" if total <= CARRY_LIMIT_MIB else "DOES NOT HOLD"
    print(
        ", ".join(f"{k} {v:.1f} MiB" for k, v in sizes.items())
        + f": {total:.1f} MiB travel (limit {CARRY_LIMIT_MIB} MiB) {verdict}"
    )
    print(f"on the device: python3 -m {INSTALL.format(wheels=args.wheels.name)}")
    return 0 if ok and total <= CARRY_LIMIT_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
