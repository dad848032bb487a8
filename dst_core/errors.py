"""Exceptions raised for user-caused problems (bad config, unknown names, missing data)."""

from __future__ import annotations

__all__ = ["DstError", "DstWarning", "ConfigError", "UnknownNameError", "DatasetNotFoundError",
           "CheckpointMismatchError", "ContractError", "Diverged", "Interrupted", "RETRY_FUTILE"]


class DstError(Exception):
    """Base class of every error dst_core raises on purpose."""


class DstWarning(UserWarning):
    """Settings that run but are probably not what was meant (e.g. a DST run that never updates)."""


class ConfigError(DstError, ValueError):
    """A configuration value is invalid; the message names the field, the value and what is valid."""


class UnknownNameError(ConfigError, KeyError):
    """A name (criterion, model, dataset, ...) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DatasetNotFoundError(DstError, FileNotFoundError):
    """A dataset that loads from a local folder was not found there."""


class CheckpointMismatchError(DstError):
    """A checkpoint was written by a different config than the one resuming from it."""


class Interrupted(DstError):
    """Training stopped because ``should_stop()`` returned True; a checkpoint was written."""


class Diverged(DstError):
    """The training loss became NaN or infinite: the run failed (its last good checkpoint stays)."""


class ContractError(DstError):
    """A component returned what its contract rules out (a criterion's scores of the wrong shape or not
    finite, a model's output that is not one row of logits per example): the message names the
    component, where and what it returned."""


# Errors that a retry from the last checkpoint would raise again (same config, same seeded draws): a
# scheduler records the trial as failed at once instead of retrying it
RETRY_FUTILE = (ConfigError, ContractError, Diverged)
