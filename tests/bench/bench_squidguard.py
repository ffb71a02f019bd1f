"""Benchmark: `poortwachter classify` against squidGuard, same lists, same 200,000 request lines.

Run:  .venv/bin/python tests/bench/bench_squidguard.py [--lines N] [--runs 3] [--profile]

What it does (all in a temporary directory, removed afterwards unless --keep):
 1. installs squidGuard with apt-get when it is missing (we are root on the gateway image),
    or prints SKIP and exits 0 when that is impossible;
 2. copies the forbidden UT1 lists (adult, agressif, hacking, malware, phishing, doh, vpn) and
    the sinfonietta pornography hosts file (converted to a squidGuard domains file) into a
    squidGuard dbhome, writes a squidGuard.conf and a Poortwachter policy that block exactly
    these lists for everyone, and compiles both (squidGuard -C all; poortwachter lists update).
    squidGuard gets the lists twice: cleaned with its own sgclean, as its lookup needs (see
    sgclean() below; the main comparison), and as given (to show what skipping that costs);
 3. generates a seeded mix of squid helper lines (hits, subdomain hits, URL-list hits, misses,
    near misses; http and CONNECT host:443; a few clients);
 4. runs each tool as a whole process over the same input file (stdin from the file, stdout to
    a file): one warm-up run, then --runs timed runs; reports median wall time, lines/s, the
    ratio Poortwachter/squidGuard, start-up time (empty input) and CPU time;
 5. compares the verdicts line by line (agreement), names the cause of every difference,
    prints a table and writes tests/bench/results/squidguard.json. --profile adds a cProfile
    of one classify run.

squidGuard 1.6 answers a pass with "ERR" and a block with `OK rewrite-url="..."` (the squid 3.4+
helper protocol); older versions answer a pass with an empty line and a block with the URL.
Both forms are parsed. squidGuard flushes after every answer; Poortwachter is run twice, with
--flush (as squid would drive it, the fair comparison) and without (buffered batch mode).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TEMPLATES = HERE / "squidguard"
RESULTS = HERE / "results" / "squidguard.json"
SHARED = REPO.parent / "shared"
UT1 = SHARED / "ut1" / "blacklists"
SINFONIETTA = SHARED / "lists" / "sinfonietta" / "pornography-hosts"

UT1_CATEGORIES = ("adult", "agressif", "hacking", "malware", "phishing", "doh", "vpn")
HOSTS_CATEGORY = "sinfonietta-porn"
LIST_FILES = ("domains", "urls", "expressions")
SCHOOL_CIDR = "10.20.0.0/16"
SEED = 20261121

# A host name as it may appear in a request line (what we sample from the lists).
HOST_RE = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?\.)+[a-z][a-z0-9-]*[a-z0-9]$|^\d+\.\d+\.\d+\.\d+$")
IPV4_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
# A URL-list entry usable in a squid line: printable ASCII, no space, no fragment.
URL_ENTRY_RE = re.compile(r"^[\x21-\x7e]+$")
# Names a hosts file maps for its own sake, not entries (same idea as the Poortwachter parser).
HOSTS_BOILERPLATE = {"localhost", "localhost.localdomain", "local", "broadcasthost", "0.0.0.0",
                     "ip6-localhost", "ip6-loopback", "ip6-localnet", "ip6-mcastprefix",
                     "ip6-allnodes", "ip6-allrouters", "ip6-allhosts"}


def say(text: str = "") -> None:
    print(text, flush=True)


# --- squidGuard: find or install ----------------------------------------------------------------
def ensure_squidguard() -> str | None:
    """Path of the squidGuard binary; installs the Debian package when missing and possible."""
    found = shutil.which("squidGuard")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        say("SKIP: squidGuard is not installed and cannot be installed here "
            "(needs root and apt-get: apt-get install squidguard)")
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "--no-install-recommends", "squidguard"]
    say("squidGuard missing, installing: apt-get " + " ".join(install[1:]))
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        # A fresh image has no package lists yet.
        subprocess.run([apt, "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL)
    found = shutil.which("squidGuard")
    if found is None:
        say("SKIP: installing squidGuard with apt-get failed (no Debian mirror reachable?)")
    return found


def squidguard_version(binary: str) -> str:
    proc = subprocess.run([binary, "-v"], capture_output=True, text=True)
    text = (proc.stdout + proc.stderr).strip()
    deb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "squidguard"], capture_output=True, text=True)
    if deb.returncode == 0 and deb.stdout:
        text += f" (Debian package {deb.stdout})"
    return text


# --- lists -> squidGuard dbhome and Poortwachter data dir ---------------------------------------
def hosts_to_domains(src: Path, dst: Path) -> int:
    """A hosts file ("0.0.0.0 name [name...]") as a squidGuard domains file: the names, one a line.

    Deliberately simple, like the sed one-liners schools use: no validation beyond skipping
    comments and the hosts boilerplate, so squidGuard sees what such a conversion gives it."""
    names: list[str] = []
    seen: set[str] = set()
    with open(src, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split("#", 1)[0].split()
            for name in fields[1:]:
                name = name.lower().rstrip(".")
                if name and name not in HOSTS_BOILERPLATE and name not in seen:
                    seen.add(name)
                    names.append(name)
    dst.write_text("".join(n + "\n" for n in names), encoding="utf-8")
    return len(names)


@dataclass
class ListSet:
    """The list files both tools get, per category: {category: {"domains"|"urls"|"expressions": path}}."""

    files: dict[str, dict[str, Path]] = field(default_factory=dict)

    @property
    def categories(self) -> list[str]:
        return sorted(self.files)


def build_dbhome(dbhome: Path) -> ListSet:
    lists = ListSet()
    for cat in UT1_CATEGORIES:
        (dbhome / cat).mkdir(parents=True)
        lists.files[cat] = {}
        for kind in LIST_FILES:
            src = UT1 / cat / kind
            if src.is_file() and src.stat().st_size > 0:
                dst = dbhome / cat / kind
                shutil.copyfile(src, dst)  # copied: squidGuard -C writes kind.db beside the list
                lists.files[cat][kind] = dst
    (dbhome / HOSTS_CATEGORY).mkdir()
    dst = dbhome / HOSTS_CATEGORY / "domains"
    hosts_to_domains(SINFONIETTA, dst)
    lists.files[HOSTS_CATEGORY] = {"domains": dst}
    return lists


def render(template: str, **values: str) -> str:
    return string.Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(values)


def clone_dbhome(src: Path, dst: Path, lists: ListSet) -> ListSet:
    shutil.copytree(src, dst)
    return ListSet({cat: {kind: dst / path.relative_to(src) for kind, path in files.items()}
                    for cat, files in lists.files.items()})


def sgclean(conf: Path) -> float:
    """squidGuard's own sgclean: drop entries covered by a listed parent domain / URL prefix.

    squidGuard's lookup (sgDb.c defined()) seeks to the first key >= the request and checks only
    that key and the one before it, so "forum.x.com" is missed when the list holds both "x.com"
    and "marine.x.com" (which sorts between them). Its lists must therefore be free of
    redundant entries; UT1 ships them so, hosts files are not. Returns seconds taken."""
    tool = shutil.which("sgclean")
    if tool is None:
        raise SystemExit("sgclean (part of the squidguard package) not found")
    seconds, proc = timed([tool, str(conf)])
    if proc.returncode != 0:
        raise SystemExit(f"sgclean failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds


def count_lines(paths: Iterable[Path]) -> int:
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            total += sum(1 for _ in f)
    return total


def write_squidguard_conf(work: Path, name: str, dbhome: Path, lists: ListSet) -> Path:
    keyword = {"domains": "domainlist", "urls": "urllist", "expressions": "expressionlist"}
    dests = []
    for cat in lists.categories:
        lines = "\n".join(f"\t{keyword[kind]}\t{cat}/{kind}" for kind in LIST_FILES if kind in lists.files[cat])
        dests.append(render("dest.in", name=cat, lines=lines).strip())
    conf = work / f"{name}.conf"
    logdir = work / f"{name}-log"
    logdir.mkdir()
    conf.write_text(render("squidGuard.conf.in", dbhome=str(dbhome), logdir=str(logdir), cidr=SCHOOL_CIDR,
                           dests="\n\n".join(dests), pass_list=" ".join(f"!{c}" for c in lists.categories)),
                    encoding="utf-8")
    return conf


def write_policy(work: Path, lists: ListSet) -> Path:
    categories = "\n".join(
        f'  {cat}:\n    title: "{cat} (benchmark)"\n    lists: [{cat}]\n    source: "bench"'
        for cat in lists.categories)
    policy = work / "policy.yaml"
    policy.write_text(render("policy.yaml.in", cidr=SCHOOL_CIDR, categories=categories,
                             category_names=", ".join(lists.categories)), encoding="utf-8")
    return policy


def poortwachter_cmd() -> list[str]:
    script = Path(sys.executable).with_name("poortwachter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "poortwachter.cli"]


def timed(cmd: Sequence[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - start, proc


def compile_squidguard(binary: str, conf: Path, dbhome: Path) -> float:
    for db in dbhome.rglob("*.db"):
        db.unlink()
    seconds, proc = timed([binary, "-c", str(conf), "-C", "all"])
    dbs = sorted(dbhome.rglob("*.db"))
    if proc.returncode != 0 or not dbs:
        raise SystemExit(f"squidGuard -C all failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds


def compile_poortwachter(data_dir: Path, lists: ListSet) -> tuple[float, str]:
    cmd = [*poortwachter_cmd(), "--data-dir", str(data_dir), "lists", "update", "--from", str(UT1),
           "--only", ",".join(UT1_CATEGORIES), "--hosts", f"{HOSTS_CATEGORY}={SINFONIETTA}"]
    seconds, proc = timed(cmd)
    if proc.returncode != 0:
        raise SystemExit(f"poortwachter lists update failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds, proc.stdout


# --- request lines --------------------------------------------------------------------------------
POPULAR = """google.com www.google.com youtube.com www.youtube.com i.ytimg.com fonts.gstatic.com
wikipedia.org nl.wikipedia.org en.wikipedia.org magister.net school.magister.net login.microsoftonline.com
outlook.office.com teams.microsoft.com www.office.com graph.microsoft.com itslearning.com
nos.nl www.nu.nl www.ad.nl www.rtlnieuws.nl www.knmi.nl www.rijksoverheid.nl duo.nl www.duo.nl
www.bol.com www.coolblue.nl www.marktplaats.nl www.ah.nl www.9292.nl www.ns.nl
www.wiskundeacademie.nl www.scholieren.com www.wrts.nl www.quizlet.com quizlet.com www.kahoot.it
kahoot.it www.duolingo.com github.com stackoverflow.com www.khanacademy.org
www.instagram.com www.tiktok.com www.snapchat.com web.whatsapp.com www.spotify.com open.spotify.com
apple.com www.apple.com gateway.icloud.com update.googleapis.com clients4.google.com
edge.microsoft.com settings-win.data.microsoft.com www.bing.com ajax.googleapis.com
cdn.jsdelivr.net cdnjs.cloudflare.com www.googletagmanager.com""".split()
SYLLABLES = ("ka ro mi tel van der berg huis werk school boek les klas net web data wolk vos "
             "zon maan ster licht stad dorp fiets trein bus lab info media nieuws sport kunst "
             "muziek taal reken geo bio chem natuur digi code leer plein").split()
TLDS = ("nl", "nl", "nl", "com", "com", "org", "net", "be", "de", "eu", "io", "info")
SUBDOMAINS = ("www", "m", "cdn", "static", "api", "img", "mail", "shop", "forum", "video", "app", "img3")
PATHS = ("/", "/", "/index.html", "/nieuws", "/over-ons", "/contact", "/zoeken?q=huiswerk",
         "/static/js/app.js", "/static/css/main.css", "/images/logo.png", "/api/v1/items",
         "/favicon.ico", "/robots.txt", "/login", "/artikel/")
CLIENTS = tuple(f"10.20.{3 + i // 4}.{11 + 17 * i}" for i in range(8)) + ("10.99.0.5",)  # the last: no zone

# (kind, share) of the generated lines; the shares add up to 1.
MIX: tuple[tuple[str, float], ...] = (
    ("popular", 0.50),          # well-known and generated sites, Zipf-distributed: the bulk of traffic
    ("long-tail", 0.10),        # unique generated hosts, never seen again
    ("domain-exact", 0.13),     # a listed domain as is
    ("domain-sub", 0.12),       # a subdomain of a listed domain
    ("near-miss", 0.03),        # a listed domain with a letter in front: not on a label boundary
    ("url-hit", 0.09),          # http URL matching a urls-list entry (exact, deeper, query, www.)
    ("url-host-only", 0.02),    # CONNECT to the host of a urls-list entry: no path visible
    ("url-no-boundary", 0.005), # urls-list entry + letters: "/awards" -> "/awardsx"
    ("ip-literal", 0.005),      # http to a raw IPv4 address (some urls entries and an expression are IPs)
)


def generated_name(rng: random.Random) -> str:
    label = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))
    if rng.random() < 0.2:
        label += str(rng.randint(1, 99))
    return f"{label}.{rng.choice(TLDS)}"


def read_entries(path: Path | None, pattern: re.Pattern[str]) -> list[str]:
    if path is None:
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        return [e for e in (line.strip().lower() for line in f) if e and not e.startswith("#") and pattern.match(e)]


@dataclass
class Requests:
    lines: list[str]
    kinds: list[str]


def host_line(rng: random.Random, host: str, client: str) -> str:
    """CONNECT host:443 (most traffic is https) or a plain http URL."""
    if rng.random() < 0.65:
        return f"{host}:443 {client}/- - CONNECT myip=10.20.0.1 myport=3128"
    return f"http://{host}{rng.choice(PATHS)} {client}/- - GET myip=10.20.0.1 myport=3128"


def url_line(url: str, client: str) -> str:
    return f"http://{url} {client}/- - GET myip=10.20.0.1 myport=3128"


def generate(lists: ListSet, n: int, seed: int) -> Requests:
    rng = random.Random(seed)
    domains = sorted({d for cat in lists.categories for d in read_entries(lists.files[cat].get("domains"), HOST_RE)})
    names = [d for d in domains if not IPV4_RE.match(d)]
    # Two labels ("vpnbook.com"): a letter in front ("xvpnbook.com") is then surely no subdomain
    # of a listed name (a longer listed name could have a listed parent).
    registrable = [d for d in names if d.count(".") == 1]
    # '#' starts the fragment, which a browser never sends: such entries cannot match traffic.
    urls = sorted({u for cat in lists.categories for u in read_entries(lists.files[cat].get("urls"), URL_ENTRY_RE)
                   if "/" in u and "#" not in u and HOST_RE.match(u.split("/", 1)[0])})
    popular = POPULAR + sorted({generated_name(rng) for _ in range(3000)})
    # Zipf-like weights: a few sites take most requests, as in a school's real traffic.
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(popular))]
    kinds = [k for k, _ in MIX]
    shares = [s for _, s in MIX]
    lines: list[str] = []
    kind_of: list[str] = []
    # Draw the popular hosts in one go (random.choices with weights is slow per call).
    popular_draws = iter(rng.choices(popular, weights=weights, k=n))
    client_weights = [3, 3, 2, 2, 2, 1, 1, 1, 0.3]
    for kind in rng.choices(kinds, weights=shares, k=n):
        client = rng.choices(CLIENTS, weights=client_weights)[0]
        if kind == "popular":
            line = host_line(rng, next(popular_draws), client)
        elif kind == "long-tail":
            line = host_line(rng, f"{rng.choice(SUBDOMAINS)}.{generated_name(rng)}".replace(".www.", "."), client)
        elif kind == "domain-exact":
            line = host_line(rng, rng.choice(domains), client)
        elif kind == "domain-sub":
            line = host_line(rng, f"{rng.choice(SUBDOMAINS)}.{rng.choice(names)}", client)
        elif kind == "near-miss":
            line = host_line(rng, rng.choice("xqz") + rng.choice(registrable), client)
        elif kind == "url-hit":
            url = rng.choice(urls)
            host, _, path = url.partition("/")
            r = rng.random()
            if r < 0.55:
                pass                                     # the entry itself
            elif r < 0.75:
                url = url + ("" if url.endswith("/") else "/") + rng.choice(("pagina.html", "a/b", "1"))
            elif r < 0.85:
                url = url + ("&" if "?" in url else "?") + "utm_source=bench"
            elif IPV4_RE.match(host) or host.startswith(("www.", "web.", "ftp.")):
                pass
            else:
                url = f"www.{host}/{path}"               # squidGuard and UT1 ignore a leading www.
            line = url_line(url, client)
        elif kind == "url-host-only":
            line = f"{rng.choice(urls).split('/', 1)[0]}:443 {client}/- - CONNECT myip=10.20.0.1 myport=3128"
        elif kind == "url-no-boundary":
            url = rng.choice(urls).rstrip("/")
            line = url_line(url + rng.choice(("x", "2024", "-old")), client)
        else:  # ip-literal
            ip = f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            path = rng.choice(("/search?q=" + str(rng.randint(1, 99999)), "/", "/index.php"))
            line = url_line(ip + path, client)
        lines.append(line)
        kind_of.append(kind)
    return Requests(lines, kind_of)


# --- running -----------------------------------------------------------------------------------
def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_over(cmd: Sequence[str], infile: Path, outfile: Path, cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one whole process reading infile and writing outfile."""
    cpu0 = children_cpu()
    with open(infile, "rb") as fin, open(outfile, "wb") as fout:
        start = time.perf_counter()
        proc = subprocess.run(cmd, stdin=fin, stdout=fout, stderr=subprocess.PIPE, cwd=cwd)
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
    return wall, children_cpu() - cpu0


