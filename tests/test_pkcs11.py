"""The gate's device key in a PKCS#11 token (drivers/linux/key_pkcs11.py), on a real token:
Debian's SoftHSM2, a private token directory per test session (SOFTHSM2_CONF), tokens made with
`softhsm2-util` as a technician makes them. The key pair is generated inside the token and never
leaves it; the gate signs its sync AUTH and its console proofs through it; a real sync session
with the back office runs with it; a wrong PIN, a missing token or module, a bad URL each give
their own typed error and reason."""

import itertools
import json
import os
import shutil
import subprocess
import threading
import time
import tty

import pytest

from drivers.linux import crypto_openssl as es256
from drivers.linux import entry as linux_gate
from drivers.linux import key_pkcs11, pkcs11_uri
from drivers.portable import registry
from firmware.compose import app
from firmware.compose.device import Device
from host_sim.backoffice.store import Store
from host_sim.backoffice.sync_server import HostKeys, serve_link
from host_sim.hardware.devices import ManualClock
from host_sim.station import gatedir
from protocol import certs, denylist, reasons, records, service, trustlist
from tests.synclab import FdLink

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "4321"
NOW = 1_767_254_400
DEVICE_ID = 1301
_labels = itertools.count(1)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory):
    """A private SoftHSM2: its token directory and config in a temporary directory, set in
    SOFTHSM2_CONF before the module is first loaded in this process."""
    assert os.path.exists(MODULE), "SoftHSM2 is missing: make setup installs Debian's softhsm2"
    assert shutil.which("softhsm2-util"), "softhsm2-util is missing (Debian's softhsm2)"
    d = tmp_path_factory.mktemp("softhsm")
    (d / "tokens").mkdir()
    conf = d / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\n" % (d / "tokens"))
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return d


def init_token(softhsm, pin: str = PIN) -> str:
    """A new token, as a technician initialises one; returns its label."""
    label = "gate%d-%d" % (os.getpid(), next(_labels))
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label]
        + ["--pin", pin, "--so-pin", "87654321"],
        check=True,
        capture_output=True,
    )
    return label


def url_for(softhsm, label: str, pin: str = PIN, obj: str = "device") -> str:
    pin_file = softhsm / ("%s.pin" % label)
    pin_file.write_text(pin + "\n")
    return "pkcs11:token=%s;object=%s?module-path=%s&pin-source=file:%s" % (
        label,
        obj,
        MODULE,
        pin_file,
    )


# -- the URI --------------------------------------------------------------------------------


def test_a_pkcs11_uri_names_token_object_module_and_pin():
    u = pkcs11_uri.parse(
        "pkcs11:token=My%20Gate;object=device;id=%01%02?module-path=/m.so&pin-source=file:/p"
    )
    assert (u.token, u.label, u.key_id, u.module, u.pin_file()) == (
        "My Gate",
        "device",
        b"\x01\x02",
        "/m.so",
        "/p",
    )
    assert (
        pkcs11_uri.parse("pkcs11:token=t;object=o?module-path=/m.so&pin-source=pin").pin_file()
        == "pin"
    )


@pytest.mark.parametrize(
    "url, why",
    [
        ("pkcs11:token=t;object=o", "module-path"),
        ("pkcs11:object=o?module-path=/m.so", "token"),
        ("pkcs11:token=t?module-path=/m.so", "object"),
        ("pkcs11:token=t;token=u;object=o?module-path=/m.so", "twice"),
        ("pkcs11:token=t;object=o;lable=x?module-path=/m.so", "unknown path attribute"),
        ("pkcs11:token=t;object=o?module-path=/m.so&module=/n.so", "unknown query attribute"),
        ("pkcs11:token=t;object=o?module-path=/m.so&pin-value=1&pin-source=p", "not both"),
        ("pkcs11:token=t%2;object=o?module-path=/m.so", "percent"),
        ("pkcs11:token=t;object=o;type=cert?module-path=/m.so", "private key"),
        ("pkcs11:token=t x;object=o?module-path=/m.so", "printable"),
        ("pkcs11:token;object=o?module-path=/m.so", "NAME=VALUE"),
        ("file:device.key", "not a PKCS#11 URI"),
    ],
)
def test_a_bad_device_key_url_is_refused_with_its_reason(url, why):
    with pytest.raises(pkcs11_uri.Pkcs11UriError, match=why) as e:
        registry.open_device("key", url) if url.startswith("pkcs11:") else pkcs11_uri.parse(url)
    assert e.value.reason == "key_url_bad" and reasons.number("key_url_bad") == 293


