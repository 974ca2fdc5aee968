"""The one error the data package raises on purpose."""

WORKER_PREFIX = "Caught DataNotFoundError in DataLoader worker process"


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are missing or corrupt and could not be downloaded.

    The message names the folder searched, the files expected there and how to provide them, so a
    training run can print it as is instead of a stack trace from inside torchvision.
    """

    def __str__(self) -> str:
        # Raised in a DataLoader worker (an unreadable image), it reaches the main process
        # rebuilt from the worker's traceback; its own message is that traceback's last line.
        text = super().__str__()
        if text.startswith(WORKER_PREFIX):
            return text.strip().splitlines()[-1].split(": ", 1)[-1]
        return text