def bench(commands: dict[str, list[str]], outputs: dict[str, Path], infile: Path, empty: Path,
          runs: int, cwd: Path) -> dict[str, dict[str, Any]]:
    """One warm-up each, then the timed runs round-robin, so a burst of load from other work on
    the machine does not fall on one tool only; then the start-up time on empty input."""
    for name, cmd in commands.items():
        say(f"  {name}: warm-up")
        run_over(cmd, infile, outputs[name], cwd)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(runs):
        for name, cmd in commands.items():
            wall, cpu = run_over(cmd, infile, outputs[name], cwd)
            walls[name].append(wall)
            cpus[name].append(cpu)
            say(f"  {name}: run {i + 1}/{runs}: {wall:.3f} s wall, {cpu:.3f} s cpu")
    result: dict[str, dict[str, Any]] = {}
    for name, cmd in commands.items():
        startup = statistics.median(run_over(cmd, empty, cwd / "empty.out", cwd)[0] for _ in range(runs))
        result[name] = {"wall_s": walls[name], "cpu_s": cpus[name], "median_s": statistics.median(walls[name]),
                        "median_cpu_s": statistics.median(cpus[name]), "startup_s": startup}
    return result


# --- verdicts -------------------------------------------------------------------------------------
SG_TARGET = re.compile(r"[?&]t=([^&\"\s]+)")