# -- the key in the token -------------------------------------------------------------------


def test_the_key_is_generated_inside_the_token_and_cannot_be_exported(softhsm):
    label = init_token(softhsm)
    key = registry.open_device("key", url_for(softhsm, label))
    assert isinstance(key, key_pkcs11.TokenKey) and key.signer() is None  # none yet
    key.generate()
    signer = key.signer()
    assert len(signer.public_key) == 33 and signer.public_key[0] in (2, 3)
    msg = b"AUTH of a sync session"
    sig = signer.sign(msg)
    assert len(sig) == 64 and es256.verifier().verify(signer.public_key, msg, sig)
    assert not es256.verifier().verify(signer.public_key, msg + b"!", sig)
    key.generate()  # a second GEN_KEY keeps the key
    assert key.signer().public_key == signer.public_key
    # what the token says of the private key: made there, never extractable, never readable
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    token = pkcs11.lib(MODULE).get_token(token_label=label)
    with token.open() as s:  # the process is logged in already (PKCS#11 logs in per process)
        (priv,) = s.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
        assert priv[Attribute.LOCAL] and priv[Attribute.SENSITIVE]
        assert not priv[Attribute.EXTRACTABLE] and priv[Attribute.NEVER_EXTRACTABLE]
        with pytest.raises(pkcs11.PKCS11Error):  # CKA_VALUE of a sensitive key: refused
            priv[Attribute.VALUE]
    key.forget()  # a factory reset destroys it
    assert key.signer() is None
    key.close()


def test_a_wrong_pin_is_a_typed_error_and_is_not_sent_again(softhsm):
    label = init_token(softhsm)
    good = registry.open_device("key", url_for(softhsm, label))
    good.generate()
    good.close()
    url = url_for(softhsm, label, pin="0000", obj="device")
    key = registry.open_device("key", url)
    with pytest.raises(key_pkcs11.TokenPinError, match="refused the PIN") as e:
        key.signer()
    assert e.value.reason == "key_token_pin" and isinstance(e.value, OSError)
    first = e.value
    with pytest.raises(key_pkcs11.TokenPinError) as again:
        key.signer()
    assert again.value is first  # the same refusal: the wrong PIN was not tried again
    # the technician fixes the PIN file: the next use logs in
    (softhsm / ("%s.pin" % label)).write_text(PIN + "\n")
    assert key.signer() is not None
    key.close()


def test_a_missing_token_module_or_pin_file_is_a_typed_error(softhsm):
    missing = registry.open_device("key", url_for(softhsm, "no-such-token"))
    with pytest.raises(key_pkcs11.TokenUnavailable, match="no PKCS#11 token labelled") as e:
        missing.signer()
    assert e.value.reason == "key_token_unavailable" and e.value.exit_code == 3
    no_module = registry.open_device(
        "key", "pkcs11:token=t;object=o?module-path=/nonexistent/libpkcs11.so&pin-value=1"
    )
    with pytest.raises(key_pkcs11.TokenUnavailable, match="no PKCS#11 module"):
        no_module.signer()
    label = init_token(softhsm)
    no_pin = registry.open_device(
        "key", "pkcs11:token=%s;object=o?module-path=%s&pin-source=/no/pin" % (label, MODULE)
    )
    with pytest.raises(key_pkcs11.TokenPinError, match="PIN file"):
        no_pin.signer()


# -- a gate with its key in the token -------------------------------------------------------


def gate_with_token(tmp_path, softhsm):
    """A provisioned gate whose device.key file is gone: its key is made in a token, and the
    operator root certifies the token's public key."""
    root = es256.OpenSSLSigner(es256.generate_key())
    host = es256.OpenSSLSigner(es256.generate_key())
    issuer = es256.OpenSSLSigner(es256.generate_key())
    rid = trustlist.root_key_id(root.public_key)
    ik = trustlist.IssuerKey(1, issuer.public_key, 0xFFFF, NOW - 86400, NOW + 86400)
    config = {
        "version": 1,
        "device_id": DEVICE_ID,
        "name": "T1",
        "station": 3,
        "lane": 1,
        "mode": "metro",
        "direction": "entry",
        "scope": 1,
        "sync": {"host_key": host.public_key.hex(), "interval_s": 30},
    }
    d = str(tmp_path / "gate")
    gatedir.provision(
        d,
        DEVICE_ID,
        root,
        es256.OpenSSLSigner(es256.generate_key()).secret_bytes(),
        config,
        trustlist.build(1, NOW, NOW + 86400, [ik], root.sign, rid),
        denylist.build_snapshot(1, NOW, [], root),
        NOW,
    )
    os.remove(os.path.join(d, "device.key"))
    key = linux_gate.device_key({"device_key": url_for(softhsm, init_token(softhsm))})
    dev = Device.open(d, None, ManualClock(NOW), crypto=es256, key=key)
    assert dev.store.signer() is None and dev.store.generate_key()
    pub = dev.store.signer().public_key
    cert = certs.Cert(
        certs.KIND_DEVICE,
        DEVICE_ID,
        certs.key_id(root.public_key),
        NOW - 300,
        NOW + 86400,
        pub,
        0,
        "T1",
    )
    with open(os.path.join(d, "cert.bin"), "wb") as f:
        f.write(certs.sign(cert, root))
    return dev, key, host, pub


