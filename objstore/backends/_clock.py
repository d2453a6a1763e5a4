"""The server's time, as seen from this machine: what signatures are dated with.

A SigV4 signature carries its time, and S3 refuses one more than 15 minutes away from its own
clock (``RequestTimeTooSkewed``): a laptop back from sleep, a VM with a stopped clock, a
container on a drifting host. When a server says so, a store adopts the server's time from the
reply's ``Date`` header for every later signature, and sends the refused request again (the
AWS SDKs for Java, Go and JavaScript do the same; botocore and object_store fail every request).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping

from objstore.backends._http import parse_http_date

__all__ = ["ServerClock"]

logger = logging.getLogger("objstore")

RESOLUTION = 2.0
"""Seconds within which two times are the same: a ``Date`` header has whole seconds."""
SUSPECT = 300.0
"""A refusal without a reason (a HEAD has no body) is put down to the clock past this skew;
a clock observed off by less is left alone."""
OBSERVE_EVERY = 60.0
"""Seconds between two looks at a reply's ``Date`` by a store that is never refused for its
clock (GCS, whose bearer tokens carry no time, but whose signed URLs do)."""


class ServerClock:
    """This machine's time plus the offset the server's clock was last seen at."""

    __slots__ = ("_looked_at", "offset")

    def __init__(self) -> None:
        self.offset = 0.0
        self._looked_at = -math.inf

    def now(self) -> float:
        """The time to sign with (seconds since the epoch)."""
        return time.time() + self.offset

    def moved_since(self, offset: float) -> bool:
        """Whether the offset has changed (by a correction) since it was ``offset``."""
        return abs(self.offset - offset) >= RESOLUTION

    def corrected(
        self, signed_at: float, date_header: str | None, service: str, *, refused_for_skew: bool
    ) -> bool:
        """After a refused request signed at ``signed_at``: adopt the server's time from its
        ``Date``; return whether to sign and send the request again.

        A refusal that names the clock (``refused_for_skew``) is believed at any skew; one
        without a reason only past ``SUSPECT`` seconds. Either way the request is sent again
        only if its time was off from the server's, so a refusal for another reason ends here.
        """
        server = _server_time(date_header)
        if server is None or abs(server - signed_at) < (
            RESOLUTION if refused_for_skew else SUSPECT
        ):
            return False
        self._adopt(server - time.time(), service)
        return True

    def observe(self, headers: Mapping[str, str], service: str) -> None:
        """Look at a reply's ``Date`` (at most every ``OBSERVE_EVERY`` seconds): adopt the
        server's time while this machine's clock is ``SUSPECT`` or more off, this machine's
        own again once it is back within that."""
        looked_at = time.monotonic()
        if looked_at - self._looked_at < OBSERVE_EVERY:
            return
        self._looked_at = looked_at
        server = _server_time(headers.get("Date"))
        if server is not None:
            offset = server - time.time()
            self._adopt(offset if abs(offset) >= SUSPECT else 0.0, service)

    def _adopt(self, offset: float, service: str) -> None:
        if not self.moved_since(offset):
            return
        if offset:
            logger.warning(
                "%s: this machine's clock is %.0f s %s the server's; signing with the server's "
                "time from now on",
                service, abs(offset), "behind" if offset > 0 else "ahead of",
            )  # fmt: skip
        else:
            logger.warning("%s: this machine's clock agrees with the server's again", service)
        self.offset = offset


def _server_time(date_header: str | None) -> float | None:
    """The time of a ``Date`` header (seconds since the epoch), if it has one."""
    if not date_header:
        return None
    try:
        return parse_http_date(date_header).timestamp()
    except (ValueError, TypeError, IndexError):
        return None
