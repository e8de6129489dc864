"""Drives `chaos-runner proxy` with the real toxiproxy Python client (toxiproxy-python).

Usage: toxiproxy_client.py API_HOST API_PORT UPSTREAM
Exits 0 when the scripted create / toxic / down / delete session behaves as toxiproxy does.
"""

import socket
import sys
import time

from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import NotFound, ProxyExists


def round_trip(listen):
    host, port = listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.monotonic()
        s.sendall(b"ping")
        data = b""
        while len(data) < 4:
            chunk = s.recv(4 - len(data))
            assert chunk, "connection closed early"
            data += chunk
        assert data == b"ping", data
        return time.monotonic() - start


def main():
    host, port, upstream = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    server = Toxiproxy()
    server.update_api_consumer(host, port)
    assert server.running(), "server not reachable"
    assert server.version(), "no version"

    proxy = server.create(upstream=upstream, name="echo", listen="127.0.0.1:0")
    assert proxy.name == "echo" and proxy.upstream == upstream and proxy.enabled
    assert not proxy.listen.endswith(":0"), proxy.listen
    assert "echo" in server.proxies()
    try:
        server.create(upstream=upstream, name="echo")
        raise AssertionError("duplicate create accepted")
    except ProxyExists:
        pass
    # The client's own existence check is skipped this way, so the server's 409 is seen.
    try:
        APIConsumer.post("/proxies", json={"name": "echo", "upstream": upstream})
        raise AssertionError("server accepted a duplicate")
    except ProxyExists:
        pass

    assert round_trip(proxy.listen) < 0.1  # well under the 150 ms toxic

    proxy.add_toxic(type="latency", attributes={"latency": 150, "jitter": 0})
    toxic = proxy.get_toxic("latency_downstream")
    assert toxic is not None and toxic.type == "latency", proxy.toxics()
    assert toxic.attributes["latency"] == 150 and toxic.stream == "downstream"
    assert toxic.toxicity == 1.0
    took = round_trip(proxy.listen)
    assert took >= 0.15, took

    proxy.add_toxic(name="cut_up", type="timeout", stream="upstream", toxicity=0.5,
                    attributes={"timeout": 1000})
    assert set(proxy.toxics()) == {"latency_downstream", "cut_up"}
    proxy.destroy_toxic("cut_up")
    proxy.destroy_toxic("latency_downstream")
    assert proxy.toxics() == {}
    assert round_trip(proxy.listen) < 0.1  # well under the 150 ms toxic

    with proxy.down():
        assert server.get_proxy("echo").enabled is False
        try:
            round_trip(proxy.listen)
            raise AssertionError("proxy down but connection accepted")
        except (ConnectionRefusedError, ConnectionResetError):
            pass
    assert server.get_proxy("echo").enabled is True
    assert round_trip(proxy.listen) < 0.1  # well under the 150 ms toxic

    proxy.add_toxic(type="bandwidth", attributes={"rate": 1})
    proxy.disable()
    assert server.reset()
    again = server.get_proxy("echo")
    assert again.enabled and again.toxics() == {}

    try:
        proxy.add_toxic(type="no_such_toxic", attributes={})
        raise AssertionError("bad toxic type accepted")
    except Exception as e:  # InvalidToxic (400)
        assert type(e).__name__ == "InvalidToxic", e

    populated = server.populate([{"name": "second", "upstream": upstream, "listen": "127.0.0.1:0"}])
    assert [p.name for p in populated] == ["second"]
    server.destroy_all()
    assert server.proxies() == {}
    try:
        APIConsumer.get("/proxies/echo")
        raise AssertionError("deleted proxy still there")
    except NotFound:
        pass
    print("toxiproxy client session ok")


if __name__ == "__main__":
    main()