def squidguard_verdict(line: str) -> tuple[str, str]:
    """squidGuard 1.6: "ERR" = pass, 'OK rewrite-url="..."' / "OK status=30x url=..." = block.
    Before 1.5: an empty line = pass, "URL client/fqdn ident method" = block."""
    line = line.strip()
    if line in ("", "ERR") or line.startswith("ERR "):
        return "allow", "-"
    m = SG_TARGET.search(line)
    return "block", m.group(1) if m else "?"


def poortwachter_verdict(line: str) -> tuple[str, str]:
    fields = line.split()
    if not fields or fields[0] == "ERR":
        return "error", "-"
    return fields[0], fields[2] if len(fields) > 2 else "-"


def read_verdicts(path: Path, parse: Callable[[str], tuple[str, str]]) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return [parse(line) for line in f]


SG_WWW = re.compile(r"^(?:www|web|ftp)[0-9]*\.")


def sg_url_key(url: str) -> str:
    """A URL (with or without scheme) the way squidGuard keys its url lists: lower case, no port,
    no leading www./web./ftp."""
    url = url.lower().split("://", 1)[-1]
    host, slash, path = url.partition("/")
    host = SG_WWW.sub("", host.rsplit(":", 1)[0] if host.count(":") == 1 else host)
    return host + slash + path


