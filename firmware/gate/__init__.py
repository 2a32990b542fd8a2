"""Gate behaviour: the Gate (scans and hardware events in, journal and actuator commands out),
its mode tables (metro, parking, store; emergency, out of service), mode policy, sensor trackers
and the main loop. Portable."""
