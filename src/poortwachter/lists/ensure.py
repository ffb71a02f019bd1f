"""What `poortwachter lists ensure` needs to decide whether to install lists: which named lists are
missing, and whether the download can be reached at all.

`make run` calls it on every start, on machines that may have no route to the internet: the probe
gives up within its timeout, name lookup included (getaddrinfo has no timeout of its own, so it
runs in a daemon thread that is abandoned when it does not answer in time).
"""

from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from poortwachter.lists.index import CategoryIndex, IndexLoadError
from poortwachter.lists.install import lists_dir


def installed_sizes(data_dir: Path) -> dict[str, int]:
    """Entries per installed list; empty when nothing (loadable) is installed."""
    try:
        return CategoryIndex.load(lists_dir(data_dir)).sizes()
    except IndexLoadError:
        return {}


def missing_lists(names: Iterable[str], sizes: dict[str, int]) -> list[str]:
    """The names that are not installed, or installed without an entry (as the gateway counts them)."""
    return sorted(name for name in set(names) if not sizes.get(name))


def endpoint(url: str) -> tuple[str, int]:
    """Host and port a download of `url` connects to: the proxy the environment names for its
    scheme (as httpx uses it), unless no_proxy exempts the host; otherwise the URL's own."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass_environment(host, proxies):
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host = parts.hostname or ""
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def reachable(url: str, timeout: float) -> bool:
    """Whether a TCP connection to where a download of `url` goes opens within `timeout` seconds."""
    host, port = endpoint(url)
    if not host:
        return False
    opened: list[bool] = []
    done = threading.Event()

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                opened.append(True)
        except (OSError, UnicodeError):
            pass
        finally:
            done.set()

    threading.Thread(target=attempt, name="lists-probe", daemon=True).start()
    done.wait(timeout)
    return bool(opened)
