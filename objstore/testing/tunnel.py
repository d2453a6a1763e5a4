"""An HTTP ``CONNECT`` proxy on 127.0.0.1, for the tests of HTTPS through ``proxy_url``.

Each connection asks ``CONNECT host:port``; the proxy records the target and its
``Proxy-Authorization``, answers 200, and relays bytes both ways until either side closes.
Anything but ``CONNECT`` gets 405.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["ConnectProxy"]


class ConnectProxy:
    """``async with ConnectProxy() as proxy`` gives ``proxy.url``; ``proxy.tunnels`` records
    ``(target, proxy_authorization or None)`` per tunnel."""

    def __init__(self) -> None:
        self.tunnels: list[tuple[str, str | None]] = []
        self.url = ""
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, _, rest = head[0].partition(" ")
            target = rest.partition(" ")[0]
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in head[1:] if line)
            }
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            self.tunnels.append((target, headers.get("proxy-authorization")))
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            self._writers.add(up_writer)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy ``source`` into ``sink`` until the end, then close ``sink``."""
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            sink.close()
