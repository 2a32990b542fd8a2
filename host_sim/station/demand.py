"""Who comes to the station, when, and what code they show: all drawn from the seed.

- `keys(seed, label)`: a P-256 signer derived from the seed, so one seed means the same keys
  (and the same public keys in every list and registry) on every run. ECDSA signatures from
  OpenSSL still use a random k: they never reach a report.
- `Arrivals`: a non-homogeneous Poisson process whose rate follows a lane group's profile
  through the day (rush hour), sampled by thinning.
- `Population`: riders' phones (made on first use), the riders with expired credentials, the
  forger, and `code(...)`, which mints the text a phone shows and remembers the truth about it
  (`CodeInfo`) for the invariant checks. The behaviour mix (`MIX_KINDS`) is drawn per arrival.
"""

import hashlib
import math
import random
from typing import Any

from drivers.linux.crypto_openssl import OpenSSLSigner, signer
from host_sim.wallet import Issuer, Rider
from protocol import p256

MIX_KINDS = (
    "valid",
    "expired",
    "forged",
    "screenshot",
    "denied",
    "tailgating",
    "clock_off",
    "cloned",
    "dodger",
)
CLONE_POOL = 12  # accounts whose key is on two phones (the last of the reserved share)
DODGER_POOL = 12  # fare dodgers' accounts (just below the clones')
CLONE_COUNTER = 100_000  # where a clone's counter starts
FIRST_ACCOUNT = 100_000
EXPIRED_POOL = 200  # riders whose credential ended yesterday
FORGER_POOL = 50  # forged credentials in circulation


def keys(seed: int, label: str) -> OpenSSLSigner:
    """The signer for `label` under `seed` (same seed, same key)."""
    h = hashlib.sha256(("faregate-sim|%d|%s" % (seed, label)).encode()).digest()
    return signer(int.from_bytes(h, "big") % (p256.N - 1) + 1)


def stream(seed: int, name: str) -> random.Random:
    """An independent random stream per purpose, so adding faults does not move arrivals."""
    return random.Random("%d:%s" % (seed, name))


def profile_at(profile: list[list[float]], t: int) -> float:
    """The profile's fraction at unix time t (hours of the UTC day, linear in between)."""
    hour = (t % 86400) / 3600.0
    for (h0, f0), (h1, f1) in zip(profile, profile[1:]):
        if h0 <= hour <= h1:
            return f0 if h1 == h0 else f0 + (f1 - f0) * (hour - h0) / (h1 - h0)
    return profile[-1][1]


class Arrivals:
    """Arrival times (unix seconds, float) of one lane group: rate = peak x profile(t)."""

    def __init__(self, peak_per_hour: float, profile: list[list[float]], rng: random.Random):
        self.profile = profile
        self.rng = rng
        self.top = max(f for _h, f in profile)
        self.max_rate = peak_per_hour * self.top / 3600.0  # per second

    def rate(self, t: float) -> float:
        return self.max_rate * profile_at(self.profile, int(t)) / self.top

    def next(self, t: float, end: float) -> float | None:
        """The first arrival after t, or None if none before end."""
        if self.max_rate <= 0:
            return None
        while True:
            t += -math.log(1.0 - self.rng.random()) / self.max_rate
            if t >= end:
                return None
            if self.rng.random() * self.max_rate <= self.rate(t):
                return t


class CodeInfo:
    """The truth about one minted code, for the invariant checks (never shown to a gate)."""

    __slots__ = (
        "kind",
        "account",
        "cred_no",
        "counter",
        "ptime",
        "valid_from",
        "valid_until",
        "forged",
    )

    def __init__(self, kind, account, cred_no, counter, ptime, valid_from, valid_until, forged):
        self.kind = kind
        self.account = account
        self.cred_no = cred_no
        self.counter = counter
        self.ptime = ptime
        self.valid_from = valid_from
        self.valid_until = valid_until
        self.forged = forged

    def presentation(self) -> tuple[int, int, int]:
        return (self.account, self.cred_no, self.counter)


class Person:
    __slots__ = ("account", "rider", "valid_from", "valid_until", "forged")

    def __init__(self, account, rider, valid_from, valid_until, forged=False):
        self.account = account
        self.rider = rider
        self.valid_from = valid_from
        self.valid_until = valid_until
        self.forged = forged


