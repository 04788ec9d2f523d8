"""A TCP round-robin balancer in front of several Prefect API processes (``kefu up --scaled``).

It listens on the one Prefect address everything already knows (``KEFU_PREFECT_API_URL``, the UI at port 4200)
and hands each new connection to the next API process in turn, skipping one that refuses or does not accept
within ``CONNECT_TIMEOUT`` (stopped, restarting, not yet started): a connection is only ever tried on a live one.
Bytes are copied both ways unchanged, so HTTP keep-alive and the events websocket work as against one server; a
connection stays with the process that accepted it, and ends when that process ends (Prefect's client opens a new
one and retries). On several machines, any TCP or HTTP load balancer (HAProxy, nginx, a cloud one) does this job.

    python -m kefu.engine.balancer --listen 127.0.0.1:4200 --backend 127.0.0.1:4201 --backend 127.0.0.1:4202
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

CONNECT_TIMEOUT = 2.0
CHUNK = 64 * 1024

Address = tuple[str, int]


def parse_address(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


class Balancer:
    """Round-robin over ``backends``; a backend that does not accept a connection is skipped for that one."""

    def __init__(self, backends: Sequence[Address], connect_timeout: float = CONNECT_TIMEOUT) -> None:
        if not backends:
            raise ValueError("a balancer needs at least one backend")
        self.backends = list(backends)
        self.connect_timeout = connect_timeout
        self._next = 0

    async def serve(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self._handle, host, port)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.backends)):
            host, port = self.backends[self._next]
            self._next = (self._next + 1) % len(self.backends)
            try:
                return await asyncio.wait_for(asyncio.open_connection(host, port), self.connect_timeout)
            except (OSError, TimeoutError):
                continue  # dead or not started yet: the next one
        return None

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:  # no API process accepts: the client sees the connection closed, and retries
            client_writer.close()
            return
        backend_reader, backend_writer = upstream
        try:
            await asyncio.gather(_copy(client_reader, backend_writer), _copy(backend_reader, client_writer))
        except asyncio.CancelledError:
            pass  # the balancer stops: end quietly (3.11's stream callback would log a cancelled handler)
        finally:
            for writer in (client_writer, backend_writer):
                writer.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then pass the end on (half-close); a broken side closes the other."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def _main(listen: Address, backends: list[Address]) -> None:
    balancer = Balancer(backends)
    server = await balancer.serve(*listen)
    shown = ", ".join(f"{h}:{p}" for h, p in backends)
    print(f"kefu balancer: {listen[0]}:{listen[1]} → {shown} (round robin)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:  # closed on the way out
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kefu.engine.balancer", description=__doc__.split("\n")[0])
    parser.add_argument("--listen", type=parse_address, required=True, help="HOST:PORT to accept connections on")
    parser.add_argument(
        "--backend", type=parse_address, action="append", required=True, help="HOST:PORT of an API process"
    )
    args = parser.parse_args(argv)
    asyncio.run(_main(args.listen, args.backend))
    return 0


if __name__ == "__main__":
    sys.exit(main())
