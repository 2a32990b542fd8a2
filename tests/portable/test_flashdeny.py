"""firmware/verify/flashdeny.py: the MCU gates' deny store, searched in place in deny.base, on
both interpreters. It answers as the in-RAM store does (firmware/verify/denystore.py) for the
same lists, applies deltas by rewriting deny.base through a temp file (a failed rewrite keeps
the old version: tests/portable/test_storage_faults.py)."""

from firmware.verify.denystore import DenyStore
from firmware.verify.flashdeny import FlashDenyStore
from firmware.verify.gatestate import open_deny
from firmware.verify.truststore import ListError
from protocol import denyfile, denylist
from tests.portable import codes
from tests.portable.harness import mkdtemp, raises, rmtree


def ACC(account, issuer=1):  # codes' credentials are issuer key 1's
    return denylist.account_key(issuer, account)


def CRED(account, cred_no, issuer=1):
    return denylist.credential_key(issuer, account, cred_no)


def _keys(n, seed=7):
    """n distinct deny entries: whole accounts and credentials of some accounts, of issuers 1,
    2 and 5 (most of them issuer 1's), unordered."""
    out = set()
    x = seed
    while len(out) < n:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        account = x % 5000
        issuer = (1, 1, 2, 5)[(x >> 12) % 4]
        out.add(ACC(account, issuer) if x & 1 else CRED(account, (x >> 8) % 6 + 1, issuer))
    return sorted(out)


def _same_answers(flash, ram):
    for issuer in (0, 1, 2, 5):
        for account in range(0, 5002, 3):
            for cred in (1, 2, 5):
                got = flash.is_denied(issuer, account, cred)
                assert got == ram.is_denied(issuer, account, cred), (issuer, account, cred)


def _with(fn):
    d = mkdtemp("flashdeny")
    try:
        fn(d)
    finally:
        rmtree(d)


def test_lookups_in_the_file_answer_as_the_array_does():
    def body(d):
        keys = _keys(700)
        ram = DenyStore.from_keys(keys)
        # a small block and index, so the search takes the index, seeks and one block read
        flash = FlashDenyStore(d, codes.ROOTS, codes.VERIFIER, index_keys=16, chunk=256)
        assert flash.install(codes.deny_snapshot(1, keys))
        assert len(flash) == 700 and flash.version == 1 and len(flash.index) <= 16
        _same_answers(flash, ram)
        for e in keys[:50]:
            issuer, k = denylist.split_entry(e)
            account, cred = k >> 24, k & 0xFFFFFF
            assert flash.is_denied(issuer, account, cred or 9)
        assert [i for i, _lo, _hi in flash.sections] == [1, 2, 5]
        flash.close()
        again = FlashDenyStore(d, codes.ROOTS, codes.VERIFIER, index_keys=0, chunk=64)
        assert again.version == 1 and len(again) == 700 and not again.index
        _same_answers(again, ram)
        again.close()

    _with(body)


def test_deltas_rewrite_the_file_and_match_the_in_ram_merge():
    def body(d):
        keys = _keys(300)
        flash = FlashDenyStore(d, codes.ROOTS, codes.VERIFIER, index_keys=8, chunk=128)
        ram = DenyStore(None, codes.ROOTS, codes.VERIFIER)
        snap = codes.deny_snapshot(1, keys)
        assert flash.install(snap) and ram.install(snap)
        adds = [ACC(6000), CRED(6001, 2), keys[10], ACC(6000, 3)]  # keys[10]: denied already
        removes = [keys[0], keys[150], keys[-1]]
        delta = codes.deny_delta(1, 2, adds=sorted(adds), removes=sorted(removes))
        assert flash.install(delta) and ram.install(delta)
        assert len(flash) == len(ram) and flash.version == 2
        _same_answers(flash, ram)
        assert flash.is_denied(1, 6000, 1) and flash.is_denied(1, 6001, 2)
        assert flash.is_denied(3, 6000, 1) and not flash.is_denied(2, 6000, 1)
        assert flash.sections == ram.sections
        assert not flash.install(delta)  # already applied
        gap = codes.deny_delta(5, 6, adds=[ACC(1)])
        assert raises(ListError, flash.install, gap).reason == "deny_gap"
        forged = codes.deny_delta(2, 3, adds=[ACC(1)], signer=codes.FORGER)
        assert raises(ListError, flash.install, forged).reason == "list_unknown_key"
        with open(d + "/deny.base", "rb") as f:
            found = denyfile.parse_base(f.read())  # the file is a whole, valid deny.base
        assert found is not None and found[0] == 2 and found[4] == ram.sections
        assert list(denyfile.keys_from_le(found[2])) == list(ram.keys)
        assert flash.entries() == ram.entries()
        flash.close()
        small = FlashDenyStore(d, codes.ROOTS, codes.VERIFIER, capacity=len(ram) + 1)
        more = codes.deny_delta(2, 3, adds=[ACC(7000), ACC(7001)])
        assert raises(ListError, small.install, more).reason == "deny_full"
        assert small.version == 2 and len(small) == len(ram)
        small.close()

    _with(body)


