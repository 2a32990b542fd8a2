"""Keystrokes to text for keyboard-wedge scanners: Linux input key codes, layouts, a scan per line.

A USB scanner in keyboard mode types each code it reads as a keyboard would, then Enter. What
reaches the gate are key codes (KEY_A, KEY_LEFTSHIFT...), not characters: the scanner picks the
keys for its configured keyboard country, and the gate must decode them with the same layout.

    us   US English (the factory default of every scanner family we know)
    de   German QWERTZ (Y and Z swapped, : is Shift+., / is Shift+7, AltGr for @ [ ] { } \\ ~ |)

Besides the layout's keys:
    Shift (either), Caps Lock (inverts letters only, as a PC does), AltGr (layouts that have it)
    the keypad's digits and . + - * / (some scanners type digits on the keypad)
    Alt + keypad digits  the character of that decimal code, on Alt's release: the
                         layout-independent "Alt mode" most scanners offer (ASCII only)
    Ctrl + letter        the control character (Ctrl+B = STX), so a scanner's control-character
                         prefix or suffix still frames a scan
    Enter, keypad Enter  end the scan

`KeyDecoder.feed(type, code, value, ms)` takes one input event (as evdev reads them) and returns
the finished scans (bytes, without Enter). A key that the layout does not map spoils the scan
(counted in `stats["unmapped"]`, the scan dropped at its Enter), so a half-understood code never
passes; a scan whose keys stop for `gap_ms` without an Enter is dropped (`stats["partial"]`).
"""

from evdev import ecodes

EV_KEY = ecodes.EV_KEY
UP, DOWN, REPEAT = 0, 1, 2

_SHIFTS = {ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT}
_CTRLS = {ecodes.KEY_LEFTCTRL, ecodes.KEY_RIGHTCTRL}
_ENTERS = {ecodes.KEY_ENTER, ecodes.KEY_KPENTER}
_ALT = ecodes.KEY_LEFTALT
_ALTGR = ecodes.KEY_RIGHTALT
_CAPS = ecodes.KEY_CAPSLOCK

_KEYPAD = {
    "KEY_KP0": "0",
    "KEY_KP1": "1",
    "KEY_KP2": "2",
    "KEY_KP3": "3",
    "KEY_KP4": "4",
    "KEY_KP5": "5",
    "KEY_KP6": "6",
    "KEY_KP7": "7",
    "KEY_KP8": "8",
    "KEY_KP9": "9",
    "KEY_KPDOT": ".",
    "KEY_KPPLUS": "+",
    "KEY_KPMINUS": "-",
    "KEY_KPASTERISK": "*",
    "KEY_KPSLASH": "/",
}
_KP_DIGITS = {ecodes.ecodes["KEY_KP%d" % d]: d for d in range(10)}


def _table(rows: list[tuple[str, str, str]], altgr: dict[str, str] | None = None) -> dict:
    """{code: (plain, shifted, altgr)} from (key names, plain chars, shifted chars) rows."""
    out: dict[int, tuple[str, str, str]] = {}
    for names, plain, shifted in rows:
        keys = names.split()
        assert len(keys) == len(plain) == len(shifted), names
        for k, a, b in zip(keys, plain, shifted):
            out[ecodes.ecodes["KEY_" + k]] = (a, b, (altgr or {}).get(k, ""))
    out[ecodes.KEY_SPACE] = (" ", " ", "")
    for name, ch in _KEYPAD.items():
        out[ecodes.ecodes[name]] = (ch, ch, "")
    return out


_LETTERS_US = "Q W E R T Y U I O P A S D F G H J K L Z X C V B N M"

LAYOUTS: dict[str, dict[int, tuple[str, str, str]]] = {
    "us": _table(
        [
            ("GRAVE 1 2 3 4 5 6 7 8 9 0 MINUS EQUAL", "`1234567890-=", "~!@#$%^&*()_+"),
            (_LETTERS_US, "qwertyuiopasdfghjklzxcvbnm", "QWERTYUIOPASDFGHJKLZXCVBNM"),
            ("LEFTBRACE RIGHTBRACE BACKSLASH", "[]\\", "{}|"),
            ("SEMICOLON APOSTROPHE COMMA DOT SLASH", ";',./", ':"<>?'),
        ]
    ),
    "de": _table(
        [
            ("1 2 3 4 5 6 7 8 9 0 SLASH", "1234567890-", '!"§$%&/()=_'),
            (_LETTERS_US, "qwertzuiopasdfghjklyxcvbnm", "QWERTZUIOPASDFGHJKLYXCVBNM"),
            ("RIGHTBRACE BACKSLASH COMMA DOT 102ND MINUS", "+#,.<\u00df", "*';:>?"),
            ("LEFTBRACE SEMICOLON APOSTROPHE", "\u00fc\u00f6\u00e4", "\u00dc\u00d6\u00c4"),
        ],
        altgr={
            "Q": "@",
            "7": "{",
            "8": "[",
            "9": "]",
            "0": "}",
            "MINUS": "\\",
            "RIGHTBRACE": "~",
            "102ND": "|",
        },
    ),
}


