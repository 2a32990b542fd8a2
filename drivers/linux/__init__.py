"""Linux-gate drivers (CPython only): pyserial QR engines and barriers, OpenCV camera and QR
decoding, the OpenSSL signature backend, sysfs GPIO, TCP/TLS and serial sync links, and the Linux
image's entry module."""