def test_a_damaged_base_is_refused_at_open():
    def body(d):
        s = FlashDenyStore(d, codes.ROOTS, codes.VERIFIER)
        s.install(codes.deny_snapshot(1, [ACC(1), ACC(2)]))
        s.close()
        with open(d + "/deny.base", "r+b") as f:
            f.seek(denyfile.HEAD_LEN_FRESH + 8)
            f.write(b"\xff")  # a flipped byte: the CRC catches it at open
        damaged = FlashDenyStore(d, codes.ROOTS, codes.VERIFIER)
        assert damaged.version == 0 and len(damaged) == 0 and damaged.load_error
        assert not damaged.is_denied(1, 1, 1)
        assert damaged.install(codes.deny_snapshot(2, [ACC(3)]))  # the next snapshot mends it
        assert damaged.is_denied(1, 3, 1) and not damaged.is_denied(1, 1, 1)
        damaged.close()

    _with(body)


def test_a_log_left_by_the_in_ram_store_is_folded_in_and_the_backend_is_chosen():
    def body(d):
        ram = DenyStore(d, codes.ROOTS, codes.VERIFIER)
        ram.install(codes.deny_snapshot(1, [ACC(1)]))
        ram.install(codes.deny_delta(1, 2, adds=[ACC(2)]))
        assert ram.log_records == 1
        flash = open_deny(d, codes.ROOTS, codes.VERIFIER, backend="file")
        assert isinstance(flash, FlashDenyStore) and flash.status()["backend"] == "file"
        assert flash.version == 2 and flash.is_denied(1, 2, 1) and flash.status()["entries"] == 2
        with open(d + "/deny.log", "rb") as f:
            assert f.read() == b""  # folded into deny.base
        flash.close()
        back = open_deny(d, codes.ROOTS, codes.VERIFIER, backend="ram")
        assert type(back) is DenyStore and back.version == 2 and back.entries() == [ACC(1), ACC(2)]

    _with(body)


def test_both_stores_keep_valid_until_across_a_restart():
    def body(d):
        for cls, sub in ((DenyStore, "/ram"), (FlashDenyStore, "/flash")):
            path = d + sub
            _mkdir(path)
            store = cls(path, codes.ROOTS, codes.VERIFIER)
            assert store.valid_until == 0 and not store.stale(codes.NOW + 10**6)
            snap = codes.deny_snapshot(1, [ACC(5)], valid_until=codes.NOW + 100)
            assert store.install(snap)
            assert store.valid_until == codes.NOW + 100
            assert not store.stale(codes.NOW + 99) and store.stale(codes.NOW + 100)
            beat = codes.deny_delta(1, 2, valid_until=codes.NOW + 500)  # empty: freshness only
            assert store.install(beat) and store.version == 2 and store.is_denied(1, 5, 1)
            assert not store.stale(codes.NOW + 400)
            store.close()
            again = cls(path, codes.ROOTS, codes.VERIFIER)
            assert (again.version, again.valid_until) == (2, codes.NOW + 500)
            assert again.status()["valid_until"] == codes.NOW + 500 and again.is_denied(1, 5, 1)
            again.compact()  # the RAM store folds the log into its deny.base
            again.close()
            third = cls(path, codes.ROOTS, codes.VERIFIER)
            assert (third.version, third.valid_until) == (2, codes.NOW + 500)
            plain = codes.deny_delta(2, 3, adds=[ACC(6)])  # valid_until 0: none any more
            assert third.install(plain) and third.valid_until == 0
            third.close()

    _with(body)


def _mkdir(path):
    import os

    os.mkdir(path)


def test_the_file_store_migrates_a_deny_base_from_before_the_issuer():
    def body(d):
        import struct
        from binascii import crc32

        keys = struct.pack("<QQ", 7 << 24, 9 << 24)
        with open(d + "/deny.base", "wb") as f:
            f.write(struct.pack("<4sIIII", b"FGDS", 4, codes.NOW - 600, 2, crc32(keys)) + keys)
        flash = FlashDenyStore(d, codes.ROOTS, codes.VERIFIER, index_keys=4, chunk=64)
        assert flash.version == 4 and flash.legacy and len(flash) == 2
        assert (
            flash.is_denied(1, 7, 1) and flash.is_denied(2, 9, 3) and not flash.is_denied(1, 8, 1)
        )
        delta = codes.deny_delta(4, 5, adds=[ACC(8)])
        assert raises(ListError, flash.install, delta).reason == "deny_needs_issuer"
        assert flash.install(codes.deny_snapshot(5, [ACC(8), ACC(7, 2)]))
        assert not flash.legacy and flash.entries() == [ACC(8), ACC(7, 2)]
        assert flash.is_denied(2, 7, 1) and not flash.is_denied(1, 7, 1)
        flash.close()

    _with(body)
