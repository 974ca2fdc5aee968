"""CSV logging that continues a resumed run. Lightning's CSVLogger starts every run with an
empty `metrics.csv`: a run resumed from its checkpoint would lose the rows it logged before."""

import csv

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger (`metrics.csv` and `hparams.yaml` in its folder), except on a
    resumed run. There `resume_at(step)`, called before anything is logged
    (`orbitcl.tracking.start.StartLogger` does, with the checkpoint's global step S), keeps the
    rows of `metrics.csv` logged before the checkpoint (Lightning logs at step indices 0..S-1 up
    to it, the validation of its last epoch at S-1 too), drops those logged after it (a killed
    run's last steps, which the resumed run logs again), and appends the new rows to them: the
    file then reads as the uninterrupted run's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._resume_step: int | None = None

    def resume_at(self, step: int) -> None:
        """Continue the rows logged before global step `step` (the checkpoint's)."""
        if self._experiment is not None:
            raise RuntimeError("resume_at must be called before anything is logged")
        self._resume_step = step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuingWriter(self.log_dir, self._resume_step)
        return self._experiment


class ContinuingWriter(ExperimentWriter):
    """Lightning's CSV writer, keeping the rows before `resume_step` of an existing
    `metrics.csv` (None: a fresh file, as Lightning's)."""

    def __init__(self, log_dir: str, resume_step: int | None):
        self.resume_step = resume_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # Lightning's deletes metrics.csv
        if self.resume_step is None:
            super()._check_log_dir_exists()
            return
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            keys = list(reader.fieldnames or [])
            rows = [row for row in reader if _step(row) < self.resume_step]
        partial = self.metrics_file_path + ".partial"  # replaced whole: a kill leaves either
        with self._fs.open(partial, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        self._fs.mv(partial, self.metrics_file_path)
        self.metrics_keys = sorted(keys)  # save() appends under this header, or rewrites it


def _step(row: dict[str, str]) -> float:
    """A row's step; a row without one (not written by Lightning) counts as after any."""
    try:
        return float(row.get("step") or "inf")
    except ValueError:
        return float("inf")
