"""An aioice ICE agent driven over stdin/stdout, one JSON document per line, for natkit's interop tests.

Usage: /usr/bin/python3 aioice-peer.py controlling|controlled

Out: {"type": "local", "ufrag", "pwd", "candidates": ["candidate:..."]}, then {"type": "connected", "local", "remote"}
     or {"type": "failed", "error"}, then {"type": "recv", "hex"} per datagram, {"type": "closed"} at the end.
In:  {"type": "remote", "ufrag", "pwd", "candidates": ["candidate:..."], "lite": bool} (end-of-candidates follows
     implicitly; lite: the natkit side said a=ice-lite),
     {"type": "send", "hex"}, {"type": "close"}.
Host candidates are on 127.0.0.1 only: the tests send nothing off loopback.
"""
import asyncio
import json
import sys

import aioice
import aioice.ice


def out(doc):
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


async def main(role):
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    conn = aioice.Connection(ice_controlling=(role == "controlling"), components=1, use_ipv6=False)
    await conn.gather_candidates()
    out({"type": "local", "ufrag": conn.local_username, "pwd": conn.local_password,
         "candidates": ["candidate:" + c.to_sdp() for c in conn.local_candidates]})

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    connected = asyncio.Event()

    async def receive():
        await connected.wait()
        while True:
            try:
                data = await conn.recv()
            except Exception:
                return
            out({"type": "recv", "hex": data.hex()})

    receiver = asyncio.ensure_future(receive())
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout=60)
            if not line:
                break
            msg = json.loads(line)
            if msg["type"] == "remote":
                conn.remote_username = msg["ufrag"]
                conn.remote_password = msg["pwd"]
                conn.remote_is_lite = bool(msg.get("lite", False))
                for text in msg["candidates"]:
                    text = text[2:] if text.startswith("a=") else text
                    text = text[len("candidate:"):] if text.startswith("candidate:") else text
                    await conn.add_remote_candidate(aioice.Candidate.from_sdp(text))
                await conn.add_remote_candidate(None)
                try:
                    await asyncio.wait_for(conn.connect(), timeout=20)
                except Exception as exc:
                    out({"type": "failed", "error": repr(exc)})
                    break
                pair = conn._nominated.get(1)
                out({"type": "connected",
                     "local": list(pair.local_addr) if pair else None,
                     "remote": list(pair.remote_addr) if pair else None})
                connected.set()
            elif msg["type"] == "send":
                await conn.send(bytes.fromhex(msg["hex"]))
            elif msg["type"] == "close":
                break
    finally:
        receiver.cancel()
        await conn.close()
        out({"type": "closed"})


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
