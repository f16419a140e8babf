"""The exceptions a user can cause; each message says what is wrong and what to do."""

from __future__ import annotations


class HeadactError(Exception):
    """A problem the user can fix; the CLI prints its message without a traceback."""


class StoreError(HeadactError):
    """A store is missing, malformed, of an unknown format, or not in the state asked for."""


class StoreExistsError(StoreError):
    """The output store already exists and overwriting was not asked for."""


class IncompleteStoreError(StoreError):
    """A store is still in progress and the caller did not allow partial reads."""


class DataError(HeadactError):
    """The input data file is missing, unreadable or of the wrong shape."""


class ModelError(HeadactError):
    """A model cannot be loaded, or its attention heads cannot be found."""


class PairingError(HeadactError):
    """Two stores cannot be compared sample by sample and head by head."""


class DumpInterrupted(HeadactError):
    """The user stopped a dump; what was committed stays and the dump can be resumed."""

    exit_code = 130