@dataclass
class ListKeys:
    """What the lists hold, to name the cause of a difference (not used for any verdict)."""

    domains: set[str]
    url_keys: set[str]

    @classmethod
    def of(cls, lists: ListSet) -> ListKeys:
        domains: set[str] = set()
        urls: set[str] = set()
        for files in lists.files.values():
            for kind, target in (("domains", domains), ("urls", urls)):
                if kind in files:
                    with open(files[kind], encoding="utf-8", errors="replace") as f:
                        for line in f:
                            entry = line.strip().lower()
                            if entry and not entry.startswith("#"):
                                target.add(sg_url_key(entry) if kind == "urls" else entry)
        return cls(domains, urls)

    def listed_parent(self, host: str) -> bool:
        labels = host.split(".")
        return any(".".join(labels[i:]) in self.domains for i in range(1, len(labels) - 1))

    def listed_prefix(self, url: str) -> bool:
        key = sg_url_key(url)
        return any(key[:end] in self.url_keys for end in range(key.find("/") + 1, len(key) + 1))


def cause(kind: str, outcome: str, url: str, keys: ListKeys) -> str:
    """Why the tools disagree on one line, as far as the known systematic differences go."""
    authority = url.lower().split("://", 1)[-1].split("/", 1)[0]
    host = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
    path = "/" + url.split("://", 1)[-1].partition("/")[2]
    if outcome == "only-squidguard-blocks":
        if kind == "url-no-boundary":
            return "squidGuard url entries are plain string prefixes ('/awards' also blocks '/awardsx'); Poortwachter stops at /, ? and &"
        if host in keys.domains or keys.listed_parent(host):
            return ("a listed name Poortwachter drops as malformed or as two names glued together "
                    "('porn-beeg.comsex-xxx.fun')")
        return "other"
    if outcome == "poortwachter-error":
        return "request line Poortwachter rejects as malformed (ERR)"
    if "//" in path:
        return "'//' in the path: squidGuard never matches list entries with '//'"
    if "%" in path:
        return "percent-encoding: squidGuard decodes the request, not its list entries"
    if kind.startswith("url") and keys.listed_prefix(url):
        return ("squidGuard lookup miss: a listed URL prefix, but another entry sorts between it and "
                "the request (sgDb.c defined() looks one key back)")
    if keys.listed_parent(host):
        return ("squidGuard lookup miss: a listed parent domain, but a listed subdomain sorts between "
                "it and the request (list not cleaned with sgclean)")
    return "other"


