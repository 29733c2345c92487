"""The project's errors: one base class, small named subclasses."""

__all__ = ["SplinescopeError", "UnsupportedLayerError", "VerificationError", "MissingDependencyError",
           "CheckpointError", "NonFiniteWeightsError"]


class SplinescopeError(Exception):
    """Base class of splinescope's own errors."""


class UnsupportedLayerError(SplinescopeError, ValueError):
    """A layer that is not piecewise linear, or not supported yet."""


class VerificationError(SplinescopeError):
    """A partition failed a check against its network."""


class MissingDependencyError(SplinescopeError, ImportError):
    """An optional dependency is needed for this call."""


class CheckpointError(SplinescopeError, ValueError):
    """A model or checkpoint file that cannot be read: corrupt, truncated, of a format not supported,
    holding pickled Python objects without ``trust=True``, or not fitting the architecture."""


class NonFiniteWeightsError(SplinescopeError, ValueError):
    """A layer whose weights hold NaN or infinite values."""
