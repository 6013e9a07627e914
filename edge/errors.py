"""The edge agent's exception tree, grouped by how a caller recovers.

::

    EdgeError
    ├── EdgeConfigError   bad settings (broker URL, TLS files, sizes): stop and say what to fix
    ├── SourceError       a sensor source cannot be read (e.g. a bad CSV row or column)
    ├── ReadingError      a reading or event that breaks the device contract (unknown channel,
    │                     non-increasing time, bad event shape); the caller's bug, not the network's
    ├── OutboxError       the on-disk outbox failed (disk full, file locked by another agent)
    └── BrokerError       the MQTT client refused an operation (not a lost connection)

Network trouble is not an error here: the agent buffers in its outbox and reconnects with
backoff. Third-party errors (``sqlite3``, ``ssl``, ``paho``) are mapped onto this tree in the
module that calls the library.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Root of every error the edge agent raises on purpose."""


class EdgeConfigError(EdgeError):
    """The configuration is wrong; the message says which setting and how to fix it."""


class SourceError(EdgeError):
    """A sensor source could not be read; the message names the file, row and column."""


class ReadingError(EdgeError):
    """A reading or event that cannot be sent under the device contract."""


class OutboxError(EdgeError):
    """The on-disk outbox could not be opened, read or written."""


class BrokerError(EdgeError):
    """The MQTT client library refused an operation (its error is the ``__cause__``)."""
