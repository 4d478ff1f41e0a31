#!/usr/bin/env python3
"""A tiny IIP/1 client in Python's standard library, driven by the client
conformance suite:

    iip client-conformance --client-cmd 'python3 iip_client.py {addr} {actions}'

It reads the actions file (spec section 12.3), performs every action on one
connection, and exits 0 when each call came to what it expects, 1 otherwise.
It is also a short model of what an IIP client does: frames, channels,
pipelining, chunked answers, error answers, and the close rules.
"""

import json
import socket
import struct
import sys

MAX_DATA = 16 * 1024 * 1024
REQUEST_WHOLE, CLOSE = 1, 8
RESPONSE_WHOLE, RESPONSE_FIRST, RESPONSE_MORE, RESPONSE_LAST = 5, 4, 6, 7


class Closed(Exception):
    """The connection closed, or the server broke the protocol (we closed)."""


class ServerError(Exception):
    def __init__(self, code, message):
        super().__init__(f"server error {code}: {message}")
        self.code = code


class Connection:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        self.buf = b""
        self.open_channels = {0}
        self.deleted = set()

    def send(self, status, path, channel, data):
        if status != CLOSE and not data:
            data = b"{}"  # an empty body travels as {} [MSG-9]
        frame = bytes([status]) + path.encode() + b"\0" + struct.pack(">II", channel, len(data)) + data
        self.sock.sendall(frame)

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        status = self._read_exact(1)[0]
        path = b""
        while True:
            byte = self._read_exact(1)
            if byte == b"\0":
                break
            path += byte
            if len(path) > 2048:
                raise self.broken("path too long [LIMIT-1]")
        channel, length = struct.unpack(">II", self._read_exact(8))
        if length > MAX_DATA:
            raise self.broken("data too long [LIMIT-2]")
        return status, path, channel, self._read_exact(length)

    def broken(self, why):
        self.sock.close()
        return Closed(why)

    def response(self, channel):
        """The next whole response on `channel`; frames for deleted channels
        (a late delete answer) are skipped, anything else is a protocol error."""
        body = b""
        while True:
            status, path, chan, data = self.read_frame()
            if status == CLOSE:
                raise self.broken("server closed the connection [CLOSE-2]")
            if status not in (RESPONSE_WHOLE, RESPONSE_FIRST, RESPONSE_MORE, RESPONSE_LAST):
                raise self.broken(f"status {status} from a server [STATUS-3]")
            if chan in self.deleted:
                continue
            if chan not in self.open_channels or chan != channel:
                raise self.broken(f"response on channel {chan} [CHAN-6]")
            body += data
            if status in (RESPONSE_WHOLE, RESPONSE_LAST):
                return body


def check_error(body):
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    if isinstance(answer, dict) and isinstance(answer.get("code"), int) and answer["code"] != 0 \
            and isinstance(answer.get("message"), str):
        raise ServerError(answer["code"], answer["message"])
    return body


def outcome(call, result):
    want = call["expect"]
    if want == "closed":
        return isinstance(result, Closed)
    if "error_code" in want:
        return isinstance(result, ServerError) and result.code == want["error_code"]
    return result == bytes.fromhex(want["body_hex"])


def main(addr, actions_path):
    with open(actions_path) as f:
        actions = json.load(f)["actions"]
    conn = Connection(addr)
    channel = 0
    for action in actions:
        if action in ("open", "open_fails"):
            try:
                conn.send(REQUEST_WHOLE, "/sys/new_channel", 0, b"{}")
                grant = json.loads(conn.response(0))
                if grant.get("code") == 0 and grant.get("channel_id") in conn.open_channels:
                    raise conn.broken(f"channel {grant['channel_id']} granted while open [CHAN-4]")
            except (Closed, OSError) as err:
                if action == "open_fails":
                    return 0
                print(f"open: {err}", file=sys.stderr)
                return 1
            if action == "open_fails":
                print(f"open: expected the connection to close, got {grant}", file=sys.stderr)
                return 1
            if grant.get("code") != 0:
                print(f"open refused: {grant}", file=sys.stderr)
                return 1
            channel = grant["channel_id"]
            conn.open_channels.add(channel)
            conn.deleted.discard(channel)
            continue
        if action == "delete":
            # Never wait for the delete's answer [COMPAT-2].
            conn.send(REQUEST_WHOLE, "/sys/delete_channel", channel, b"{}")
            conn.open_channels.discard(channel)
            conn.deleted.add(channel)
            channel = 0
            continue
        calls = action.get("concurrent") or [action["call"]]
        for call in calls:  # pipelined: all sent before any answer is read
            conn.send(REQUEST_WHOLE, call["path"], channel, bytes.fromhex(call["body_hex"]))
        for call in calls:  # answers come in request order [ORDER-2]
            try:
                result = check_error(conn.response(channel))
            except (Closed, ServerError, OSError) as err:
                result = err if not isinstance(err, OSError) else Closed(str(err))
            if not outcome(call, result):
                print(f"call {call['path']}: expected {call['expect']}, got {result!r}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
