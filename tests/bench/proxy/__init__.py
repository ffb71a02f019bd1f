"""Helpers of the proxy benchmark (tests/bench/bench_proxy.py): upstream server, proxies, load client."""
