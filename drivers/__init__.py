"""Hardware interfaces and their implementations, split by where they run:

    drivers/portable/  CPython and MicroPython: interfaces, URL registry, wiring, QR-engine core,
                       GPIO, RTC, displays
    drivers/linux/     Linux gate (CPython): pyserial, OpenCV, OpenSSL, sockets; its entry module
    drivers/mcu/       MCU gate (MicroPython): machine.UART backends; its entry module

drivers/manifest.py says which of them go into which firmware image.
"""
