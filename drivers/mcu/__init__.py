"""MCU-gate drivers (MicroPython): the QR engine and sync link on machine.UART, and the MCU image's
entry module."""
