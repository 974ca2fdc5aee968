"""The one error the data package raises on purpose."""


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are missing or corrupt and could not be downloaded.

    The message names the folder searched, the files expected there and how to provide them, so a
    training run can print it as is instead of a stack trace from inside torchvision.
    """
