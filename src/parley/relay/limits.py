"""The relay's connection limits: open files, the connection budget, addresses counted
together."""

from __future__ import annotations

import ipaddress
from typing import Any


def open_file_limits() -> tuple[int, int] | None:
    """The (soft, hard) RLIMIT_NOFILE, or None where there is no such limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def raise_open_file_limit() -> tuple[int, int] | None:
    """Raise the soft open-file limit to the hard one; (old soft, new soft), or None."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


def connection_budget(open_files: int | None) -> int | None:
    """Connections that fit in `open_files` descriptors, leaving room for everything else
    (listeners, the store, logs, the metrics endpoint, sockets being refused): 64 plus a
    tenth of the limit are kept back."""
    if open_files is None or open_files < 0:
        return None
    return max(1, open_files - 64 - open_files // 10)


def address_key(address: Any) -> str:
    """Connections are counted per IPv4 address and per IPv6 /64."""
    host = str(address[0]) if isinstance(address, tuple) and address else str(address)
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return host
