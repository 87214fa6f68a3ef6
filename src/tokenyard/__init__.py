"""tokenyard: a self-hostable LLM gateway."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tokenyard")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
