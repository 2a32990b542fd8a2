"""The gate's service console (firmware.maintenance.console), sans-IO, on CPython and
MicroPython."""

import hashlib
import json
import struct

from firmware import settings
from firmware.storage.journal import Journal
from protocol import certs, flash, frames, records, service
from protocol.journalfile import ENTRY3_LEN
from tests.portable import console_kit as kit
from tests.portable.harness import mkdtemp, rmtree
from tests.portable.test_journal import TalliedReads

CONFIG = kit.CONFIG


class AcceptAll:
    def verify(self, pub, msg, sig):
        return True


def _config(**changes):
    cfg = dict(CONFIG)
    for k in changes:
        cfg[k] = changes[k]
    return json.dumps(cfg).encode()


def _provision(tech):
    """Everything a gate needs to be in service, through the console."""
    tech.ok(service.SET_TIME, struct.pack(">I", kit.NOW))
    out = tech.ok(service.GEN_KEY)
    pub = out[1:34]
    assert tech.put(service.BLOB_CERT, kit.device_cert(pub))[2] == "accepted"
    assert tech.put(service.BLOB_CONFIG, _config())[2] == "accepted"
    assert tech.put(service.BLOB_TRUST, b"trust list v1" * 10)[2] == "accepted"
    result = tech.ok_json(service.SELFTEST, struct.pack(">I", kit.NOW))
    assert result["passed"], result
    return pub


def _with_gate(fn):
    d = mkdtemp()
    try:
        fn(d)
    finally:
        rmtree(d)


def test_blank_gate_accepts_only_the_first_time_claim():
    def run(d):
        console = kit.make_gate(d)
        tech = kit.Tech(console)
        ident = tech.hello()
        assert ident.state == service.STATE_BLANK and ident.anchor_id == 0
        assert not ident.flags & service.ID_HAS_KEY
        # a command with no session, or after HELLO without AUTH
        assert tech.request(service.STATUS)[2] == "svc_not_provisioned"
        assert tech.request(service.GEN_KEY)[2] == "svc_not_provisioned"
        # AUTH without the CLAIM flag on a blank gate
        assert tech.auth(claim=False)[2] == "svc_not_provisioned"
        assert console.store.anchor() is None
        # the claim installs the operator root
        tech.login(claim=True)
        assert console.store.anchor() == kit.ROOT.public_key
        assert tech.ok_json(service.STATUS)["state"] == "claimed"

    _with_gate(run)


def test_full_provisioning_reaches_in_service_and_identity_is_signed():
    def run(d):
        console = kit.make_gate(d)
        tech = kit.Tech(console)
        tech.login()
        status = tech.ok_json(service.STATUS)
        assert status["missing"] == [
            "device_key",
            "cert",
            "config",
            "trust_list",
            "clock",
            "selftest",
        ]
        pub = _provision(tech)
        status = tech.ok_json(service.STATUS)
        assert status["state"] == "in_service" and status["missing"] == [], status
        assert status["device_key"] == "".join("%02x" % b for b in pub)
        assert status["config"]["name"] == "A1"
        # a later session: the identity is signed by the device key over our nonce
        ident = tech.hello(b"n" * 16)
        assert ident.state == service.STATE_IN_SERVICE
        assert ident.device_pub == pub and ident.anchor_id == certs.key_id(kit.ROOT.public_key)
        msg = service.identity_signing_input(b"n" * 16, ident.head)
        assert kit.HashVerifier().verify(pub, msg, ident.sig)
        assert json.loads(ident.info)["name"] == "A1"

    _with_gate(run)


def test_gen_key_is_idempotent_and_proves_possession():
    def run(d):
        tech = kit.Tech(kit.make_gate(d))
        tech.login()
        first = tech.ok(service.GEN_KEY)
        again = tech.ok(service.GEN_KEY)
        assert first[0] == 1 and again[0] == 0 and first[1:34] == again[1:34]
        pub = again[1:34]
        msg = service.key_signing_input(
            kit.DEVICE_ID, pub, tech.host_nonce, tech.ident.device_nonce
        )
        assert kit.HashVerifier().verify(pub, msg, again[34:])
        # the private key is on the gate's storage and never in any reply
        secret = open(d + "/device.key", "rb").read()
        assert secret not in first and secret not in again

    _with_gate(run)


