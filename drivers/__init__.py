"""Hardware interfaces and their implementations per platform (see drivers/interfaces.py)."""

# Modules that run on MicroPython too and so go into MCU images (besides drivers/mcu_*.py): the
# QR-engine core and its machine.UART backend, GPIO, RTC, displays, the URL registry, wiring,
# the sync link on machine.UART.
PORTABLE = (
    "qrengine.py",
    "qrengine_uart.py",
    "gpio.py",
    "rtc.py",
    "display.py",
    "registry.py",
    "wiring.py",
    "link_uart.py",
)
