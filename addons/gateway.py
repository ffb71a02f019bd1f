"""Entry script for mitmdump: `mitmdump -s addons/gateway.py --set poortwachter_policy=...`."""

import logging
import sys

from poortwachter_addons import build

# Poortwachter's own log lines go to stderr whatever mitmproxy's termlog verbosity is; they never
# carry client addresses or URLs, so the proxy's chatter (which does) can be kept at "error".
_log = logging.getLogger("poortwachter")
if not _log.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s poortwachter %(levelname)s %(message)s"))
    _log.addHandler(_handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False

addons = build()
