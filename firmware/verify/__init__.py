"""Verification: the validator pipeline and the state it checks against (trust list, deny list,
replay cache, time anchor, offline limits), opened from one state directory. Portable."""
