"""USB keyboard-wedge scanners: key events to text (layouts, Shift, Caps Lock, Alt codes, Ctrl),
a scan per Enter, the dropped scans, AIM identifiers, and the reader by URL.

Two event sources. A recorded stream (raw struct input_event records, as `cat
/dev/input/eventN` saves them) always runs: the reader replays it through the same code path a
live device uses. A virtual input device through the kernel's uinput runs where /dev/uinput
exists (root with the uinput module loaded); where it does not, that test says so in its skip
reason, and the recorded tests still cover every decoding rule.
"""

import os
import time

import pytest
from evdev import ecodes as e

from drivers.linux import keymap, wedge_evdev
from drivers.portable import registry
from host_sim.hardware.devices import WedgeScanner
from tests.portable import codes

CODE = codes.code()


def typed(*keys, layout="us", **kw):
    """Scans from (code, value) key events, one ms apart."""
    dec = keymap.KeyDecoder(layout, **kw)
    out = []
    for i, (code, value) in enumerate(keys):
        out += dec.feed(e.EV_KEY, code, value, i)
    return out, dec.stats


def tap(code):
    return [(code, 1), (code, 0)]


def shifted(code):
    return [(e.KEY_LEFTSHIFT, 1), *tap(code), (e.KEY_LEFTSHIFT, 0)]


ENTER = tap(e.KEY_ENTER)


def test_us_keys_with_shift_end_at_enter():
    keys = shifted(e.KEY_F) + shifted(e.KEY_G) + tap(e.KEY_1) + shifted(e.KEY_SEMICOLON)
    keys += tap(e.KEY_A) + shifted(e.KEY_5) + tap(e.KEY_SLASH) + ENTER
    assert typed(*keys) == ([b"FG1:a%/"], typed(*keys)[1])
    assert typed(*keys)[1]["scans"] == 1


def test_german_layout_swaps_y_and_z_and_moves_the_punctuation():
    # on a German keyboard the key labelled Y on a US one is Z; ':' is Shift+'.', '/' Shift+7
    keys = shifted(e.KEY_Y) + tap(e.KEY_Z) + shifted(e.KEY_DOT) + shifted(e.KEY_7)
    keys += tap(e.KEY_SLASH) + tap(e.KEY_RIGHTBRACE) + shifted(e.KEY_RIGHTBRACE)
    assert typed(*keys, *ENTER, layout="us")[0] == [b"Yz>&/]}"]  # the same keys read as US
    keys += [(e.KEY_RIGHTALT, 1), *tap(e.KEY_Q), (e.KEY_RIGHTALT, 0)] + ENTER
    assert typed(*keys, layout="de")[0] == [b"Zy:/-+*@"]
    scans, stats = typed(*keys, layout="us")  # US has no AltGr level: the scan is spoilt
    assert scans == [] and stats["unmapped"] == 1
    with pytest.raises(ValueError, match="unknown keyboard layout 'fr'"):
        keymap.KeyDecoder("fr")


def test_caps_lock_keypad_alt_codes_and_ctrl():
    caps = tap(e.KEY_CAPSLOCK) + tap(e.KEY_A) + shifted(e.KEY_B) + tap(e.KEY_1)
    caps += tap(e.KEY_CAPSLOCK) + tap(e.KEY_C)
    keypad = tap(e.KEY_KP4) + tap(e.KEY_KP2) + tap(e.KEY_KPDOT)
    # Alt + 0 7 0 on the keypad is 'F' in any layout: the scanner's layout-independent mode
    alt = [
        (e.KEY_LEFTALT, 1),
        *tap(e.KEY_KP0),
        *tap(e.KEY_KP7),
        *tap(e.KEY_KP0),
        (e.KEY_LEFTALT, 0),
    ]
    ctrl = [(e.KEY_LEFTCTRL, 1), *tap(e.KEY_B), (e.KEY_LEFTCTRL, 0)]  # STX
    scans, _ = typed(*caps, *keypad, *alt, *ctrl, *tap(e.KEY_KPENTER), layout="de")
    assert scans == [b"Ab1c42.F\x02"]


def test_repeats_are_ignored_and_a_key_the_layout_lacks_spoils_the_scan():
    keys = [(e.KEY_A, 1), (e.KEY_A, 2), (e.KEY_A, 2), (e.KEY_A, 0)] + ENTER
    keys += tap(e.KEY_A) + tap(e.KEY_F5) + tap(e.KEY_B) + ENTER  # F5 types nothing
    keys += tap(e.KEY_C) + ENTER
    scans, stats = typed(*keys)
    assert scans == [b"a", b"c"] and stats["unmapped"] == 1 and stats["scans"] == 2