class KeyDecoder:
    """Input events in, finished scans (bytes) out. Sans-IO: event times are passed in."""

    def __init__(self, layout: str = "us", max_line: int = 1024, gap_ms: int = 200) -> None:
        if layout not in LAYOUTS:
            raise ValueError(
                "unknown keyboard layout %r (known: %s)" % (layout, ", ".join(LAYOUTS))
            )
        self.keys = LAYOUTS[layout]
        self.max_line = max_line
        self.gap_ms = gap_ms
        self.shift = 0  # shift keys held
        self.ctrl = 0
        self.alt = False
        self.altgr = False
        self.caps = False
        self.alt_code: list[int] = []  # keypad digits typed with Alt held
        self.buf = bytearray()
        self.spoilt = False  # an unmapped key or an over-long line: drop at Enter
        self.last_ms: int | None = None
        self.stats = {"scans": 0, "unmapped": 0, "partial": 0, "overlong": 0}

    def feed(self, etype: int, code: int, value: int, ms: int) -> list[bytes]:
        if etype != EV_KEY:
            return []  # EV_SYN, EV_MSC (scan codes), EV_LED: nothing typed
        self.expire(ms)
        if value == REPEAT:
            return []  # a scanner does not hold keys; a repeat is not a second character
        down = value == DOWN
        if code in _SHIFTS:
            self.shift = max(0, self.shift + (1 if down else -1))
        elif code in _CTRLS:
            self.ctrl = max(0, self.ctrl + (1 if down else -1))
        elif code == _ALT:
            self.alt = down
            if not down and self.alt_code:
                self._alt_release()
        elif code == _ALTGR:
            self.altgr = down
        elif code == _CAPS:
            if down:
                self.caps = not self.caps
        elif down:
            self.last_ms = ms
            if code in _ENTERS:
                return self._enter()
            self._press(code)
        return []

    def _press(self, code: int) -> None:
        if self.alt and code in _KP_DIGITS:
            self.alt_code.append(_KP_DIGITS[code])
            return
        entry = self.keys.get(code)
        ch = ""
        if entry is not None:
            plain, shifted, alt = entry
            if self.altgr:
                ch = alt
            else:
                ch = shifted if self.shift else plain
                if self.caps and ch.isalpha():
                    ch = ch.swapcase()
        if self.ctrl and ch.isalpha():
            ch = chr(ord(ch.upper()) & 0x1F)
        if not ch or self.alt:
            self.stats["unmapped"] += 1
            self.spoilt = True
            return
        self._put(ch)

    def _alt_release(self) -> None:
        n = 0
        for d in self.alt_code:
            n = n * 10 + d
        self.alt_code = []
        if 0 < n < 128:
            self._put(chr(n))
        else:
            self.stats["unmapped"] += 1  # not ASCII: no ride code holds it
            self.spoilt = True

    def _put(self, ch: str) -> None:
        if len(self.buf) >= self.max_line:
            if not self.spoilt:
                self.stats["overlong"] += 1
            self.spoilt = True
            return
        self.buf.append(ord(ch))

    def _enter(self) -> list[bytes]:
        line, spoilt = bytes(self.buf), self.spoilt
        self.buf = bytearray()
        self.spoilt = False
        if spoilt or not line:
            return []
        self.stats["scans"] += 1
        return [line]

    def expire(self, ms: int) -> None:
        """Drop a scan whose keys stopped gap_ms ago without an Enter (call while idle too)."""
        if self.gap_ms and self.last_ms is not None and (self.buf or self.spoilt):
            if ms - self.last_ms > self.gap_ms:
                self.buf = bytearray()
                self.spoilt = False
                self.alt_code = []
                self.stats["partial"] += 1


def keystrokes(text: str, layout: str = "us") -> list[tuple[int, int]]:
    """The (code, value) key events a scanner set to `layout` types for `text`, then Enter:
    what the simulator's scanner and the tests send. Raises ValueError for a character the
    layout cannot type."""
    table = LAYOUTS[layout]
    where: dict[str, tuple[int, str]] = {}
    for code, (plain, shifted, alt) in sorted(table.items(), key=lambda kv: _kp_last(kv[0])):
        for level, ch in (("alt", alt), ("shift", shifted), ("plain", plain)):
            if ch:
                where.setdefault(ch, (code, level))
    out: list[tuple[int, int]] = []
    for ch in text:
        if ch not in where:
            raise ValueError("layout %s cannot type %r" % (layout, ch))
        code, level = where[ch]
        mod = {"plain": None, "shift": ecodes.KEY_LEFTSHIFT, "alt": _ALTGR}[level]
        if mod is not None:
            out.append((mod, DOWN))
        out += [(code, DOWN), (code, UP)]
        if mod is not None:
            out.append((mod, UP))
    return out + [(ecodes.KEY_ENTER, DOWN), (ecodes.KEY_ENTER, UP)]


def _kp_last(code: int) -> tuple[int, int]:
    """Main-block keys before keypad keys when both type a character (as scanners do)."""
    return (1 if code in _KP_CODES else 0, code)


_KP_CODES = {ecodes.ecodes[name] for name in _KEYPAD}
