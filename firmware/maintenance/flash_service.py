"""The gate's side of flashing, sans-IO: link frames in, reply frames out (protocol/flash.py).

    service = FlashService(agent)
    replies = service.handle(frame_type, payload)   # [(type, payload)] to send back
    service.reboot                                  # True once ACTIVATE or ROLLBACK was accepted
    service.status()                                # UpdateAgent.status(): running image

The service console (firmware/maintenance/console.py) routes frame types 0x40..0x4F here, and only
inside a session authenticated with the provision role; nothing else feeds it on a gate. Every
refusal is a REFUSED frame with a reason from protocol/reasons.py; bad input never raises out of
`handle`.
"""

from firmware import settings
from firmware.maintenance.update_agent import ImageRefused
from protocol import flash
from protocol.errors import FormatError

# what READY advertises unless the gate's config says otherwise (buffers.flash_*)
MAX_CHUNK = settings.default("buffers.flash_chunk")
WINDOW = settings.default("buffers.flash_window")


class FlashService:
    def __init__(self, agent, max_chunk: int = MAX_CHUNK, window: int = WINDOW):
        self.agent = agent
        self.max_chunk = max_chunk
        self.window = window
        self.reboot = False
        self._active = False  # a BEGIN was accepted and no END yet
        self._done = b""  # the DONE of the last END, for a retransmitted END

    def status(self) -> dict:
        return self.agent.status()

    def handle(self, ftype: int, payload: bytes) -> list:
        try:
            return self._handle(ftype, payload)
        except ImageRefused as e:
            return [(flash.REFUSED, flash.refused(e.reason, str(e)))]
        except FormatError as e:
            return [(flash.REFUSED, flash.refused("bad_message", str(e)))]
        except OSError as e:
            self._active = False
            return [(flash.REFUSED, flash.refused("update_storage_error", repr(e)))]

    def _handle(self, ftype: int, p: bytes) -> list:
        if ftype == flash.BEGIN:
            n, sha, restart, head = flash.parse_begin(p)
            self._active = False
            self._done = b""
            try:
                offset, crc = self.agent.begin(n, sha, head, restart)
            except ImageRefused as e:
                self.agent.note_refusal(e.reason, str(e))
                raise
            self._active = True
            return [(flash.READY, flash.ready(offset, crc, self.max_chunk, self.window))]
        if ftype == flash.DATA:
            offset, chunk = flash.parse_data(p, self.max_chunk)
            if not self._active:
                raise ImageRefused("DATA before BEGIN", "image_truncated")
            return [(flash.ACK, flash.ack(self.agent.write(offset, chunk)))]
        if ftype == flash.END:
            if not self._active and self._done:
                return [(flash.DONE, self._done)]  # our DONE was lost: the same answer again
            if not self._active:
                raise ImageRefused("END before BEGIN", "image_truncated")
            try:
                summary = self.agent.finish()
            except ImageRefused as e:
                if e.reason != "image_truncated":  # a truncated transfer may still resume
                    self._active = False
                    self.agent.note_refusal(e.reason, str(e))
                raise
            self._active = False
            self._done = flash.done(bytes.fromhex(summary["image"]), summary)
            return [(flash.DONE, self._done)]
        if ftype == flash.ACTIVATE:
            self.agent.request_test()
            self.reboot = True
            return [(flash.STATUS, flash.status(self.agent.status()))]
        if ftype == flash.ROLLBACK:
            self.agent.request_rollback()
            self.reboot = True
            return [(flash.STATUS, flash.status(self.agent.status()))]
        if ftype == flash.QUERY:
            return [(flash.STATUS, flash.status(self.agent.status()))]
        return [(flash.REFUSED, flash.refused("bad_message", "unknown frame type %d" % ftype))]