def test_unauthenticated_commands_are_refused_on_a_claimed_gate():
    def run(d):
        console = kit.make_gate(d)
        tech = kit.Tech(console)
        tech.login()
        _provision(tech)
        intruder = kit.Tech(console)
        intruder.hello()
        for cmd in (service.STATUS, service.SET_TIME, service.RESET, service.PUT_BLOB):
            assert intruder.request(cmd, b"\x00" * 33)[2] == "svc_unauthenticated"
        # a credential from another operator, even claiming
        signer, cert = kit.tech_cert(kit.OTHER_ROOT)
        other = kit.Tech(console, signer, cert, kit.OTHER_ROOT)
        other.hello()
        assert other.auth(claim=True)[2] == "svc_claimed"
        # a credential that claims our root's key id but is signed by another key
        forged = certs.parse(cert)
        forged.issuer_id = certs.key_id(kit.ROOT.public_key)
        forged_raw = certs.sign(forged, kit.OTHER_ROOT)
        other = kit.Tech(console, signer, forged_raw, kit.ROOT)
        other.hello()
        assert other.auth(claim=False)[2] == "svc_bad_credential"
        # a device certificate is not a technician credential
        dev = kit.HashSigner(b"dev")
        other = kit.Tech(console, dev, kit.device_cert(dev.public_key), kit.ROOT)
        other.hello()
        assert other.auth(claim=False)[2] == "svc_bad_credential"
        # the right credential with someone else's key behind it
        _signer, good_cert = kit.tech_cert()
        other = kit.Tech(console, kit.HashSigner(b"thief"), good_cert)
        other.hello()
        assert other.auth(claim=False)[2] == "svc_bad_signature"
        # a failed AUTH burns the session: a second try needs a new HELLO
        assert other.auth(claim=False)[2] == "svc_unauthenticated"
        assert console.store.anchor() == kit.ROOT.public_key

    _with_gate(run)


def test_replayed_commands_are_refused_and_retransmissions_not_rerun():
    def run(d):
        console = kit.make_gate(d)
        tech = kit.Tech(console)
        tech.login()
        tech.ok(service.SET_TIME, struct.pack(">I", kit.NOW))
        first_set_time = tech.sent[-1]
        tech.ok(service.STATUS)
        # an older request of this session, sent again
        assert tech.send_raw(first_set_time)[2] == "svc_replayed"
        # the same seq with a different (validly signed) body
        logs = struct.pack(">IH", 1, 5)
        assert tech.request(service.LOGS, logs, seq=tech.seq)[2] == "svc_replayed"
        # an exact retransmission of the last request gets the same answer, not a second run
        tech.ok(service.SET_TIME, struct.pack(">I", kit.NOW + 100))
        console.clock.set(kit.NOW + 500)
        again = tech.send_raw(tech.sent[-1])
        assert again[2] == "accepted" and console.clock.now() == kit.NOW + 500
        # a request recorded in this session does not verify in the next one
        old_auth_ident = tech.ident
        tech.hello(b"x" * 16)
        assert tech.ident.device_nonce != old_auth_ident.device_nonce
        tech.auth(claim=False)
        assert tech.send_raw(first_set_time)[2] == "svc_bad_signature"
        # the same AUTH again is answered from cache; a different one is a replay attempt
        assert tech.auth(claim=False)[2] == "accepted"
        assert tech.auth(claim=True)[2] == "svc_replayed"

    _with_gate(run)


