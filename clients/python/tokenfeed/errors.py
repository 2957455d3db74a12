"""Typed errors for every error code of docs/PROTOCOL.md section 7.

Every error raised by the client is a :class:`TokenfeedError`. Errors that carry a protocol code
(sent by the daemon in an ``Error`` frame, or detected by the client in a frame it received) are
instances of the subclass for that code; ``remote`` says which side detected it.
"""

from __future__ import annotations


class TokenfeedError(Exception):
    """Base class of every tokenfeed client error.

    Attributes:
        code: the protocol error code (section 7 of docs/PROTOCOL.md), or ``None`` for errors that
            have no code (the connection closed, a timeout).
        message: a sentence for a person.
        detail: the subject of the error (a field, a shard path and frame), possibly empty.
        remote: ``True`` when the daemon sent it in an ``Error`` frame, ``False`` when the client
            detected it.
    """

    code: int | None = None
    name: str = "error"

    def __init__(self, message: str, detail: str = "", *, remote: bool = False, code: int | None = None):
        if code is not None:
            self.code = code
        self.message = message
        self.detail = detail
        self.remote = remote
        text = f"{self.name}: {message}"
        if detail:
            text += f" ({detail})"
        if remote:
            text = "daemon: " + text
        super().__init__(text)


class ConnectionClosedError(TokenfeedError):
    """The peer closed the connection, possibly in the middle of a frame."""

    name = "connection_closed"


class ProtocolTimeoutError(TokenfeedError):
    """No byte arrived within the client's ``timeout``."""

    name = "timeout"


class BadMagicError(TokenfeedError):
    """Code 1: the first 4 bytes of a frame are not ``TKFD``."""

    code, name = 1, "bad_magic"


class UnsupportedVersionError(TokenfeedError):
    """Code 2: the frame header's version is not 1."""

    code, name = 2, "unsupported_version"


class MalformedFrameError(TokenfeedError):
    """Code 3: a field is out of range or inconsistent, a reserved field is non-zero, …"""

    code, name = 3, "malformed_frame"


class OversizeFrameError(TokenfeedError):
    """Code 4: ``payload_length`` exceeds the limit for its type."""

    code, name = 4, "oversize_frame"


class UnknownMessageTypeError(TokenfeedError):
    """Code 5: the header's type is not 1–8."""

    code, name = 5, "unknown_message_type"


class UnexpectedMessageError(TokenfeedError):
    """Code 6: a valid message in a state where it is not allowed."""

    code, name = 6, "unexpected_message"


class JobMismatchError(TokenfeedError):
    """Code 7: ``world_size`` or ``batch_size`` differs from the other clients of the job."""

    code, name = 7, "job_mismatch"


class RankOutOfRangeError(TokenfeedError):
    """Code 8: ``rank ≥ world_size``."""

    code, name = 8, "rank_out_of_range"


class RankInUseError(TokenfeedError):
    """Code 9: a live connection of the same job already serves this rank."""

    code, name = 9, "rank_in_use"


class CursorFingerprintMismatchError(TokenfeedError):
    """Code 10: the resume cursor belongs to another stream (fingerprint or quarantine digest)."""

    code, name = 10, "cursor_fingerprint_mismatch"


class BadCursorError(TokenfeedError):
    """Code 11: the cursor is invalid, or not at a step boundary of the new shape."""

    code, name = 11, "bad_cursor"


class AuthFailedError(TokenfeedError):
    """Code 12: this user may not connect (the daemon checks the peer's uid and gid against its
    ``allow_users`` and ``allow_groups``; sent before any other frame)."""

    code, name = 12, "auth_failed"


class DataError(TokenfeedError):
    """Code 13: shard data is unreadable or fails its checksum; ``detail`` names shard and frame."""

    code, name = 13, "data_error"


class InternalError(TokenfeedError):
    """Code 14: a bug or resource failure in the daemon."""

    code, name = 14, "internal_error"


class ShuttingDownError(TokenfeedError):
    """Code 15: the daemon is stopping; reconnect later and resume from the last cursor."""

    code, name = 15, "shutting_down"


class BusyError(TokenfeedError):
    """Code 16: the daemon serves its maximum number of connections; retry later."""

    code, name = 16, "busy"


class LimitExceededError(TokenfeedError):
    """Code 17: the request exceeds a configured limit of the daemon (memory, handshake timeout)."""

    code, name = 17, "limit_exceeded"


class ReplicaLostError(TokenfeedError):
    """Code 18: another replica of this data-parallel rank's session left before its end; the session
    ended for every replica. Reconnect all of them and resume from the rank's cursor."""

    code, name = 18, "replica_lost"


class UnknownErrorCodeError(TokenfeedError):
    """An ``Error`` frame with a code this client does not know (a fatal error of unknown kind)."""

    name = "unknown_error"


ERROR_CLASSES: dict[int, type[TokenfeedError]] = {
    cls.code: cls  # type: ignore[misc]
    for cls in (
        BadMagicError, UnsupportedVersionError, MalformedFrameError, OversizeFrameError,
        UnknownMessageTypeError, UnexpectedMessageError, JobMismatchError, RankOutOfRangeError,
        RankInUseError, CursorFingerprintMismatchError, BadCursorError, AuthFailedError, DataError,
        InternalError, ShuttingDownError, BusyError, LimitExceededError, ReplicaLostError,
    )
}

#: Error code → its name in docs/PROTOCOL.md.
ERROR_NAMES: dict[int, str] = {code: cls.name for code, cls in ERROR_CLASSES.items()}


def error_for_code(code: int, message: str, detail: str = "", *, remote: bool = False) -> TokenfeedError:
    """The typed error for ``code`` (an :class:`UnknownErrorCodeError` for codes not in the doc)."""
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        return UnknownErrorCodeError(message, detail, remote=remote, code=code)
    return cls(message, detail, remote=remote)