def test_a_scan_without_enter_is_dropped_after_the_gap_and_an_overlong_one_at_its_enter():
    dec = keymap.KeyDecoder("us", max_line=5, gap_ms=200)
    for t, (code, v) in enumerate(tap(e.KEY_A) + tap(e.KEY_B)):
        assert dec.feed(e.EV_KEY, code, v, t) == []
    # 300 ms later a whole scan: the stale "ab" is dropped, never glued to it
    got = []
    for t, (code, v) in enumerate(tap(e.KEY_C) + ENTER):
        got += dec.feed(e.EV_KEY, code, v, 300 + t)
    assert got == [b"c"] and dec.stats["partial"] == 1
    for t, (code, v) in enumerate(tap(e.KEY_X) * 6 + ENTER):
        got += dec.feed(e.EV_KEY, code, v, 400 + t)
    assert got == [b"c"] and dec.stats["overlong"] == 1


def test_every_base45_character_round_trips_through_each_layout():
    text = "FG1:" + "".join(sorted(set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")))
    for layout in keymap.LAYOUTS:
        keys = keymap.keystrokes(text, layout)
        assert typed(*keys, layout=layout)[0] == [text.encode()], layout
    with pytest.raises(ValueError, match="cannot type"):
        keymap.keystrokes("\u00e9", "us")


def write_recording(path, events):
    with open(path, "wb") as f:
        f.write(wedge_evdev.record(events))
    return str(path)


def drain(reader, n=50):
    out = []
    for _ in range(n):
        t = reader.read(0)
        if t:
            out.append(t)
    return out


def test_recorded_stream_through_the_registry_with_aim_identifiers(tmp_path):
    scanner = WedgeScanner(layout="de", aim="]Q1")
    codes_read = [CODE, codes.code(counter=2)]
    events = scanner.events(codes_read[0], at_ms=1000)
    events += scanner.events(codes_read[1], at_ms=5000)
    events += scanner.events(codes_read[0], at_ms=9000, aim="]C0")  # read as a Code 128
    events += scanner.events(codes_read[0], at_ms=13000, aim="")  # AIM switched off
    path = write_recording(tmp_path / "scan.events", events)
    assert os.path.getsize(path) == 24 * len(events)  # raw 64-bit struct input_event records
    reader = registry.open_device("reader", "evdev:%s?layout=de&aim=1" % path)
    assert isinstance(reader, wedge_evdev.WedgeReader)
    got = drain(reader)
    # the QR reads lose their ]Q1; the Code 128 read keeps its ]C0 for the gate to refuse
    assert got == [codes_read[0], codes_read[1], "]C0" + codes_read[0]]
    s = reader.stats
    assert (s["scans"], s["lines"], s["symbology"], s["no_aim"]) == (4, 3, 1, 1)
    assert reader.source.ended
    reader.close()


def test_a_recording_read_with_the_wrong_layout_gives_no_ride_code(tmp_path):
    path = write_recording(tmp_path / "de.events", WedgeScanner(layout="de").events(CODE))
    got = drain(registry.open_device("reader", "evdev:%s" % path))  # layout=us by default
    assert got and got[0] != CODE  # Y/Z swapped, ':' typed as '>': the gate's parser refuses


def test_bad_urls_and_recordings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown evdev reader option 'baud'"):
        registry.open_device("reader", "evdev:/dev/input/event0?baud=9600")
    bad = tmp_path / "cut.events"
    bad.write_bytes(b"\0" * 30)
    with pytest.raises(ValueError, match="whole 24-byte"):
        registry.open_device("reader", "evdev:%s" % bad)
    with pytest.raises(OSError, match="no input device matches"):
        wedge_evdev.find_device(name="no such scanner %d" % os.getpid())


def uinput_or_reason():
    """A virtual scanner through the kernel, or why there is none here."""
    if not os.path.exists("/dev/uinput"):
        return None, "no /dev/uinput on this machine (kernel without the uinput module)"
    try:
        return WedgeScanner().uinput(), ""
    except Exception as exc:  # evdev.UInputError, PermissionError
        return None, "uinput refused: %s" % exc


def test_a_virtual_scanner_through_uinput_is_grabbed_and_read():
    ui, why = uinput_or_reason()
    if ui is None:
        pytest.skip("uinput path not run: " + why + "; the recorded-stream tests ran instead")
    try:
        time.sleep(0.2)  # udev creates the event node
        reader = registry.open_device("reader", "evdev:?name=%s" % WedgeScanner.NAME)
        try:
            import evdev

            other = evdev.InputDevice(reader.source.device.path)
            with pytest.raises(OSError):
                other.grab()  # the gate holds it: no console, no other reader gets the keys
            other.close()
            WedgeScanner().type_into(ui, CODE)
            got = None
            end = time.monotonic() + 3
            while got is None and time.monotonic() < end:
                got = reader.read(0.1)
            assert got == CODE
        finally:
            reader.close()
    finally:
        ui.close()
