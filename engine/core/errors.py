"""Errors the engine raises; every one carries a message meant for a person.

MldeckError (msg, title)
 ├── ConfigError       mldeck.toml is missing, unreadable or has a bad key
 ├── ProjectError      no project here, or it is in a state that forbids the action
 ├── InputFileError    a data file cannot be read (the CLI reports; the file is quarantined)
 ├── NotFoundError     an unknown model version, batch or alias
 ├── TrainingError     nothing to train on, or every candidate failed
 ├── RegistryError     a promotion or rollback that cannot happen
 └── EngineStopping    the engine is stopping: a job is cut short or refused

Storage errors are wrapped into MldeckError by `as_mldeck_error` at the edges.
"""

from __future__ import annotations

from storage.errors import StorageError


class MldeckError(Exception):
    title = "Error"

    def __init__(self, msg: str, title: str | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        if title:
            self.title = title


class ConfigError(MldeckError):
    title = "Bad config"


class ProjectError(MldeckError):
    title = "Project"


class InputFileError(MldeckError):
    title = "Bad input file"


class NotFoundError(MldeckError):
    title = "Not found"


class TrainingError(MldeckError):
    title = "Training failed"


class RegistryError(MldeckError):
    title = "Registry"


class EngineStopping(MldeckError):
    title = "Engine stopping"


def as_mldeck_error(exc: StorageError) -> MldeckError:
    return MldeckError(exc.msg, title=exc.title)
