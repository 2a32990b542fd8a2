"""Open a sync link off the gate's main loop (CPython): a worker thread does what blocks (the
name lookup, the TCP connect, the TLS handshake: seconds when the back office is unreachable
or answers slowly) and hands the ready link over, so riders never wait for it.

    opening = LinkOpener(lambda: TcpLink.connect(host, port, tls, timeout_s=2.0))
    link = opening.poll()     # None while it opens; the link once it is ready; raises OSError
    opening.cancel()          # given up: a link that still arrives is closed

firmware/compose/app.py's Syncer takes either a ready link or one of these from `connect(device)`
and polls it from the main loop (drivers/linux/entry.py hands one out for TCP). MicroPython gates
sync over a UART, which is ready at once (drivers/mcu/link_uart.py), and need no thread.
"""

import threading
from typing import Any, Callable


class LinkOpener:
    def __init__(self, open_link: Callable[[], Any], name: str = "sync-link-opener") -> None:
        self._lock = threading.Lock()
        self._done = False
        self._cancelled = False
        self._link: Any = None
        self._error: OSError | None = None
        self.thread = threading.Thread(target=self._run, args=(open_link,), name=name, daemon=True)
        self.thread.start()

    def _run(self, open_link: Callable[[], Any]) -> None:
        link, error = None, None
        try:
            link = open_link()
        except OSError as e:  # unreachable, refused, timed out, TLS refused
            error = e
        except Exception as e:  # anything else still reaches the main loop as an OSError
            error = OSError("opening the sync link failed: %r" % (e,))
        with self._lock:
            self._done = True
            self._link, self._error = link, error
            abandoned = self._cancelled
        if abandoned and link is not None:
            link.close()

    def poll(self) -> Any:
        """The link once it is open, None while it is opening; raises the OSError it failed with."""
        with self._lock:
            if not self._done:
                return None
            if self._error is not None:
                raise self._error
            return self._link

    def cancel(self) -> None:
        """Give up on it: the link is closed now, or as soon as the worker has it."""
        with self._lock:
            self._cancelled = True
            link, self._link = self._link, None
        if link is not None:
            link.close()
