# What firmware images take from drivers/ (read by provisioning/image_build.py, in the manner of
# micropython-lib's manifest.py). package() takes a folder and everything under it, module() one
# file; paths are relative to this folder.
module("__init__.py", profiles=("linux", "mcu"))
package("portable", profiles=("linux", "mcu"))  # runs on CPython and MicroPython
package("linux", profiles=("linux",))  # pyserial, OpenCV, OpenSSL, sockets: CPython only
package("mcu", profiles=("mcu",))  # machine.UART and the MCU entry module
