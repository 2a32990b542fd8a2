"""The gate's evidence of a passage, end to end with real ES256 keys on both store backends:
the gate journals the rider's ride code in each record (protocol/records.py version 2), signs
each BATCH with its device key (protocol/sync.py batch_signing_input), the back office checks
the batch signature, refuses a bad one by name, and keeps it with the batch
(Store.passage_evidence), so that the rider's and the gate's signatures prove each passage
to someone who trusts neither the operator's database nor its word."""

import pytest

from drivers.linux.crypto_openssl import OpenSSLSigner, OpenSSLVerifier, generate_key
from firmware.sync.client import SyncError, run_session
from host_sim import wallet
from protocol import records, ridecode, sync
from tests.synclab import DEVICE_ID, NOW, Lab


@pytest.fixture
def lab(tmp_path, store_target):
    lab = Lab(tmp_path, db=store_target)
    yield lab
    lab.close()


def _riders(n: int, issuer_id: int = 3):
    issuer = wallet.Issuer(issuer_id)
    out = []
    for i in range(n):
        rider = wallet.Rider()
        issuer.issue(rider, 42 + i, NOW - 3600, NOW + 86400)
        out.append(rider)
    return issuer, out


def _journal_codes(lab: Lab, riders) -> list[records.Record]:
    recs = []
    for i, rider in enumerate(riders):
        code = ridecode.parse_text(rider.present(NOW + i))
        rec = records.Record(
            records.KIND_PASSAGE, 0, 0, 0, NOW + i, 1, 1, 3, value=250, code=code.raw
        )
        recs.append(lab.journal.append(rec))
    return recs


def test_every_stored_passage_carries_the_rider_and_gate_signatures(lab):
    issuer, riders = _riders(5)
    recs = _journal_codes(lab, riders)
    run_session(lab.client(batch_size=2), lab.link("pipe"))  # three batches: 2 + 2 + 1
    v = OpenSSLVerifier()
    batches = set()
    for rec in recs:
        ev = lab.store.passage_evidence(DEVICE_ID, rec.seq)
        assert ev["record"] == rec.to_bytes() and ev["issuer"] == 3 == rec.issuer
        # the rider: the presentation over the credential, the credential by the issuer
        assert v.verify(ev["rider_pub"], ev["rider_signed"], ev["rider_sig"])
        signed = ev["rider_signed"]
        assert v.verify(issuer.public_key, signed[:60], signed[60:124])
        # the gate: its device key over the batch that carried the record
        assert ev["device_pub"] == lab.device_signer.public_key and ev["device_id"] == DEVICE_ID
        parts = records.split(ev["batch"])
        assert ev["record"] in parts
        assert ev["batch_signed"] == sync.batch_signing_input(DEVICE_ID, parts)
        assert ev["batch_hash"] == sync.batch_hash(parts)
        assert v.verify(ev["device_pub"], ev["batch_signed"], ev["batch_sig"])
        batches.add(ev["batch_hash"])
    assert len(batches) == 3
    # an altered record no longer matches its batch, nor the batch its signature
    forged = bytearray(recs[0].to_bytes())
    forged[24:28] = (9999).to_bytes(4, "big")  # value
    ev = lab.store.passage_evidence(DEVICE_ID, recs[0].seq)
    assert bytes(forged) not in records.split(ev["batch"])
    assert lab.store.passage_evidence(DEVICE_ID, 99) is None


def test_a_record_uploaded_twice_keeps_the_first_batch_that_holds_it(lab):
    _issuer, riders = _riders(3)
    recs = _journal_codes(lab, riders)
    raws = [r.to_bytes() for r in recs]
    sig1 = lab.device_signer.sign(sync.batch_signing_input(DEVICE_ID, raws[:2]))
    sig2 = lab.device_signer.sign(sync.batch_signing_input(DEVICE_ID, raws))
    lab.store.store_batch(DEVICE_ID, raws[:2], NOW, sig1)
    lab.store.store_batch(DEVICE_ID, raws, NOW + 5, sig2)  # its ACK was lost: all again
    assert lab.store.passage_evidence(DEVICE_ID, 1)["batch_sig"] == sig1
    assert lab.store.passage_evidence(DEVICE_ID, 3)["batch_sig"] == sig2
    # records that came without a signed batch (a factory-reset export) have no gate part
    lab.store.add_device(18, lab.device_signer.public_key, NOW)
    rec = records.Record(records.KIND_PASSAGE, 0, 18, 1, NOW, code=recs[0].code)
    lab.store.store_batch(18, [rec.to_bytes()], NOW)
    ev = lab.store.passage_evidence(18, 1)
    assert ev["batch"] is None and ev["batch_sig"] is None and ev["rider_sig"] is not None


class _BatchForger:
    """The gate's key for the session, another key for the batch signature."""

    def __init__(self, real):
        self.real = real
        self.other = OpenSSLSigner(generate_key())
        self.public_key = real.public_key

    def sign(self, msg: bytes) -> bytes:
        if msg.startswith(sync.BATCH_DOMAIN):
            return self.other.sign(msg)
        return self.real.sign(msg)


def test_a_batch_with_a_bad_signature_is_refused_by_name_and_nothing_stored(lab):
    _issuer, riders = _riders(2)
    _journal_codes(lab, riders)
    with pytest.raises(SyncError) as e:
        run_session(lab.client(signer=_BatchForger(lab.device_signer)), lab.link("pipe"))
    assert e.value.reason == "bad_batch_signature"
    assert lab.store.count() == 0 and lab.journal.pending_count() == 2
    assert any(a["outcome"] == "refused bad_batch_signature" for a in lab.store.auth_log())
    run_session(lab.client(), lab.link("pipe"))  # the gate's own signature: stored
    assert lab.store.count() == 2 and lab.journal.pending_count() == 0