def test_roles_and_revocation_and_expiry():
    def run(d):
        console = kit.make_gate(d)
        admin = kit.Tech(console)
        admin.login()
        _provision(admin)
        signer, cert = kit.tech_cert(perms=certs.ROLES["maintain"])
        maint = kit.Tech(console, signer, cert)
        maint.login(claim=False)
        assert maint.ok_json(service.STATUS)["state"] == "in_service"
        body = service.put_blob_body(service.BLOB_TRUST, 1, 0, bytes(32), b"x")
        assert maint.request(service.PUT_BLOB, body)[2] == "svc_forbidden"
        assert maint.request(service.RESET, bytes(33))[2] == "svc_forbidden"
        # revoke technician 7 (both credentials carry subject 7) through the config
        admin.login(claim=False)
        revoked = _config(revoked_technicians=[7])
        assert admin.put(service.BLOB_CONFIG, revoked)[2] == "accepted"
        fresh = kit.Tech(console)
        fresh.hello()
        assert fresh.auth(claim=False)[2] == "svc_revoked"
        # an expired credential, once the gate's clock is set
        signer, cert = kit.tech_cert(valid_from=kit.NOW - 10, valid_until=kit.NOW - 1)
        late = kit.Tech(console, signer, cert)
        late.hello()
        assert late.auth(claim=False)[2] == "svc_credential_expired"
        # one that looks not yet valid works: the gate's RTC may have lost power
        signer, cert = kit.tech_cert(valid_from=kit.NOW + 10, valid_until=kit.NOW + 99)
        early = kit.Tech(console, signer, cert)
        early.hello()
        assert early.auth(claim=False)[2] == "svc_revoked"  # subject 7 is revoked above

    _with_gate(run)


def test_bad_blobs_are_refused_and_nothing_is_installed():
    def run(d):
        console = kit.make_gate(d)
        tech = kit.Tech(console)
        tech.login()
        tech.ok(service.SET_TIME, struct.pack(">I", kit.NOW))
        assert tech.put(service.BLOB_CERT, bytes(137))[2] == "svc_no_key"
        pub = tech.ok(service.GEN_KEY)[1:34]
        assert tech.put(service.BLOB_CERT, kit.device_cert(pub, 99))[2] == "svc_bad_cert"
        other_pub = kit.HashSigner(b"other").public_key
        assert tech.put(service.BLOB_CERT, kit.device_cert(other_pub))[2] == "svc_bad_cert"
        expired = kit.device_cert(pub, valid_until=kit.NOW - 1)
        assert tech.put(service.BLOB_CERT, expired)[2] == "svc_bad_cert"
        assert (
            tech.put(service.BLOB_CERT, kit.device_cert(pub, root=kit.OTHER_ROOT))[2]
            == "svc_bad_cert"
        )
        seq, cmd, reason, body = tech.put(service.BLOB_CONFIG, _config(direction="sideways"))
        assert reason == "svc_bad_blob" and "direction" in json.loads(body)["message"]
        seq, cmd, reason, body = tech.put(service.BLOB_CONFIG, _config(device_id=5))
        assert reason == "svc_bad_blob" and "device 5" in json.loads(body)["message"]
        # a SHA-256 that does not match the bytes
        data = b"trust" * 100
        bad = service.put_blob_body(service.BLOB_TRUST, len(data), 0, bytes(32), data)
        assert tech.request(service.PUT_BLOB, bad)[2] == "svc_bad_blob"
        info = tech.ok_json(service.BLOB_INFO, bytes((service.BLOB_TRUST,)))
        assert info["installed"] is None and info["partial"] is None
        assert console.store.read_blob(service.BLOB_CONFIG) is None
        assert console.store.cert() is None

    _with_gate(run)


def test_upload_resumes_after_an_unplug():
    def run(d):
        tech = kit.Tech(kit.make_gate(d))
        tech.login()
        data = bytes(i & 0xFF for i in range(10000))
        digest = hashlib.sha256(data).digest()
        body = service.put_blob_body(service.BLOB_DENY, len(data), 0, digest, data[:4096])
        assert tech.ok_json(service.PUT_BLOB, body)["received"] == 4096
        # power cut / cable pulled: a new console on the same storage
        tech = kit.Tech(kit.open_gate(d))
        tech.login(claim=False)
        info = tech.ok_json(service.BLOB_INFO, bytes((service.BLOB_DENY,)))
        assert info["installed"] is None
        assert info["partial"]["received"] == 4096
        # continuing at the wrong offset is refused; at the right one it completes
        wrong = service.put_blob_body(service.BLOB_DENY, len(data), 8192, digest, data[8192:])
        assert tech.request(service.PUT_BLOB, wrong)[2] == "svc_bad_request"
        for off in (4096, 8192):
            body = service.put_blob_body(
                service.BLOB_DENY, len(data), off, digest, data[off : off + 4096]
            )
            out = tech.ok_json(service.PUT_BLOB, body)
        assert out["installed"] and out["received"] == len(data)
        info = tech.ok_json(service.BLOB_INFO, bytes((service.BLOB_DENY,)))
        assert info["installed"]["bytes"] == len(data) and info["partial"] is None
        assert info["installed"]["sha256"] == "".join("%02x" % b for b in digest)

    _with_gate(run)