def test_a_real_sync_session_is_authenticated_by_the_token_held_key(tmp_path, softhsm):
    dev, key, host, pub = gate_with_token(tmp_path, softhsm)
    assert not os.path.exists(os.path.join(dev.dir, "device.key"))  # nothing on disk
    assert dev.console.missing() == []  # in service: its cert names the token's key
    for i in range(12):
        dev.journal.append(records.Record(records.KIND_PASSAGE, 0, 0, 0, NOW + i, account_id=i))
    store = Store(str(tmp_path / "bo.sqlite"))
    store.add_device(DEVICE_ID, pub, NOW)
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()
    keys = HostKeys(host, es256.verifier())
    server = threading.Thread(
        target=serve_link, args=(store, keys, FdLink(master), stop, ManualClock(NOW)), daemon=True
    )
    server.start()
    lines: list = []
    ms = [0]
    syncer = app.Syncer(
        dev, linux_gate.connector({"sync_serial": os.ttyname(slave)}), lines.append, lambda: ms[0]
    )
    try:
        ms[0] += app.FIRST_SYNC_S * 1000
        deadline = time.monotonic() + 20
        syncer.poll()
        while syncer.busy and time.monotonic() < deadline:
            syncer.poll()
            time.sleep(0.002)
        assert lines == ["sync: 12 records acknowledged, 0 pending"], lines
        assert store.count() == 12 and dev.journal.pending_count() == 0
    finally:
        stop.set()
        server.join(5)
        os.close(master)
        os.close(slave)
        dev.close()
        store.close()
        key.close()


def test_a_token_keyed_gate_refuses_tls_to_another_machine_and_says_why(tmp_path, softhsm):
    dev, key, _host, _pub = gate_with_token(tmp_path, softhsm)
    connect = linux_gate.connector({})
    with pytest.raises(OSError, match="in a token"):
        connect(dev, ("bo.example", 7700))
    dev.close()
    key.close()


def test_the_console_reports_a_token_that_refuses_its_pin(tmp_path, softhsm):
    dev, key, _host, _pub = gate_with_token(tmp_path, softhsm)
    key.close()
    label = key.uri.token
    (softhsm / ("%s.pin" % label)).write_text("9999\n")
    bad = linux_gate.device_key({"device_key": url_for(softhsm, label, pin="9999")})
    dev2 = Device.open(dev.dir, None, ManualClock(NOW), crypto=es256, key=bad)
    assert dev2.store.signer() is None and dev2.store.key_error.reason == "key_token_pin"
    assert "device_key" in dev2.console.missing()
    with pytest.raises(key_pkcs11.TokenPinError):  # sync says why, not "not provisioned"
        dev2.sync_client()
    dev2.close()
    dev.close()


def test_a_device_key_url_that_does_not_parse_leaves_the_console_running(tmp_path, softhsm):
    dev, key, _host, _pub = gate_with_token(tmp_path, softhsm)
    key.close()
    dev.close()
    broken = linux_gate.device_key({"device_key": "pkcs11:token=x;objekt=y?module-path=/m.so"})
    dev2 = Device.open(dev.dir, None, ManualClock(NOW), crypto=es256, key=broken)
    assert dev2.store.signer() is None and dev2.store.key_error.reason == "key_url_bad"
    status = json.loads(dev2.console._cmd_status(b""))
    assert status["key_store"] == "unusable" and "objekt" in status["key_error"]
    assert service.STATE_NAMES[dev2.console.lifecycle()] == "claimed"
    dev2.close()


def test_device_status_says_where_the_key_is_and_what_is_wrong():
    from provisioning.cli import device as device_cli

    assert device_cli._key_where({"key_store": "file"}) == ""
    where = device_cli._key_where({"key_store": "pkcs11", "key_error": "token 'gate' went away"})
    assert where == " (in a pkcs11 token) - token 'gate' went away"
