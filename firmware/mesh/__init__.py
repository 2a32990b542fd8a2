"""The station mesh: a gate announces the passages it accepted to the other gates of its
station and takes theirs into its replay cache and anti-passback (docs/mesh.md). Portable;
loaded only when mesh.enabled is set."""