def _passages(d, n):
    j = Journal(d, kit.DEVICE_ID)
    for i in range(n):
        j.append(records.Record(records.KIND_PASSAGE, 0, 0, 0, kit.NOW + i, account_id=i))
    last = j.last_seq
    j.close()
    return last


def test_reset_refused_with_unsynced_passages_unless_forced_after_export():
    def run(d):
        kit.make_gate(d)
        last = _passages(d, 70)
        console = kit.open_gate(d)
        tech = kit.Tech(console)
        tech.login()
        _provision(tech)
        seq, cmd, reason, body = tech.request(service.RESET, service.reset_body(False, bytes(32)))
        assert reason == "svc_unsynced" and "70 unsynced" in json.loads(body)["message"]
        assert tech.request(service.RESET, service.reset_body(True, bytes(32)))[2] == (
            "svc_export_mismatch"
        )
        # export every unsynced record, in chunks
        exported = []
        while True:
            out = tech.ok(service.EXPORT, struct.pack(">IH", len(exported), 50))
            total, index = struct.unpack(">II", out[:8])
            got = records.split(out[8:])
            exported += got
            if len(exported) >= total or not got:
                break
        assert len(exported) == 70 and records.decode(exported[-1]).seq == last
        digest = hashlib.sha256(b"".join(exported)).digest()
        # the gate hashes its unsynced records as it reads them, buffers.journal_read at a time
        console.journal.fs = tally = TalliedReads()
        asked = tally.sizes
        console.journal.read_records = 8
        out = json.loads(tech.ok(service.RESET, service.reset_body(True, digest)))
        assert out["exported_dropped"] == 70
        assert len(asked) >= 70 // 8 and max(asked) == 8 * ENTRY3_LEN
        # the gate is blank again, the session closed, and the journal's seq goes on
        assert console.store.anchor() is None and console.store.signer() is None
        assert tech.request(service.STATUS)[2] == "svc_not_provisioned"
        assert tech.hello().state == service.STATE_BLANK
        console.journal.close()
        j = Journal(d, kit.DEVICE_ID)
        assert j.pending_count() == 0
        rec = j.append(records.Record(records.KIND_PASSAGE, 0, 0, 0, kit.NOW))
        assert rec.seq == last + 1
        j.close()

    _with_gate(run)


def test_reset_with_nothing_unsynced_needs_no_export():
    def run(d):
        console = kit.make_gate(d)
        tech = kit.Tech(console)
        tech.login()
        _provision(tech)
        out = json.loads(tech.ok(service.RESET, service.reset_body(False, bytes(32))))
        assert out["reset"] and console.store.anchor() is None
        assert console.lifecycle() == service.STATE_BLANK

    _with_gate(run)


