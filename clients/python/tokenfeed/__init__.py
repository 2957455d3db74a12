"""Python client of the tokenfeed daemon (protocol: docs/PROTOCOL.md; shards: docs/SHARDS.md)."""

from .batch import Batch, Piece, Row
from .client import Client, fetch_stats
from .errors import *  # noqa: F401,F403  (the typed errors)
from .errors import TokenfeedError
from .protocol import Cursor, Dataset, Stage, Stats, Welcome

__all__ = ["Client", "Batch", "Row", "Piece", "Cursor", "Welcome", "Stage", "Dataset", "Stats",
           "fetch_stats", "TokenfeedError"]
__version__ = "0.1.0"
