"""An aioice ICE agent driven over stdin/stdout, one JSON document per line, for natkit's interop tests.

Usage: /usr/bin/python3 aioice-peer.py controlling|controlled [SPEC]

SPEC (optional JSON): {"host": "10.0.2.10", "stun": "203.0.113.10:3478", "mdns": "publish" | "silent", "components": 2}
  host:  the one host address to gather on (default 127.0.0.1: the loopback tests send nothing off loopback);
  stun:  a STUN server for a server-reflexive candidate (aioice's stun_server);
  mdns:  signal host candidates as <uuid>.local names, as browsers do; "publish" answers multicast DNS queries for
         them (aioice's own mDNS responder, RFC 6762), "silent" does not (the peer can only learn a prflx);
  components: 1 (default) or 2 (RTP and RTCP apart: aioice.Connection(components=2)).

Out: {"type": "local", "gen", "ufrag", "pwd", "candidates": ["candidate:..."]}, then {"type": "connected", "gen",
     "local", "remote", "components": {id: [local, remote]}} or {"type": "failed", "error"}, then {"type": "recv",
     "gen", "hex", "component"} per datagram,
     {"type": "closed"} at the end.
In:  {"type": "remote", "ufrag", "pwd", "candidates": ["candidate:..."], "lite": bool} (end-of-candidates follows
     implicitly; lite: the natkit side said a=ice-lite), for the newest generation;
     {"type": "restart"}: aioice 0.8 has no ICE restart, so a new generation is a new aioice Connection (new
     ufrag/pwd, new sockets and candidates) answering the natkit agent's restart, while the old one stays open and
     keeps receiving until "drop-old";
     {"type": "drop-old"}: close every generation but the newest;
     {"type": "send", "hex", "component"} (on the newest connected generation; component 1 by default), {"type": "close"}.
"""
import asyncio
import json
import sys

import aioice
import aioice.ice
import aioice.mdns


def out(doc):
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


class Generation:
    """One aioice Connection and the task that reports what it receives."""

    def __init__(self, gen, role, spec):
        stun = spec.get("stun")
        stun_server = None
        if stun:
            host, port = stun.rsplit(":", 1)
            stun_server = (host, int(port))
        self.gen = gen
        self.spec = spec
        self.conn = aioice.Connection(ice_controlling=(role == "controlling"), components=spec.get("components", 1), use_ipv6=False,
                                      stun_server=stun_server)
        self.connected = asyncio.Event()
        self.receiver = asyncio.ensure_future(self.receive())
        self.closed = False

    async def receive(self):
        await self.connected.wait()
        while True:
            try:
                data, component = await self.conn.recvfrom()
            except Exception:
                return
            out({"type": "recv", "gen": self.gen, "hex": data.hex(), "component": component})

    async def gather(self):
        await self.conn.gather_candidates()
        lines = []
        mdns = self.spec.get("mdns")
        responder = None
        for c in self.conn.local_candidates:
            text = c.to_sdp()
            if mdns and c.type == "host":
                name = aioice.mdns.create_mdns_hostname()
                if mdns == "publish":
                    responder = responder or await aioice.ice.get_or_create_mdns_protocol(self)
                    await responder.publish(name, c.host)
                text = text.replace(" %s %d typ host" % (c.host, c.port), " %s %d typ host" % (name, c.port))
            lines.append("candidate:" + text)
        out({"type": "local", "gen": self.gen, "ufrag": self.conn.local_username, "pwd": self.conn.local_password,
             "candidates": lines})

    async def connect(self, msg):
        self.conn.remote_username = msg["ufrag"]
        self.conn.remote_password = msg["pwd"]
        self.conn.remote_is_lite = bool(msg.get("lite", False))
        for text in msg["candidates"]:
            text = text[2:] if text.startswith("a=") else text
            text = text[len("candidate:"):] if text.startswith("candidate:") else text
            await self.conn.add_remote_candidate(aioice.Candidate.from_sdp(text))
        await self.conn.add_remote_candidate(None)
        try:
            await asyncio.wait_for(self.conn.connect(), timeout=20)
        except Exception as exc:
            out({"type": "failed", "gen": self.gen, "error": repr(exc)})
            return
        pair = self.conn._nominated.get(1)
        out({"type": "connected", "gen": self.gen,
             "local": list(pair.local_addr) if pair else None,
             "remote": list(pair.remote_addr) if pair else None,
             "components": {str(c): [list(p.local_addr), list(p.remote_addr)] for c, p in self.conn._nominated.items()}})
        self.connected.set()

    async def close(self):
        if self.closed:
            return
        self.closed = True
        self.receiver.cancel()
        await self.conn.close()
        await aioice.ice.unref_mdns_protocol(self)


async def main(role, spec):
    host = spec.get("host", "127.0.0.1")
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [host]
    gens = [Generation(1, role, spec)]
    await gens[0].gather()

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks = []
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout=60)
            if not line:
                break
            msg = json.loads(line)
            if msg["type"] == "remote":
                # connect() runs in the background so "send" and "restart" stay served while it checks.
                tasks.append(asyncio.ensure_future(gens[-1].connect(msg)))
            elif msg["type"] == "restart":
                gens.append(Generation(len(gens) + 1, role, spec))
                await gens[-1].gather()
            elif msg["type"] == "drop-old":
                for g in gens[:-1]:
                    await g.close()
            elif msg["type"] == "send":
                live = [g for g in gens if g.connected.is_set() and not g.closed]
                if live:
                    await live[-1].conn.sendto(bytes.fromhex(msg["hex"]), msg.get("component", 1))
                else:
                    out({"type": "failed", "error": "send before any generation connected"})
            elif msg["type"] == "close":
                break
    finally:
        for t in tasks:
            t.cancel()
        for g in gens:
            await g.close()
        out({"type": "closed"})


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}))
