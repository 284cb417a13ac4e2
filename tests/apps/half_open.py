"""A client that vanishes without a FIN, inside a network namespace of its own (run under
``unshare --net`` as root; tests/test_hostile_clients.py does).

The client connects from 10.9.9.9 (an address on the namespace's loopback), opens an idle stream
with a 1 s heartbeat, and then its address is deleted: the server's packets to it go nowhere and
nothing comes back, as when a phone leaves the network. Prints one JSON line: how long until the
server freed the stream. The kernel's bound is lowered either for the namespace
(``tcp_retries2``) or on the listening socket (``tcp_user_timeout``, which accepted connections
inherit).

    unshare --net python half_open.py tcp_retries2|tcp_user_timeout LOG_DIR
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

APPS = Path(__file__).parent
UVICORN = Path(sys.executable).parent / "uvicorn"
CLIENT = "10.9.9.9"


def sh(command: str) -> None:
    subprocess.run(command, shell=True, check=True)


def start_server(bound: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    if bound == "tcp_retries2":
        Path("/proc/sys/net/ipv4/tcp_retries2").write_text("4")  # about 6 s of retransmissions
    else:
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 3000)
    fd = listener.fileno()
    proc = subprocess.Popen(
        [str(UVICORN), "fh_app:app", "--fd", str(fd)],
        cwd=APPS,
        pass_fds=(fd,),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(APPS)},
    )
    listener.close()
    return proc, port


def streams(port: int) -> int:
    return int(httpx.get(f"http://127.0.0.1:{port}/stats", timeout=2).json()["streams"])


def wait_until(predicate, within: float) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > within:
            raise TimeoutError(f"not within {within} s")
        time.sleep(0.1)
    return time.monotonic() - start


def main() -> None:
    bound, log_dir = sys.argv[1], Path(sys.argv[2])
    sh(f"ip link set lo up && ip addr add {CLIENT}/32 dev lo")
    proc, port = start_server(bound, log_dir / f"half-open-{bound}.log")
    try:
        wait_until(lambda: _ready(port), 20)
        client = socket.socket()
        client.bind((CLIENT, 0))
        client.connect(("127.0.0.1", port))
        client.sendall(b"GET /stream?topic=quiet&heartbeat=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b": connected" not in received:
            received += client.recv(4096)
        before = streams(port)
        sh(f"ip addr del {CLIENT}/32 dev lo")  # the client is gone; no FIN, no RST
        seconds = wait_until(lambda: streams(port) == 0, 40)
        print(json.dumps({"bound": bound, "streams_before": before, "streams_after": 0, "seconds": seconds}))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/stats", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
