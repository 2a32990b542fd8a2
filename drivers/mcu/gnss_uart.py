"""A GNSS receiver on an MCU gate's `machine.UART` (MicroPython): the portable NMEA reader of
drivers/portable/gnss.py over the UART adapter of drivers/mcu/qrengine_uart.py.

    uart:2?baudrate=9600&tx=17&rx=16      (most receivers default to 9600 8N1; docs/drivers.md)
"""

from drivers.mcu.qrengine_uart import UartPort, open_uart, sleep_ms
from drivers.portable.gnss import GnssReceiver


def from_url(url: str, machine=None, ticks=None, sleep=sleep_ms) -> GnssReceiver:
    uart, _rest = open_uart(url, machine, 9600)
    return GnssReceiver(UartPort(uart, sleep))
