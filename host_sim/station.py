"""A simulated station: gates running the real firmware, riders, and the back office.

`run(scenario, seed)` builds everything in a work directory, plays the riders through the gates
on a virtual clock, syncs every gate to the back office over real TCP, and returns a report.
The same seed gives the same report.
"""

import os
import random
from typing import Any

from drivers.crypto_openssl import OpenSSLSigner, OpenSSLVerifier, generate_key
from drivers.link_tcp import sync_once
from drivers.qrengine_serial import SerialQREngine
from firmware.gate import Gate
from firmware.journal import Journal
from firmware.policy import Passback
from firmware.sync_client import SyncClient
from firmware.validator import IssuerKey, Validator
from host_sim.hardware import ManualClock, PtyQREngine, SimBarrier, SimDisplay
from host_sim.sync_server import BackOfficeThread, HostKeys
from host_sim.wallet import Issuer, Rider

DEFAULTS: dict[str, Any] = {
    "name": "default",
    "start": 1_767_254_400,  # 2026-01-01T08:00:00Z
    "gates": 4,
    "riders": 50,
    "passages": 400,
    "sync_every": 100,
    "mix": {"valid": 0.88, "forged": 0.04, "expired": 0.04, "replay": 0.04},
}


def run(scenario: dict[str, Any], seed: int, workdir: str) -> dict[str, Any]:
    cfg = dict(DEFAULTS)
    cfg.update(scenario)
    rng = random.Random(seed)
    os.makedirs(workdir, exist_ok=True)
    clock = ManualClock(int(cfg["start"]))
    issuer = Issuer(key_id=1)
    trust = {1: IssuerKey(1, issuer.public_key)}
    forger = Issuer(key_id=1)  # same key id, different key: a forged code
    riders = []
    for i in range(int(cfg["riders"])):
        r = Rider()
        issuer.issue(
            r, account_id=1000 + i, valid_from=clock.now() - 3600, valid_until=clock.now() + 86400
        )
        riders.append(r)
    expired = Rider()
    issuer.issue(
        expired, account_id=9999, valid_from=clock.now() - 7200, valid_until=clock.now() - 3600
    )
    fake = Rider()
    forger.issue(fake, account_id=6666, valid_from=clock.now() - 60, valid_until=clock.now() + 3600)

    verifier = OpenSSLVerifier()
    operator = OpenSSLSigner(generate_key())  # the operator's sync key
    bo = BackOfficeThread(
        os.path.join(workdir, "backoffice.sqlite"), HostKeys(operator, verifier), clock=clock
    )
    device_keys = {}
    # Even gates are entry lines, odd ones exit lines; they share one anti-passback table, as
    # the gates of a station do over its LAN.
    passback = Passback()
    gates = []
    for g in range(int(cfg["gates"])):
        d = os.path.join(workdir, "gate%d" % g)
        os.makedirs(d, exist_ok=True)
        device_keys[100 + g] = OpenSSLSigner(generate_key())
        bo.store.add_device(100 + g, device_keys[100 + g].public_key, clock.now())
        gates.append(
            Gate(
                Validator(verifier, trust),
                Journal(d, device_id=100 + g),
                SimBarrier(),
                SimDisplay(),
                clock,
                station=1,
                direction=1 + g % 2,
                policy=passback,
                ticks=clock.ticks_ms,
            )
        )
    inside: set[int] = set()  # riders who entered and have not exited
    # Gate 0 reads its codes through a QR engine on a pty, over pyserial.
    engine = PtyQREngine()
    scanner = SerialQREngine(engine.path)

    def sync(gate: Gate) -> int:
        client = SyncClient(
            gate.journal,
            device_keys[gate.journal.device_id],
            verifier,
            operator.public_key,
            clock,
        )
        return sync_once(client, "127.0.0.1", bo.port)

    mix = cfg["mix"]
    kinds = list(mix)
    weights = [mix[k] for k in kinds]
    last_code: str | None = None
    synced = 0
    opened_without_valid = 0
    for n in range(int(cfg["passages"])):
        clock.advance(rng.randint(1, 4))
        kind = rng.choices(kinds, weights)[0]
        if kind == "forged":
            text = fake.present(clock.now())
        elif kind == "expired":
            text = expired.present(clock.now())
        elif kind == "replay" and last_code:
            text = last_code
        else:
            ri = rng.randrange(len(riders))
            text = riders[ri].present(clock.now())
            last_code = text
        if kind in ("forged", "expired", "replay"):
            gi = rng.randrange(len(gates))
        else:  # a rider outside looks for an entry line, one inside for an exit line
            want = 2 if ri in inside else 1
            gi = rng.choice([i for i, g in enumerate(gates) if g.direction == want])
            inside.symmetric_difference_update({ri})
        gate = gates[gi]
        if gi == 0:
            engine.show(text)
            text = scanner.read(timeout_s=2.0) or ""
        before = gate.barrier.openings
        decision = gate.on_scan(text)
        if gate.barrier.openings != before and (
            not decision.accept or kind in ("forged", "expired")
        ):
            opened_without_valid += 1
        if decision.accept:  # the rider walks through: the beams see one passage
            for event in ("occupied", "passage_fwd", "clear"):
                gate.on_event(event)
        if (n + 1) % int(cfg["sync_every"]) == 0:
            synced += sum(sync(g) for g in gates)
    synced += sum(sync(g) for g in gates)

    admitted = sum(g.barrier.openings for g in gates)
    rejects: dict[str, int] = {}
    for gate in gates:
        for reason, count in gate.counts.items():
            if reason != "accepted":
                rejects[reason] = rejects.get(reason, 0) + count
    report = {
        "scenario": cfg["name"],
        "seed": seed,
        "gates": len(gates),
        "passages_attempted": int(cfg["passages"]),
        "admitted": admitted,
        "rejects": dict(sorted(rejects.items())),
        "records_synced_acknowledged": synced,
        "backoffice_records": bo.store.count(),
        "pending_on_gates": sum(g.journal.pending_count() for g in gates),
        "opened_without_valid_code": opened_without_valid,
    }
    scanner.close()
    engine.close()
    for gate in gates:
        gate.journal.close()
    bo.stop()
    return report
