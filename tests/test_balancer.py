"""The balancer in front of the Prefect API processes (``kefu up --scaled``): new connections go round robin, a
dead API process is skipped, and one that comes back takes its turn again."""

from __future__ import annotations

import asyncio

import pytest

from kefu.engine.balancer import Balancer, parse_address
from tests.support.processes import free_port


async def backend(name: bytes, port: int) -> asyncio.Server:
    """A stand-in API process: answers each line with its name, keeping the connection open."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readline():
            writer.write(name + b"\n")
            await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", port)


async def ask(port: int, times: int = 1) -> list[bytes]:
    """Open one connection through the balancer and ask ``times`` times on it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        answers = []
        for _ in range(times):
            writer.write(b"who?\n")
            answers.append((await reader.readline()).strip())
        return answers
    finally:
        writer.close()


async def check_round_robin() -> None:
    ports = [free_port(), free_port()]
    a = await backend(b"a", ports[0])
    b = await backend(b"b", ports[1])
    listen = free_port()
    server = await Balancer([("127.0.0.1", p) for p in ports]).serve("127.0.0.1", listen)
    async with server:
        assert [(await ask(listen))[0] for _ in range(4)] == [b"a", b"b", b"a", b"b"]
        assert await ask(listen, times=3) == [b"a", b"a", b"a"]  # a connection stays with its API process

        b.close()
        await b.wait_closed()
        assert [(await ask(listen))[0] for _ in range(4)] == [b"a"] * 4  # the dead one is skipped

        a.close()
        await a.wait_closed()
        reader, writer = await asyncio.open_connection("127.0.0.1", listen)
        assert await reader.read() == b""  # none alive: the connection is closed, nothing hangs
        writer.close()

        b = await backend(b"b", ports[1])  # restarted on its port: back in the rotation
        assert {(await ask(listen))[0] for _ in range(2)} == {b"b"}
        b.close()


def test_connections_go_round_robin_and_skip_a_dead_api_process() -> None:
    asyncio.run(asyncio.wait_for(check_round_robin(), timeout=30))


def test_a_malformed_address_is_refused() -> None:
    import argparse

    assert parse_address("127.0.0.1:4201") == ("127.0.0.1", 4201)
    for bad in ("4201", "127.0.0.1:", ":4201", "host:port"):
        with pytest.raises(argparse.ArgumentTypeError, match="HOST:PORT"):
            parse_address(bad)