def compare(reqs: Requests, pw: list[tuple[str, str]], sg: list[tuple[str, str]], keys: ListKeys) -> dict[str, Any]:
    if not (len(pw) == len(sg) == len(reqs.lines)):
        raise SystemExit(f"line counts differ: input {len(reqs.lines)}, poortwachter {len(pw)}, squidGuard {len(sg)}")
    outcome: Counter[str] = Counter()
    causes: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    examples: dict[str, list[str]] = {}
    same_category = both_block = 0
    for line, kind, (pa, pc), (sa, sc) in zip(reqs.lines, reqs.kinds, pw, sg):
        if pa == "error":
            key = "poortwachter-error"
        elif pa == sa:
            key = "both-block" if pa == "block" else "both-allow"
        else:
            key = "only-poortwachter-blocks" if pa == "block" else "only-squidguard-blocks"
        outcome[key] += 1
        by_kind.setdefault(kind, Counter())[key] += 1
        if key == "both-block":
            both_block += 1
            same_category += pc == sc
        elif key not in ("both-allow",):
            why = f"{key}: {cause(kind, key, line.split()[0], keys)}"
            causes[why] += 1
            ex = examples.setdefault(why, [])
            if len(ex) < 3:
                ex.append(f"{line.split()[0]}  ({kind}; poortwachter: {pa} {pc}; squidGuard: {sa} {sc})")
    total = len(reqs.lines)
    agree = outcome["both-block"] + outcome["both-allow"]
    return {
        "lines": total,
        "agreement": agree / total,
        "outcomes": dict(outcome),
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "same_category_when_both_block": same_category / both_block if both_block else None,
        "block_rate_poortwachter": sum(1 for a, _ in pw if a == "block") / total,
        "block_rate_squidguard": sum(1 for a, _ in sg if a == "block") / total,
        "causes": dict(causes.most_common()),
        "examples": examples,
    }


