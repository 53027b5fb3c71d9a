"""scorelab: learn the score ∇ₓ log p(x) from data, sample from it, and measure the samples."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scorelab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from scorelab._types import LogProbFn, SampleResult, ScoreFn
from scorelab._utils import DivergenceError, ScorelabError

__all__ = [
    "DivergenceError",
    "LogProbFn",
    "SampleResult",
    "ScoreFn",
    "ScorelabError",
    "__version__",
]
