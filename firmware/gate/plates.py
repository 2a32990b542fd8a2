"""Parking lane by plate ("no-sense" parking): the parking lane of firmware/gate/parking.py with
an ANPR camera on loop A. Imported only by lanes with gate.plates (modes.build), so other
gates do not pay for it.

A vehicle arriving on loop A starts `reading`: the camera's read (plate, confidence, image
reference) comes in through `PlateLane.on_read`; a plate on the lane's plate list
(firmware/verify/platestore.py) read at or above gate.plate_min_confidence is a passage like
an accepted scan (`admit`, reason plate_accepted: journaled before the arm moves, then
the `paid` row). Anything else falls back to a QR scan at the barrier: the lane journals the
read (plate_unknown or plate_low_confidence; the record's account_id holds the plate key,
cred_no the image tag, counter the confidence: the back office's review queue reads them),
raises `plate_miss` and shows "Plate not recognised - scan your code". No read within 3 s
(`plate_timeout`, TIMERS) asks for the scan too. A scan is welcome while reading.

    reading     a vehicle waits on loop A, the camera has not given a usable read yet
    (then the parking states: present, authorized, passing, closing; and the common ones)
"""

from firmware.gate import modes, parking
from protocol import records
from protocol.fsm import SAME

TABLE = dict(parking.TABLE)
TABLE.update(
    {
        ("idle", "vehicle_arrived"): ("reading", ("start:plate", "show:reading_plate")),
        ("reading", "paid"): ("authorized", ("open", "start:pass", "signal:accept")),
        ("reading", "plate_miss"): ("present", ("stop", "show:plate_unknown")),
        ("reading", "plate_timeout"): ("present", ("show:drive_up",)),
        ("reading", "vehicle_left"): ("idle", ("stop", "show:ready")),
        ("reading", "vehicle_on_safety"): (SAME, ("alarm:wrong_direction",)),
    }
)
SCANS = dict(parking.SCANS)
SCANS["reading"] = None
TIMERS = dict(parking.TIMERS)
TIMERS["plate"] = 3000  # ms a vehicle waits for a read before the QR prompt (PLATE_WAIT_MS)
policy = parking.policy
READS_WELCOME = ("reading", "present")  # a read in another state is counted, not acted on


def admit(gate, who, reason: str):
    """A passage decided by plate: the scan table, the policy and the offline limits apply as to
    a scan (gate._decide); `reason` is the passage record's."""
    from firmware.verify.validator import Decision

    now = gate.clock.now()
    emergency = gate.machine.state in modes.EMERGENCY_STATES
    return gate._decide(Decision(True, reason, who), gate.direction, now, emergency)


class PlateCode:
    """Stands for the ride code of a passage decided by plate (gate.admit): the issuer and
    credential the plate is bound to, and the image tag in place of a presentation counter. A
    plate passage has no rider signature: its record is version 2 with evidence 0 (none), the
    plate's issuer key id, the account_id / cred_no / counter fields holding the plate's
    credential and the image tag (docs/parking.md, "Plate passages in the journal"); clearing
    charges that issuer's account."""

    plate = True
    raw = b""  # no ride code: nothing of the rider's to keep as evidence

    def __init__(self, issuer: int, cred_id: int, image_tag: int):
        self.issuer_key_id = issuer
        self.account_id = cred_id >> 24
        self.cred_no = cred_id & 0xFFFFFF
        self.counter = image_tag
        self.credential = self


class PlateLane:
    """Feeds a lane's gate with a camera's reads. `camera.poll()` -> reads with .plate,
    .confidence, .image_tag (drivers/linux/anpr_http.AnprListener; the simulator's camera);
    as a poller of firmware/gate/loop.py it returns no events of its own."""

    def __init__(self, gate, store, camera=None, min_confidence=None):
        self.gate = gate
        self.store = store
        self.camera = camera
        self.min_confidence = int(
            gate.config["plate_min_confidence"] if min_confidence is None else min_confidence
        )
        self.counts = {"reads": 0, "accepted": 0, "unknown": 0, "low": 0, "ignored": 0}

    def poll(self) -> list:
        if self.camera is not None:
            for read in self.camera.poll():
                self.on_read(read.plate, read.confidence, read.image_tag)
        return []

    def on_read(self, plate: str, confidence: int, image_tag: int = 0) -> str:
        """One read; the outcome's reason name ("ignored" outside reading / present)."""
        gate = self.gate
        self.counts["reads"] += 1
        if gate.state not in READS_WELCOME:
            self.counts["ignored"] += 1
            return "ignored"
        key, bound = self.store.lookup(plate) if plate else (None, None)
        if plate and confidence < self.min_confidence:
            return self._miss("plate_low_confidence", "low", key, confidence, image_tag)
        if bound is None:
            return self._miss("plate_unknown", "unknown", key, confidence, image_tag)
        d = admit(gate, PlateCode(bound[0], bound[1], image_tag), "plate_accepted")
        if d.accept:
            self.counts["accepted"] += 1
        return d.reason

    def _miss(self, reason, count, key, confidence, image_tag) -> str:
        self.counts[count] += 1
        rec = self.gate._record(records.KIND_EVENT, reason, self.gate.clock.now())
        rec.account_id = key or 0
        rec.cred_no = image_tag
        rec.counter = confidence
        self.gate._append(rec)
        self.gate.on_event("plate_miss")
        return reason