# --- profiling ------------------------------------------------------------------------------------
def profile_classify(policy: Path, data_dir: Path, infile: Path, work: Path, top: int = 20) -> dict[str, Any]:
    """cProfile of one classify run: Poortwachter's functions by cumulative time, all by own time."""
    import pstats

    prof = work / "classify.prof"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "poortwachter.cli",
           "--data-dir", str(data_dir), "classify", "--policy", str(policy)]
    run_over(cmd, infile, work / "profile.out", work)
    stats: Any = pstats.Stats(str(prof))
    rows = [{"function": f"{_short(file)}:{line}:{func}", "calls": nc, "own": tt, "cum": ct}
            for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items()]
    total: float = max(r["cum"] for r in rows)  # the whole run, as the outermost frame saw it

    def view(key: str, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        chosen = sorted((r for r in rows if keep(r)), key=lambda r: r[key], reverse=True)[:top]
        return [{"function": r["function"], "calls": r["calls"], "seconds": r[key], "share": r[key] / total}
                for r in chosen]

    return {"total_s": total,
            # Ours only: the interpreter's own frames (runpy, exec) would top the list at 100%.
            "cumulative": view("cum", lambda r: r["function"].startswith("poortwachter/")),
            "own": view("own", lambda r: True)}


def _short(file: str) -> str:
    for marker in ("/src/", "/site-packages/", "/lib/python3.12/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


# --- report ---------------------------------------------------------------------------------------
def print_agreement(title: str, a: dict[str, Any]) -> None:
    outcomes: dict[str, int] = a["outcomes"]
    same = a["same_category_when_both_block"] or 0.0
    say(f"{title}: {a['agreement'] * 100:.3f}% of lines agree "
        f"(both block {outcomes.get('both-block', 0)}, both allow {outcomes.get('both-allow', 0)}, "
        f"only Poortwachter blocks {outcomes.get('only-poortwachter-blocks', 0)}, "
        f"only squidGuard blocks {outcomes.get('only-squidguard-blocks', 0)}, "
        f"Poortwachter ERR {outcomes.get('poortwachter-error', 0)}); same category when both block: {same * 100:.2f}%")
    say(f"  block rate: Poortwachter {a['block_rate_poortwachter'] * 100:.2f}%, "
        f"squidGuard {a['block_rate_squidguard'] * 100:.2f}%")
    say(f"  {'kind':<16} {'lines':>7} {'both block':>11} {'both allow':>11} {'only PW':>8} {'only SG':>8} {'PW ERR':>7}")
    for kind, counts in a["by_kind"].items():
        say(f"  {kind:<16} {sum(counts.values()):>7} {counts.get('both-block', 0):>11} "
            f"{counts.get('both-allow', 0):>11} {counts.get('only-poortwachter-blocks', 0):>8} "
            f"{counts.get('only-squidguard-blocks', 0):>8} {counts.get('poortwachter-error', 0):>7}")
    if a["causes"]:
        say("  differences by cause, with examples:")
        for why, count in a["causes"].items():
            say(f"    {count:>6}  {why}")
            for line in a["examples"].get(why, []):
                say(f"              {line}")


def print_report(result: dict[str, Any]) -> None:
    timing: dict[str, dict[str, Any]] = result["timing"]
    n: int = result["lines"]
    c: dict[str, Any] = result["compile"]
    say()
    say(f"squidGuard: {result['squidguard_version']}")
    say(f"input: {n} lines ({result['input_bytes'] / 1e6:.1f} MB), seed {result['seed']}, "
        f"{result['runs']} timed runs each after one warm-up; {result['machine']}; "
        f"load average before/after: {result['loadavg_before']} / {result['loadavg_after']}")
    say(f"lists: {c['squidguard_entries_raw']} domain and url entries as given, "
        f"{c['squidguard_entries_clean']} after sgclean")
    say(f"compile: squidGuard -C all {c['squidguard_s']:.2f} s (+ sgclean {c['sgclean_s']:.2f} s); "
        f"poortwachter lists update {c['poortwachter_s']:.2f} s")
    say()
    say(f"{'process over the whole input':<30} {'median s':>9} {'cpu s':>7} {'start s':>8} {'lines/s':>10} {'vs squidGuard':>13}")
    sg = timing["squidguard"]["median_s"]
    for name, row in timing.items():
        say(f"{name:<30} {row['median_s']:>9.3f} {row['median_cpu_s']:>7.3f} {row['startup_s']:>8.3f} "
            f"{n / row['median_s']:>10,.0f} {row['median_s'] / sg:>12.2f}x")
    say("ratio Poortwachter/squidGuard, median wall: "
        + ", ".join(f"{k} {v:.2f}" for k, v in result["ratio_poortwachter_over_squidguard"].items())
        + "; median cpu: "
        + ", ".join(f"{k} {v:.2f}" for k, v in result["cpu_ratio_poortwachter_over_squidguard"].items())
        + f"  (goal < {result['ratio_goal']:.2f})")
    say("steady state (wall minus start-up), lines/s: "
        + ", ".join(f"{k} {v:,.0f}" for k, v in result["steady_state_lines_per_s"].items()))
    say()
    for title, agreement in result["agreement"].items():
        print_agreement(title, agreement)
        say()
    profile = result.get("profile")
    if profile:
        say(f"cProfile of poortwachter classify ({profile['total_s']:.2f} s under the profiler)")
        for heading, rows in (("by cumulative time", profile["cumulative"]), ("by own time", profile["own"])):
            say(f"  {heading}:")
            for row in rows:
                say(f"    {row['share'] * 100:5.1f}%  {row['seconds']:7.3f} s  {row['calls']:>9}  {row['function']}")


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--at", help="pass --at TIME to classify (default: the system clock, as in production)")
    parser.add_argument("--profile", action="store_true", help="also run classify under cProfile and report where time goes")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    for needed in (UT1, SINFONIETTA):
        if not needed.exists():
            say(f"SKIP: {needed} not found (shared lists missing)")
            return 0
    binary = ensure_squidguard()
    if binary is None:
        return 0
    version = squidguard_version(binary)
    say(f"squidGuard: {version}")

    work = Path(tempfile.mkdtemp(prefix="pw-bench-squidguard-"))
    try:
        say("preparing lists and configurations")
        raw_home = work / "db-raw"
        raw_lists = build_dbhome(raw_home)
        clean_home = work / "db"
        clean_lists = clone_dbhome(raw_home, clean_home, raw_lists)
        raw_conf = write_squidguard_conf(work, "squidGuard-raw", raw_home, raw_lists)
        conf = write_squidguard_conf(work, "squidGuard", clean_home, clean_lists)
        sgclean_s = sgclean(conf)
        policy = write_policy(work, raw_lists)
        data_dir = work / "pwdata"
        check = subprocess.run([*poortwachter_cmd(), "check-policy", str(policy)], capture_output=True, text=True)
        if check.returncode != 0:
            raise SystemExit(f"bench policy invalid: {check.stdout}{check.stderr}")

        say("compiling lists")
        sg_compile = compile_squidguard(binary, conf, clean_home)
        compile_squidguard(binary, raw_conf, raw_home)
        pw_compile, pw_table = compile_poortwachter(data_dir, raw_lists)
        say(f"  squidGuard -C all: {sg_compile:.2f} s (sgclean before it: {sgclean_s:.2f} s); "
            f"poortwachter lists update: {pw_compile:.2f} s")

        say(f"generating {args.lines} request lines (seed {args.seed})")
        reqs = generate(raw_lists, args.lines, args.seed)  # hits drawn from the lists as given
        infile = work / "requests.txt"
        infile.write_text("".join(line + "\n" for line in reqs.lines), encoding="ascii")
        empty = work / "empty.txt"
        empty.write_bytes(b"")

        classify = [*poortwachter_cmd(), "--data-dir", str(data_dir), "classify", "--policy", str(policy)]
        if args.at:
            classify += ["--at", args.at]
            os.environ["POORTWACHTER_TEST_CLOCK"] = "1"   # classify --at: refused outside tests
        commands = {
            "squidguard": [binary, "-c", str(conf)],
            "squidguard (raw lists)": [binary, "-c", str(raw_conf)],
            "poortwachter --flush": classify + ["--flush"],
            "poortwachter (buffered)": classify,
        }
        outputs = {name: work / (re.sub(r"\W+", "_", name).strip("_") + ".out") for name in commands}
        say("running")
        load_before = loadavg()
        timing = bench(commands, outputs, infile, empty, args.runs, work)
        load_after = loadavg()
        if outputs["poortwachter --flush"].read_bytes() != outputs["poortwachter (buffered)"].read_bytes():
            raise SystemExit("poortwachter gave different verdicts with and without --flush")
        pw = read_verdicts(outputs["poortwachter --flush"], poortwachter_verdict)
        keys = ListKeys.of(raw_lists)
        agreement = {
            "agreement with squidGuard (lists cleaned with sgclean)":
                compare(reqs, pw, read_verdicts(outputs["squidguard"], squidguard_verdict), keys),
            "agreement with squidGuard (lists as given, not cleaned)":
                compare(reqs, pw, read_verdicts(outputs["squidguard (raw lists)"], squidguard_verdict), keys),
        }
        sg_problems = [line for log in work.glob("squidGuard*-log/*.log")
                       for line in log.read_text(errors="replace").splitlines()
                       if "ERROR" in line or "WARN" in line or "FATAL" in line or "emergency" in line.lower()]
        sg_median = timing["squidguard"]["median_s"]
        raw_files = [p for files in raw_lists.files.values() for k, p in files.items() if k != "expressions"]
        clean_files = [p for files in clean_lists.files.values() for k, p in files.items() if k != "expressions"]
        result: dict[str, Any] = {
            "benchmark": "poortwachter classify vs squidGuard",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}",
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "squidguard_version": version,
            "lines": args.lines,
            "input_bytes": infile.stat().st_size,
            "seed": args.seed,
            "runs": args.runs,
            "mix": dict(MIX),
            "kinds": dict(Counter(reqs.kinds)),
            "categories": raw_lists.categories,
            "compile": {"squidguard_s": sg_compile, "sgclean_s": sgclean_s, "poortwachter_s": pw_compile,
                        "squidguard_entries_raw": count_lines(raw_files),
                        "squidguard_entries_clean": count_lines(clean_files),
                        "poortwachter_lists": pw_table.strip().splitlines()},
            "timing": timing,
            "lines_per_s": {name: args.lines / row["median_s"] for name, row in timing.items()},
            "steady_state_lines_per_s": {
                name: args.lines / max(row["median_s"] - row["startup_s"], 1e-9) for name, row in timing.items()},
            "ratio_poortwachter_over_squidguard": {
                name: row["median_s"] / sg_median for name, row in timing.items() if name.startswith("poortwachter")},
            "cpu_ratio_poortwachter_over_squidguard": {
                name: row["median_cpu_s"] / timing["squidguard"]["median_cpu_s"]
                for name, row in timing.items() if name.startswith("poortwachter")},
            "ratio_goal": 1 / 3,
            "agreement": agreement,
            "squidguard_log_problems": sg_problems[:20],
        }
        if args.profile:
            say("profiling poortwachter classify (cProfile)")
            result["profile"] = profile_classify(policy, data_dir, infile, work)
        print_report(result)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        say(f"written: {args.output}")
    finally:
        if args.keep:
            say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
