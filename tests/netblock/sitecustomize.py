"""Loaded at start-up by any Python whose PYTHONPATH holds this folder: blocks and records every
attempt to reach the network -- connections, name look-ups and UDP datagrams (loopback and Unix
sockets stay allowed), so a test can prove that a
whole command -- training, export -- never tried to connect or even resolve a host name.

Each attempt is appended as one line to the file named by $PCP_NETBLOCK_LOG, then refused.
"""

import os
import socket
import traceback

_LOG = os.environ.get("PCP_NETBLOCK_LOG")
_LOOPBACK = {"127.0.0.1", "::1", "localhost", "0.0.0.0", ""}


def _record(what: str) -> None:
    if _LOG:
        stack = "".join(traceback.format_stack(limit=8)[:-2]).replace("\n", " | ")
        with open(_LOG, "a", encoding="utf-8") as f:
            f.write(f"{what}  <-  {stack}\n")


def _host(address) -> str:
    if isinstance(address, (tuple, list)) and address:
        return str(address[0])
    return ""


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def connect(self, address):
    if self.family != getattr(socket, "AF_UNIX", None) and _host(address) not in _LOOPBACK:
        _record(f"connect {address!r}")
        raise OSError(101, f"network blocked by the test (connect to {address!r})")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family != getattr(socket, "AF_UNIX", None) and _host(address) not in _LOOPBACK:
        _record(f"connect_ex {address!r}")
        return 101
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host is not None and str(host) not in _LOOPBACK:
        _record(f"getaddrinfo {host!r}")
        raise socket.gaierror(-3, f"name resolution blocked by the test ({host!r})")
    return _getaddrinfo(host, *args, **kwargs)


_sendto = socket.socket.sendto


def sendto(self, data, *args):
    # UDP too: a test must never send to a real show network (desks, other hosts).
    address = args[-1] if args else None
    if self.family != getattr(socket, "AF_UNIX", None) and _host(address) not in _LOOPBACK:
        _record(f"sendto {address!r}")
        raise OSError(101, f"network blocked by the test (UDP to {address!r})")
    return _sendto(self, data, *args)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.socket.sendto = sendto
socket.getaddrinfo = getaddrinfo