def test_selftest_names_each_failing_part():
    def run(d):
        hw = kit.Hardware()
        hw.scanner = kit.Scanner(["FG1:not-a-test-card"])
        hw.barrier = kit.Barrier(jammed=True)
        hw.beams = kit.Beams(a=True)
        tech = kit.Tech(kit.make_gate(d, hw))
        tech.login()
        result = tech.ok_json(service.SELFTEST, struct.pack(">I", kit.NOW))
        by = {c["name"]: c for c in result["checks"]}
        assert not result["passed"]
        assert by["storage"]["ok"]
        assert not by["clock"]["ok"] and "set-time" in by["clock"]["detail"]
        assert not by["scanner"]["ok"] and "not a test card" in by["scanner"]["detail"]
        assert not by["barrier"]["ok"] and "did not open" in by["barrier"]["detail"]
        assert not by["sensors"]["ok"] and "beam A" in by["sensors"]["detail"]
        tech.ok(service.SET_TIME, struct.pack(">I", kit.NOW + 30))
        result = tech.ok_json(service.SELFTEST, struct.pack(">I", kit.NOW))
        by = {c["name"]: c for c in result["checks"]}
        assert not by["clock"]["ok"] and "+30 s" in by["clock"]["detail"]
        assert not by["scanner"]["ok"] and "no code read" in by["scanner"]["detail"]
        assert by["crypto"]["ok"]
        # a signature backend that accepts anything fails its known-answer test
        tech.console.verifier = AcceptAll()
        result = tech.ok_json(service.SELFTEST, struct.pack(">I", kit.NOW + 30))
        by = {c["name"]: c for c in result["checks"]}
        assert not by["crypto"]["ok"] and "corrupted" in by["crypto"]["detail"]

    _with_gate(run)


def test_logs_say_who_did_what():
    def run(d):
        console = kit.make_gate(d)
        tech = kit.Tech(console)
        tech.login()
        tech.ok(service.SET_TIME, struct.pack(">I", kit.NOW))
        kit.Tech(console).hello()
        tech2 = kit.Tech(console)
        tech2.hello()
        tech2.request(service.STATUS)
        tech.login(claim=False)
        out = tech.ok_json(service.LOGS, struct.pack(">IH", 1, 100))
        events = [e["ev"] for e in out["entries"]]
        assert events[:4] == ["claimed", "session_open", "set_time", "refused"], events
        refused = out["entries"][3]
        assert refused["reason"] == "svc_unauthenticated"
        assert out["entries"][2]["technician"] == 7
        # paging: ask from the last index
        tail = tech.ok_json(service.LOGS, struct.pack(">IH", out["last"], 100))
        assert [e["i"] for e in tail["entries"]] == [out["last"]]

    _with_gate(run)


def test_session_times_out_when_idle():
    def run(d):
        console = kit.make_gate(d)
        now = [0]
        console.ticks_ms = lambda: now[0]
        tech = kit.Tech(console)
        tech.login()
        assert tech.request(service.STATUS)[2] == "accepted"
        now[0] += console.idle_timeout_ms + 1
        assert tech.request(service.STATUS)[2] == "svc_unauthenticated"

    _with_gate(run)


def test_garbage_and_malformed_frames_never_raise():
    def run(d):
        console = kit.make_gate(d)
        tech = kit.Tech(console)
        junk = [b"", b"\x00", b"\xff" * 7, bytes(range(200)), b"\x00" * 300]
        for payload in junk:
            for ftype in (service.HELLO, service.AUTH, service.REQUEST, 0x51, 0x54, 1, 99):
                out = console.feed(frames.encode(ftype, payload))
                for fr in frames.FrameDecoder().feed(out):
                    assert fr.type in (service.IDENTITY, service.RESPONSE)
        assert console.feed(b"\xfa\x47 line noise \x00\x01" * 20) == b""
        tech.login()
        for payload in junk:
            out = console.feed(frames.encode(service.REQUEST, payload))
            assert out, payload
            for cmd in service.COMMANDS:
                out = tech.request(cmd, payload)
                assert out[2] != "svc_internal", (cmd, payload, out)
        assert tech.ok_json(service.STATUS)["device_id"] == kit.DEVICE_ID

    _with_gate(run)


