#!/usr/bin/env python3
"""Many concurrent TCP connections, all held open at once (tests/bench/ab.sh's `conns` load).

  conns.py serve PORT            # in the "internet" namespace: answer each request, keep the
                                 # connection open until the client closes it
  conns.py load ADDR PORT N      # in the phone namespace: open N connections, send one request
                                 # on each and read its answer; once all N are answered (or
                                 # failed), a second request on each, so every connection must
                                 # have stayed open with all the others; then close them all;
                                 # prints one JSON line

A connection is served when both whole answers arrived; every other outcome (refused, reset,
timed out, short answer) is an error. Both ends need `ulimit -n` above N.
"""

import asyncio
import json
import sys
import time

REQUEST = b"GET /conn HTTP/1.1\r\nHost: conns.test\r\n\r\n"
BODY = b"x" * 512
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY


async def serve(port: int) -> None:
    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # until the client closes
                await reader.readuntil(b"\r\n\r\n")
                writer.write(ANSWER)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(one, "0.0.0.0", port, backlog=16384)
    async with server:
        await server.serve_forever()


async def load(addr: str, port: int, n: int) -> None:
    all_answered = asyncio.Event()
    all_open = asyncio.Event()
    pending = n
    opening = n
    errors: dict[str, int] = {}
    served = 0
    # At most a few hundred handshakes in flight, as apps open them: a burst of 10,000 SYNs at
    # once is what a SYN flood looks like, and past 1,024 handshakes in flight Embargo's flood
    # defence gives the oldest one's place to the newest (`budget::MAX_HALF_OPEN`).
    connecting = asyncio.Semaphore(256)

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(REQUEST)
        await writer.drain()
        if await asyncio.wait_for(reader.readexactly(len(ANSWER)), 30) != ANSWER:
            raise ValueError("wrong answer")

    def failed(e: Exception) -> None:
        kind = type(e).__name__
        errors[kind] = errors.get(kind, 0) + 1

    async def one() -> None:
        nonlocal pending, opening, served
        conn = None
        try:
            async with connecting:
                conn = await asyncio.wait_for(asyncio.open_connection(addr, port), 30)
            await exchange(*conn)
        except Exception as e:  # every failure is counted by kind
            failed(e)
            conn = None
        finally:
            opening -= 1
            if opening == 0:
                all_open.set()
        await all_open.wait()
        try:
            if conn is not None:
                await exchange(*conn)
                served += 1
        except Exception as e:
            failed(e)
        finally:
            pending -= 1
            if pending == 0:
                all_answered.set()
        await all_answered.wait()
        if conn is not None:
            conn[1].close()

    start = time.monotonic()
    tasks = [asyncio.create_task(one()) for _ in range(n)]
    await all_answered.wait()
    held = time.monotonic() - start
    await asyncio.gather(*tasks)
    print(json.dumps({"connections": n, "served": served, "errors": errors, "seconds": round(held, 2)}))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        asyncio.run(serve(int(sys.argv[2])))
    elif len(sys.argv) == 5 and sys.argv[1] == "load":
        asyncio.run(load(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
