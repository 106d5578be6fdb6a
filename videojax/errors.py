"""The common base of user errors that are not ValueErrors: videojax.cli prints them as one line.

A user error is a problem the user can fix (a bad config, missing files, a run
that diverged) rather than a bug. Most are ValueError subclasses (FeatureError,
CheckpointMismatch, ConfigError...), which videojax.cli already reports in one
line; an error of another kind (e.g. a RuntimeError such as a diverged run)
joins them by also deriving from UserError:

  class TrainingDiverged(UserError, RuntimeError): ...
"""


def message(e: BaseException) -> str:
  """`e`'s text on one line (HDF5's and orbax's messages hold newlines), else its type's name."""
  return " ".join(str(e).split()) or type(e).__name__


class UserError(Exception):
  """An error whose message alone tells the user what is wrong and how to fix it."""
