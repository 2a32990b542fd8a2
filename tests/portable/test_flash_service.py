"""firmware.maintenance.flash_service: the gate's side of flashing, driven frame by frame."""

import hashlib

from firmware.maintenance import boot
from firmware.maintenance.flash_service import FlashService
from protocol import flash, image
from tests.portable.harness import mkdtemp, rmtree
from tests.portable.images import agent, confirmed_gate, make


def _one(replies):
    assert len(replies) == 1
    return replies[0]


def _refusal(replies):
    t, p = _one(replies)
    assert t == flash.REFUSED
    return flash.parse_refused(p)[0]


def _begin(svc, data, restart=False):
    h = image.parse_header(data)
    msg = flash.begin(len(data), hashlib.sha256(data).digest(), data[: h.head_len], restart)
    return svc.handle(flash.BEGIN, msg)


def test_whole_exchange_with_a_lost_chunk():
    d = mkdtemp()
    try:
        confirmed_gate(d)
        svc = FlashService(agent(d, running="a"), max_chunk=512, window=4)
        data = make(version=(1, 2, 0), counter=2, files={"firmware/x.py": bytes(range(256)) * 9})
        t, p = _one(_begin(svc, data))
        assert t == flash.READY
        offset, crc, max_chunk, window = flash.parse_ready(p)
        assert (offset, crc, max_chunk, window) == (0, 0, 512, 4)
        sent = 0
        lost = 1024  # this chunk never arrives
        while sent < len(data):
            chunk = data[sent : sent + 512]
            if sent != lost:
                t, p = _one(svc.handle(flash.DATA, flash.data(sent, chunk)))
                assert t == flash.ACK
                got = flash.parse_ack(p)
                if sent > lost and lost >= 0:
                    assert got == lost  # the gate asks for the missing chunk again
                    sent, lost = lost, -1
                    continue
            sent += len(chunk)
        t, p = _one(svc.handle(flash.END, b""))
        assert t == flash.DONE
        digest, summary = flash.parse_done(p)
        assert digest == hashlib.sha256(data).digest() and summary["slot"] == "b"
        t, p = _one(svc.handle(flash.ACTIVATE, b""))
        assert t == flash.STATUS and svc.reboot
        assert boot.load_state(d)["pending"] == "b"
    finally:
        rmtree(d)


def test_refusals_and_bad_frames_never_raise():
    d = mkdtemp()
    try:
        confirmed_gate(d, make(counter=3))
        svc = FlashService(agent(d, running="a"))
        assert _refusal(_begin(svc, make(signed=False))) == "image_unsigned"
        assert boot.load_state(d)["last"]["reason"] == "image_unsigned"
        assert _refusal(_begin(svc, make(counter=2))) == "image_rollback"
        assert _refusal(svc.handle(flash.DATA, flash.data(0, b"x"))) == "image_truncated"
        assert _refusal(svc.handle(flash.END, b"")) == "image_truncated"
        assert _refusal(svc.handle(flash.BEGIN, b"\x00" * 10)) == "bad_message"
        assert _refusal(svc.handle(0x4F, b"")) == "bad_message"
        assert _refusal(svc.handle(flash.ACTIVATE, b"")) == "image_truncated"
        t, p = _one(svc.handle(flash.QUERY, b""))
        st = flash.parse_status(p)
        assert st["slot"] == "a" and st["version"] == "1.0.0" and not svc.reboot
    finally:
        rmtree(d)


def test_end_before_the_last_chunk_is_a_truncated_transfer_that_can_resume():
    d = mkdtemp()
    try:
        confirmed_gate(d)
        svc = FlashService(agent(d, running="a"), max_chunk=1024)
        data = make(version=(1, 2, 0), counter=2, files={"firmware/x.py": bytes(5000)})
        _begin(svc, data)
        svc.handle(flash.DATA, flash.data(0, data[:1024]))
        assert _refusal(svc.handle(flash.END, b"")) == "image_truncated"
        t, p = _one(_begin(svc, data))
        assert flash.parse_ready(p)[0] == 1024
    finally:
        rmtree(d)