def test_the_config_bounds_the_console_frames():
    def run(d):
        console = kit.make_gate(d)
        tech = kit.Tech(console)
        tech.login()
        over = service.MAX_REQUEST + 1
        # the default limit (8 KB) takes a frame this size: it is answered (a bad request)
        assert console.feed(frames.encode(service.REQUEST, b"\x00" * over))
        limit = service.MAX_REQUEST
        assert tech.put(service.BLOB_CONFIG, _config(**{"buffers.console_frame": limit}))
        for c in (console, kit.open_gate(d)):  # at once, and after a restart
            tech = kit.Tech(c)
            tech.login(claim=False)
            before = c._dec.stats["oversize"]
            assert c.feed(frames.encode(service.REQUEST, b"\x00" * over)) == b""
            assert c._dec.stats["oversize"] == before + 1  # dropped unread, as any oversize frame
            # the laptop's largest request (a whole upload chunk) still fits
            data = bytes(range(256)) * 20
            out = tech.put(service.BLOB_DENY, data)
            assert out[2] == "accepted" and json.loads(out[3])["installed"]
            assert len(tech.sent[-2]) == limit  # the first chunk's request filled the limit
        # a config below what the laptop needs is refused and changes nothing
        out = tech.put(service.BLOB_CONFIG, _config(**{"buffers.console_frame": limit - 1}))
        assert out[2] == "svc_bad_blob" and b"buffers.console_frame" in out[3]

    _with_gate(run)


class FakeFlash:
    def __init__(self):
        self.seen = []

    def status(self):
        return {"slot": None, "version": None}  # no image installed: identity says factory's

    def handle(self, ftype, payload):
        self.seen.append((ftype, payload))
        return [(flash.ACK, b"\x00\x00\x10\x00")]


def _flash_reply(console, ftype, payload=b""):
    out = frames.FrameDecoder().feed(console.feed(frames.encode(ftype, payload)))
    assert len(out) == 1
    return out[0]


def test_a_flash_begin_over_the_frame_limit_is_refused_typed_and_the_session_goes_on():
    def run(d):
        console = kit.make_gate(d)
        console.flash_service = FakeFlash()
        tech = kit.Tech(console)
        tech.login()
        limit = console.frame_limit()
        assert limit == settings.default("buffers.console_frame") < flash.MAX_PAYLOAD
        fr = _flash_reply(console, flash.BEGIN, b"h" * (limit + 1))
        reason, message = flash.parse_refused(fr.payload)
        assert (fr.type, reason) == (flash.REFUSED, "image_head_too_large")
        assert ("%d bytes" % (limit + 1)) in message and "buffers.console_frame" in message
        assert console.flash_service.seen == []  # never reached the flash service
        # any other frame over the limit is dropped unread, unanswered
        assert console.feed(frames.encode(flash.QUERY, b"q" * (limit + 1))) == b""
        # the body was skipped: the session goes on, and a BEGIN at the limit is taken
        fr = _flash_reply(console, flash.BEGIN, b"h" * limit)
        assert fr.type == flash.ACK and console.flash_service.seen == [(flash.BEGIN, b"h" * limit)]
        assert "refused" in [e["ev"] for e in console.log.since(1, 100)]

    _with_gate(run)


def test_image_frames_need_an_authenticated_session_with_the_provision_role():
    def run(d):
        console = kit.make_gate(d)
        console.flash_service = FakeFlash()
        fr = _flash_reply(console, flash.BEGIN, b"image head")
        assert fr.type == flash.REFUSED
        assert flash.parse_refused(fr.payload)[0] == "svc_not_provisioned"
        tech = kit.Tech(console)
        tech.login()
        tech.hello()  # a new session, not yet authenticated
        fr = _flash_reply(console, flash.QUERY)
        assert flash.parse_refused(fr.payload)[0] == "svc_unauthenticated"
        signer, cert = kit.tech_cert(perms=certs.ROLES["maintain"])
        maint = kit.Tech(console, signer, cert)
        maint.login(claim=False)
        fr = _flash_reply(console, flash.BEGIN, b"image head")
        assert flash.parse_refused(fr.payload)[0] == "svc_forbidden"
        assert console.flash_service.seen == []
        tech.login(claim=False)
        fr = _flash_reply(console, flash.BEGIN, b"image head")
        assert fr.type == flash.ACK and console.flash_service.seen == [(flash.BEGIN, b"image head")]
        events = [e["ev"] for e in console.log.since(1, 100)]
        assert "flash_begin" in events

    _with_gate(run)