class Population:
    def __init__(
        self, seed: int, scenario: dict[str, Any], issuer: Issuer, start: int,
        issuers: list[Issuer] | None = None,
    ) -> None:  # fmt: skip
        """`issuers`: every issuer riders hold credentials of (default [issuer]); account a's
        credential is issuer number a % len(issuers)'s."""
        self.seed = seed
        cfg = scenario["riders"]
        self.size = int(cfg["population"])
        self.issuer = issuer
        self.issuers = issuers or [issuer]
        self.start = start
        self.valid_from = start - 86400
        self.valid_until = start + int(cfg["credential_days"]) * 86400
        self.forger = Issuer(issuer.key_id, keys(seed, "forger"))
        self._people: dict[tuple[str, int], Person] = {}
        self.codes: dict[str, CodeInfo] = {}
        self._clones: dict[tuple[str, int], Any] = {}
        self.minted = 0

    def issuer_of(self, account: int) -> Issuer:
        return self.issuers[account % len(self.issuers)]

    def account(self, i: int) -> int:
        return FIRST_ACCOUNT + i

    def person(self, pool: str, i: int) -> Person:
        """A phone with its credential: pool "rider" (index into the population), "commuter"
        (trips.py; accounts of their own), "expired" or "forged" (a credential for a population
        account, signed by the forger)."""
        key = (pool, i)
        p = self._people.get(key)
        if p is None:
            rider = Rider(keys(self.seed, "%s-%d" % key))
            if pool == "expired":
                account = FIRST_ACCOUNT + self.size + i
                vf, vu = self.start - 30 * 86400, self.start - 86400 + (i % 3600)
                self.issuer_of(account).issue(rider, account, vf, vu)
            elif pool == "commuter":  # accounts of their own, after the expired ones
                account = FIRST_ACCOUNT + self.size + EXPIRED_POOL + i
                vf, vu = self.valid_from, self.valid_until
                self.issuer_of(account).issue(rider, account, vf, vu)
            elif pool == "forged":
                account = self.account(i * 7919 % self.size)
                vf, vu = self.valid_from, self.valid_until
                self.forger.issue(rider, account, vf, vu)
            else:
                account = self.account(i)
                vf, vu = self.valid_from, self.valid_until
                self.issuer_of(account).issue(rider, account, vf, vu)
            p = self._people[key] = Person(account, rider, vf, vu, pool == "forged")
        return p

    def clone(self, p: Person) -> Any:
        """A second phone holding p's key and credential, counting on its own from
        CLONE_COUNTER (above the first phone's: the two never show one counter)."""
        key = ("clone", p.account)
        c = self._clones.get(key)
        if c is None:
            c = self._clones[key] = Rider(p.rider.signer, p.rider.credential, CLONE_COUNTER)
        return c

    def code(self, p: Person, kind: str, now: int, clock_off: int = 0, rider: Any = None) -> str:
        """The code p's phone (or `rider`, a clone of it) shows at true time `now` (its clock
        off by clock_off seconds)."""
        r = rider or p.rider
        ptime = now + clock_off
        text = r.present(ptime)
        self.codes[text] = CodeInfo(
            kind, p.account, 1, r.counter, ptime, p.valid_from, p.valid_until, p.forged
        )
        self.minted += 1
        return text


class DenyPlan:
    """Which accounts the operator denies, and when: the provisioned snapshot (version 1) and a
    delta every `publish_every_s` (versions 2, 3, ...). `version_of[account]` is the list
    version that first denies it."""

    def __init__(self, scenario: dict[str, Any], start: int, end: int, rng: random.Random):
        cfg = scenario["denylist"]
        size = int(scenario["riders"]["population"])
        self.deltas: list[tuple[int, int, list[int]]] = []  # (time, version, accounts)
        every = int(cfg["publish_every_s"])
        n_deltas = (end - start) // every if every else 0
        want = int(cfg["initial"]) + n_deltas * int(cfg["per_delta"])
        picks = rng.sample(range(size), min(want, size))
        accounts = [FIRST_ACCOUNT + i for i in picks]
        first = accounts[: int(cfg["initial"])]
        self.initial = sorted(first)
        self.version_of = {a: 1 for a in first}
        rest = accounts[len(first) :]
        for k in range(n_deltas):
            batch = sorted(rest[k * int(cfg["per_delta"]) : (k + 1) * int(cfg["per_delta"])])
            version = k + 2
            self.deltas.append((start + (k + 1) * every, version, batch))
            for a in batch:
                self.version_of[a] = version
        self.published = 1  # the newest version the back office publishes so far

    def denied_now(self) -> list[int]:
        """Accounts on the published list (sorted)."""
        return sorted(a for a, v in self.version_of.items() if v <= self.published)
