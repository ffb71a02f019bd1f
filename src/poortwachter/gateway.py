"""The gateway's decision engine at run time: the current policy, lists and state, and their reloads.

Shared by the mitmproxy addons and the CLI (`explain`, `classify`), so both give exactly the same
verdict. Knows nothing about mitmproxy; the addons feed it hosts and paths.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

from .clock import Clock, system_clock
from .decide import Categorizer, Context, Request, Verdict, decide, refusal, stricter, zone_for
from .lists.ensure import missing_lists
from .lists.index import CategoryIndex
from .lists.install import lists_dir
from .paths import file_stamp as _stamp
from .policy.compiled import CompiledPolicy
from .policy.load import PolicyError, load_policy
from .state import EMPTY, State

log = logging.getLogger("poortwachter")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Reload:
    ok: bool
    generation: int
    error: str = ""


@dataclass(frozen=True)
class Prepared:
    """A policy read and compiled (off the proxy's event loop), not yet in force."""

    stamp: tuple[int, int, int] | None      # the file as it was before it was read
    policy: CompiledPolicy | None
    error: str = ""


SETTLE = 2.0     # seconds a changed policy file must stay unchanged before it is read


@functools.lru_cache(maxsize=65536)
def client_address(text: str) -> IPAddress:
    """Peer address as the proxy sees it; an IPv4-mapped IPv6 address is the IPv4 client it is."""
    addr = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class Engine:
    def __init__(self, policy_file: Path, data_dir: Path | None, clock: Clock = system_clock) -> None:
        self.policy_file = Path(policy_file)
        self.data_dir = data_dir
        self.clock = clock
        self.index: CategoryIndex = CategoryIndex.empty()
        self.state: State = EMPTY
        self._policy_stamp: tuple[int, int, int] | None = None
        self._lists_stamp: tuple[int, int, int] | None = None
        self._index_generation: str | None = None
        self._pending: tuple[tuple[int, int, int] | None, float] | None = None   # a change and when it was seen
        stamp = _stamp(self.policy_file)
        self.generation = 1
        self.policy = CompiledPolicy(load_policy(self.policy_file), 1)  # raises PolicyError: never start on a bad one
        self._policy_stamp = stamp
        self.reload_lists()
        self.ctx = self._context()

    # --- loading -------------------------------------------------------------------------
    def reload_due(self, now: float, settle: float = SETTLE) -> bool:
        """Has the policy file changed since it was read, and then stayed the same for `settle`
        seconds (monotonic `now`)? A file caught while it is being written is never read: an
        editor or a tool that writes it in place changes it again within the settle time."""
        stamp = _stamp(self.policy_file)
        if stamp == self._policy_stamp:
            self._pending = None
            return False
        if self._pending is None or self._pending[0] != stamp:
            self._pending = (stamp, now)
            return False
        return now - self._pending[1] >= settle

    def prepare(self) -> Prepared:
        """Read and compile the policy file as it is now, without touching what is in force (safe
        in a thread: compiling a large policy must not stall the proxy)."""
        stamp = _stamp(self.policy_file)
        try:
            policy = CompiledPolicy(load_policy(self.policy_file), self.generation + 1)
        except PolicyError as exc:
            return Prepared(stamp, None, str(exc))
        problem = unlocked(self.policy, policy, str(self.policy_file))
        if problem:
            return Prepared(stamp, None, problem)
        return Prepared(stamp, policy)

    def install(self, prepared: Prepared) -> Reload:
        """Put a prepared policy in force, or keep the one in force and say why not. Either way
        the file as it was read counts as seen: a failed one is not read again until it changes."""
        self._policy_stamp = prepared.stamp
        self._pending = None
        if prepared.policy is None:
            return Reload(False, self.generation, prepared.error)
        self.generation += 1
        prepared.policy.generation = self.generation
        self.policy = prepared.policy
        self.ctx = self._context()
        return Reload(True, self.generation)

    def _context(self) -> Context:
        missing = self.missing_lists()
        if missing:
            mode = self.policy.missing_lists
            log.warning("lists named in the policy are not installed or empty (lijsten ontbreken): %s; "
                        "run `poortwachter lists update`; settings.missing_lists is %s: %s", ", ".join(missing),
                        mode, "only the school environment is reachable (alleen de schoolomgeving)"
                        if mode == "block" else "the categories of these lists are not blocked (NIET gefilterd)")
        return Context(self.policy, Categorizer(self.policy, self.index), self.state,
                       not_ready=bool(missing) and self.policy.missing_lists == "block")

    def missing_lists(self) -> list[str]:
        """Lists the policy names that are not installed, or installed without an entry."""
        return missing_lists(self.policy.list_to_categories, self.index.sizes())

    def reload_policy(self) -> Reload:
        """Load the policy file again now (the console, the CLI); on any error keep the policy in
        force and say why."""
        return self.install(self.prepare())

    def reload_lists(self) -> bool:
        """Swap in a newly installed list index, if `lists update` installed one."""
        if self.data_dir is None:
            return False
        directory = lists_dir(self.data_dir)
        stamp = _stamp(directory / "manifest.json")
        if stamp is None or stamp == self._lists_stamp:
            return False
        self._lists_stamp = stamp
        try:
            index = CategoryIndex.load(directory)
        except FileNotFoundError:
            return False
        except Exception as exc:  # a broken install must never take the gateway down
            log.error("list index not loaded (lijsten niet geladen): %s", type(exc).__name__)
            return False
        if index.generation == self._index_generation:
            return False
        self.index = index
        self._index_generation = index.generation
        if hasattr(self, "ctx"):
            self.ctx = self._context()
        return True

    def policy_changed(self) -> bool:
        return _stamp(self.policy_file) != self._policy_stamp

    def set_state(self, state: State) -> None:
        self.state = state
        self.ctx = Context(self.policy, self.ctx.categorizer, state, self.ctx.not_ready)

    # --- deciding ------------------------------------------------------------------------
    def decide(self, client: IPAddress, host: str, path: str | None = None) -> Verdict:
        return decide(Request(client, host, path), self.ctx, self.clock())

    def decide_all(self, client: IPAddress, hosts: list[str], path: str | None = None) -> Verdict:
        """Several names for one connection (CONNECT target, SNI, Host header): the stricter verdict."""
        now = self.clock()
        ctx = self.ctx
        verdict = decide(Request(client, hosts[0], path), ctx, now)
        for i in range(1, len(hosts)):
            if hosts[i] not in hosts[:i]:
                verdict = stricter(verdict, decide(Request(client, hosts[i], path), ctx, now))
        return verdict

    def undecrypted(self, host: str) -> bool:
        return self.policy.undecrypted(host, self.ctx.categorizer.host(host))

    def decide_name(self, client: IPAddress, host: str) -> Verdict:
        """A name a client asks the school's resolver for. In intercept zones the proxy decides on
        the full URL later, so a name is refused here only when its front page would be (a rule
        on one path of a site must not take the whole site off the air); elsewhere the name
        decides, as it does for passthrough TLS."""
        zone = zone_for(self.policy, client)
        path = "/" if zone.inspection == "intercept" and not self.undecrypted(host) else None
        return self.decide(client, host, path)

    def _shut_out(self, client: IPAddress) -> bool:
        """decide's refusals of the client itself (an exclusion, an unknown client where the policy
        refuses those) close services and ECH too."""
        if self.policy.refuse_unknown and self.policy.zone_of(client) is None:
            return True
        state = self.ctx.state
        return state.any and state.ban_for(client, self.clock()) is not None

    def refuse(self, client: IPAddress, rule: str, host: str | None = None) -> Verdict:
        """A refusal on how a connection is made (see decide.refusal), at the engine's time."""
        return refusal(self.ctx, client, rule, self.clock(), host)

    def ech(self, client: IPAddress, front: str) -> Verdict:
        """A TLS connection to an ECH front: its real destination is hidden; the zone decides."""
        if zone_for(self.policy, client).ech == "allow" and not self._shut_out(client):
            verdict = self.refuse(client, ECH_HIDDEN, front)
            return verdict._replace(action="allow", rule=ECH_ALLOWED)
        return self.refuse(client, ECH_HIDDEN, front)

    def service(self, client: IPAddress, host: str, port: int, protocol: str = "tcp") -> Verdict | None:
        """The allowing verdict of a service that covers this stream, or None."""
        if self._shut_out(client):
            return None
        found = self.policy.service_for(zone_for(self.policy, client), host, port, protocol)
        if found is None:
            return None
        verdict = self.refuse(client, "dienst", host)
        return verdict._replace(action="allow", rule=f"dienst:{found.name}", source=found.source)


def unlocked(old: CompiledPolicy, new: CompiledPolicy, file: str) -> str:
    """Why `new` may not replace `old`: it would stop a category that nobody may open (malware,
    phishing: `overridable: false`) from being blocked, and does not say so in `settings.unlock`.
    Empty when it may."""
    lost = sorted(name for name in old.locked if name not in new.locked and name not in new.settings.unlock)
    if not lost:
        return ""
    return (f"{file}: settings.unlock: dit beleid zou niet-te-openen categorieën vrijgeven "
            f"({', '.join(lost)}); noem ze in settings.unlock als dat de bedoeling is / this policy would stop "
            f"blocking categories that can never be opened ({', '.join(lost)}); name them in settings.unlock "
            f"if that is meant")


# Rules of verdicts on how a connection is made (block pages, metrics and audit name them).
ECH_HIDDEN = "ech-verborgen-bestemming"     # a TLS connection to an ECH front: destination hidden
ECH_ALLOWED = "ech-toegestaan"              # the same, where the zone allows it
NOT_WEB = "geen-webverkeer"                 # a stream that is not HTTP, or TLS without HTTP
PORT_CLOSED = "poort-niet-toegestaan"       # a CONNECT to a port the policy does not open
