"""Hardware chosen by URL, the way pyserial's `serial_for_url` picks a backend. Portable.

A gate's configuration names each device by URL; the scheme picks the backend, the rest is the
backend's business (docs/drivers.md                    lists every form):

    kind        scheme            backend
    reader      serial, a path    drivers.linux.qrengine_serial  QR engine through pyserial
                (/dev/..., loop://, socket://, rfc2217://)
                uart              drivers.mcu.qrengine_uart     QR engine on machine.UART (MCU)
                cam, video        drivers.linux.camera          OpenCV VideoCapture + decoder
                evdev             drivers.linux.wedge_evdev     USB keyboard-wedge scanner
    barrier     serial            drivers.linux.barrier_serial  barrier/door controller, ASCII lines
                gpio              drivers.portable.gpio         relay + limit switches (MCU)
    pair        gpio              drivers.portable.gpio         passage beams or vehicle loops
    input       gpio              drivers.portable.gpio         fire alarm, door contact, buttons
    indicator   gpio              drivers.portable.gpio         LEDs and buzzer
    display     serial, stdout    drivers.portable.display      character display, console
    rtc         system, machine   drivers.portable.rtc          system clock, machine.RTC
    link        serial, a path    drivers.linux.link_serial     sync link on a serial port
                uart              drivers.mcu.link_uart         sync link on machine.UART (MCU)
    key         pkcs11            drivers.linux.key_pkcs11      the device key in a PKCS#11 token
                                                                (device.json "device_key"; none:
                                                                the owner-only file device.key)
    anpr        http              drivers.linux.anpr_http       ANPR camera's HTTP push (parking)
    basket      tcp               drivers.linux.basket_tcp      a store's basket source (lines)
    disk        (none built in)                                 a file layer other than
                                                                firmware.platform's

The simulator is just more backends, as python-can's virtual bus is: host_sim registers its own
schemes with `register()` at run time (`sim:` for every kind: host_sim/hardware/simbus.py;
`simcam:` readers: host_sim/hardware/camera.py), so the gate's wiring code is the same for real
and simulated hardware. drivers/ never imports host_sim.
Every factory is called as `factory(url, machine=None, ticks=None)`.
"""

from protocol.errors import UsageError

BACKENDS = {
    "reader": {
        "serial": "drivers.linux.qrengine_serial:from_url",
        "uart": "drivers.mcu.qrengine_uart:from_url",
        "cam": "drivers.linux.camera:from_url",
        "video": "drivers.linux.camera:from_url",
        "evdev": "drivers.linux.wedge_evdev:from_url",
    },
    "barrier": {
        "serial": "drivers.linux.barrier_serial:from_url",
        "gpio": "drivers.portable.gpio:barrier_from_url",
    },
    "pair": {"gpio": "drivers.portable.gpio:pair_from_url"},
    "input": {"gpio": "drivers.portable.gpio:input_from_url"},
    "indicator": {"gpio": "drivers.portable.gpio:indicator_from_url"},
    "display": {
        "serial": "drivers.portable.display:from_url",
        "stdout": "drivers.portable.display:from_url",
    },
    "rtc": {
        "system": "drivers.portable.rtc:system_from_url",
        "machine": "drivers.portable.rtc:machine_from_url",
    },
    "link": {
        "serial": "drivers.linux.link_serial:from_url",
        "uart": "drivers.mcu.link_uart:from_url",
    },
    "disk": {},
    "key": {"pkcs11": "drivers.linux.key_pkcs11:from_url"},
    "gnss": {
        "serial": "drivers.linux.gnss_serial:from_url",
        "uart": "drivers.mcu.gnss_uart:from_url",
    },
    "anpr": {"http": "drivers.linux.anpr_http:from_url"},  # plate camera push (parking lanes)
    "basket": {"tcp": "drivers.linux.basket_tcp:from_url"},  # a store's POS / shelf system
}

SERIAL_URLS = ("loop://", "socket://", "rfc2217://", "spy://", "alt://", "hwgrep://")


class NoBackend(UsageError):
    """No backend is registered for this kind of device and URL scheme (a misconfigured device
    URL: exit code 2)."""

    reason = "no_backend"


def scheme_of(url: str) -> str:
    if url.startswith("/"):
        return "serial"
    for prefix in SERIAL_URLS:
        if url.startswith(prefix):
            return "serial"
    i = url.find(":")
    if i <= 0:
        raise NoBackend("not a device URL: %r" % url)
    return url[:i]


def register(kind: str, scheme: str, factory) -> None:
    """Add (or replace) a backend: `factory` is a callable or a "module:function" string,
    called as `factory(url, machine=None, ticks=None)`; it refuses (ValueError) options it
    does not know."""
    BACKENDS.setdefault(kind, {})[scheme] = factory


def _resolve(factory):
    if not isinstance(factory, str):
        return factory
    module, _, name = factory.partition(":")
    mod = __import__(module)
    for part in module.split(".")[1:]:
        mod = getattr(mod, part)
    return getattr(mod, name)


def open_device(kind: str, url: str, machine=None, ticks=None):
    """Build the device of `kind` that `url` names."""
    table = BACKENDS.get(kind)
    if table is None:
        raise NoBackend("unknown device kind %r" % kind)
    scheme = scheme_of(url)
    factory = table.get(scheme)
    if factory is None:
        raise NoBackend(
            "no %s backend for %r (known schemes: %s)" % (kind, url, ", ".join(sorted(table)))
        )
    return _resolve(factory)(url, machine=machine, ticks=ticks)
