#!/usr/bin/env python3
"""A complete IIP/1 server in Python's standard library: the end state of
the book's walkthrough "Implementing IIP in another language".

    python3 iip_server.py [HOST:PORT]        # default 127.0.0.1:9292
    iip conformance 127.0.0.1:9292           # every MUST case passes

It serves /echo (the answer is the request body) and /fail (fails with the
body as its error text), channels, chunked messages both ways, ordering per
channel, error answers, and closes on framing and protocol errors with a
close frame that names the broken requirement. One asyncio task per
connection; handlers answer at once, so answers leave in arrival order.
"""

import asyncio
import codecs
import json
import sys

# [ANSWER-9]: one U+FFFD for each byte that is not part of well-formed
# UTF-8, as the deployed implementation writes it ("replace" would give one
# per ill-formed sequence).
codecs.register_error("iip-per-byte", lambda err: ("\ufffd" * (err.end - err.start), err.end))

MAX_PATH = 2048                  # [LIMIT-1]
MAX_DATA = 16 * 1024 * 1024      # [LIMIT-2]
CLIENT_STATUSES = {0, 1, 2, 3, 8}  # [STATUS-3]
# Positions of request statuses ([STATUS-1]) and the message table (§7.1):
# (state, position) -> next state; a missing pair breaks [MSG-6].
POSITION = {1: "whole", 0: "first-more", 2: "continue-more", 3: "last"}
TRANSITIONS = {
    ("idle", "whole"): "idle",
    ("idle", "first-more"): "open",
    ("open", "continue-more"): "open",
    ("open", "last"): "idle",
}


class Broken(Exception):
    """A framing or protocol error: the text names the requirement."""


def encode(status, path, channel, data):
    """One frame ([FRAME-1]): status, path, NUL, channel, length, data."""
    return bytes([status]) + path + b"\0" + channel.to_bytes(4, "big") + len(data).to_bytes(4, "big") + data


def answer_frames(route, channel, body):
    """A whole response (status 5), or a chunked one (4, 6…, 7) when the
    body is longer than one frame may carry ([MSG-11], [LIMIT-5])."""
    if len(body) <= MAX_DATA:
        return encode(5, route, channel, body)
    parts = [body[i:i + MAX_DATA] for i in range(0, len(body), MAX_DATA)]
    statuses = [4] + [6] * (len(parts) - 2) + [7]
    return b"".join(encode(s, route, channel, p) for s, p in zip(statuses, parts))


def error_answer(code, message):
    """An error answer body ([ANSWER-1]), compact, code first."""
    return json.dumps({"code": code, "message": message}, separators=(",", ":"), ensure_ascii=False).encode()


class FrameReader:
    """A streaming decoder: frames from the bytes received so far, errors at
    the earliest byte that shows them ([FERR-2])."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, data):
        self.buffer += data

    def next_frame(self):
        """A frame (status, path, channel, data), or None if more bytes are needed."""
        buf = self.buffer
        if not buf:
            return None
        status = buf[0]
        if status > 8:
            raise Broken(f"[STATUS-2] undefined status {status}")
        if status not in CLIENT_STATUSES:
            raise Broken(f"[STATUS-3] status {status} may not be sent by a client")  # [STATUS-4]
        nul = buf.find(b"\0", 1, 1 + MAX_PATH + 1)
        if nul < 0:
            if len(buf) > 1 + MAX_PATH:
                raise Broken(f"[LIMIT-1] path longer than {MAX_PATH} bytes")
            return None
        if len(buf) < nul + 9:
            return None
        channel = int.from_bytes(buf[nul + 1:nul + 5], "big")
        length = int.from_bytes(buf[nul + 5:nul + 9], "big")
        if length > MAX_DATA:
            raise Broken(f"[LIMIT-2] data length {length} exceeds {MAX_DATA}")
        if length == 0 and status != 8:
            raise Broken("[FRAME-6] a message frame with no data")
        end = nul + 9 + length
        if len(buf) < end:
            return None
        frame = (status, bytes(buf[1:nul]), channel, bytes(buf[nul + 9:end]))
        del buf[:end]
        return frame


class Connection:
    def __init__(self, writer):
        self.writer = writer
        self.channels = {0: {"state": "idle", "path": b"", "body": bytearray()}}  # [CHAN-1]

    def send(self, data):
        self.writer.write(data)

    def handle(self, frame):
        """One frame from the client; raises Broken on a protocol error."""
        status, path, channel, data = frame
        if channel not in self.channels:
            raise Broken(f"[CHAN-6] frame on channel {channel}, which does not exist")
        lane = self.channels[channel]
        position = POSITION[status]
        following = TRANSITIONS.get((lane["state"], position))
        if following is None:
            raise Broken(f"[MSG-6] status {status} on channel {channel} while its message is {lane['state']}")
        if position in ("whole", "first-more"):
            lane["path"], lane["body"] = path, bytearray()  # the first frame's path counts ([MSG-4])
        lane["body"] += data
        lane["state"] = following
        if following == "idle":
            self.request(channel, lane["path"], bytes(lane["body"]))

    def request(self, channel, path, body):
        """A complete request ([MSG-7]): route it and answer at once."""
        route = path.split(b"?", 1)[0]  # [FRAME-7], [MSG-10]
        if route == b"/sys/new_channel":  # [CHAN-2]..[CHAN-4]
            new_id = next(i for i in range(1, 2**32) if i not in self.channels)
            self.channels[new_id] = {"state": "idle", "path": b"", "body": bytearray()}
            answer = json.dumps({"code": 0, "channel_id": new_id}, separators=(",", ":")).encode()
        elif route == b"/sys/delete_channel":  # [CHAN-7], [CHAN-8]
            if channel == 0:
                answer = error_answer(109, "channel not deletable")
            else:
                del self.channels[channel]
                answer = b'{"code":0}'
        elif route == b"/echo":
            answer = body
        elif route == b"/fail":  # [ANSWER-3], [ANSWER-9]
            answer = error_answer(-1, "handler fail:" + body.decode("utf-8", "iip-per-byte"))
        else:  # [ANSWER-2], [SYS-1]
            answer = error_answer(102, "handle error")
        self.send(answer_frames(route, channel, answer))


async def serve_connection(reader, writer):
    connection, frames = Connection(writer), FrameReader()
    reason = None
    try:
        while reason is None:
            data = await reader.read(65536)
            if not data:
                break  # [FERR-3]: a partial frame is dropped
            frames.feed(data)
            while True:
                frame = frames.next_frame()
                if frame is None:
                    break
                if frame[0] == 8:  # [CLOSE-2], [CLOSE-8]: any channel, stop reading
                    reason = ""
                    break
                connection.handle(frame)
            await writer.drain()
    except Broken as broken:
        reason = str(broken)  # answers already written stay ([FERR-1], [CLOSE-7])
    except ConnectionError:
        pass
    try:
        if reason:
            writer.write(encode(8, b"", 0, reason.encode()))  # [CLOSE-4]
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    except ConnectionError:
        pass


async def main(address):
    host, port = address.rsplit(":", 1)
    server = await asyncio.start_server(serve_connection, host, int(port))
    print(f"iip_server.py serving on {address}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9292"))
    except KeyboardInterrupt:
        pass
