"""Python client of the tokenfeed daemon (protocol: docs/PROTOCOL.md; shards: docs/SHARDS.md)."""

from .batch import Batch, Piece, Row
from .client import Client, fetch_stats
from .errors import *  # noqa: F401,F403  (the typed errors)
from .errors import TokenfeedError
from .protocol import VERSION as _protocol_version
from .protocol import Cursor, Dataset, Stage, Stats, Welcome

__all__ = ["Client", "Batch", "Row", "Piece", "Cursor", "Welcome", "Stage", "Dataset", "Stats",
           "fetch_stats", "TokenfeedError", "PROTOCOL_VERSION"]
#: The release version, shared with tokenfeed and tokenfeedd (the repository's VERSION file).
__version__ = "0.1.0"
#: The protocol version this client speaks (``tokenfeedd --version`` prints the daemon's).
PROTOCOL_VERSION = _protocol_version
