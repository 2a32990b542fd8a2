"""Simulated gate hardware: pty QR engines, camera frames, barriers, beams and loops, the
simulated board, one simulated gate booting the real image; a station's devices as `sim:` URL
backends (simbus.py)."""
