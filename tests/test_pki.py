import datetime
import ssl
import threading

from provisioning import pki


def test_keys_round_trip_with_and_without_passphrase(tmp_path):
    key = pki.new_key()
    for pw in (None, b"correct horse"):
        p = tmp_path / ("k%s.pem" % bool(pw))
        pki.save_key(key, str(p), pw)
        assert oct(p.stat().st_mode & 0o777) == "0o600"
        assert pki.load_key(str(p), pw).private_numbers() == key.private_numbers()


def test_tls_with_operator_ca_over_loopback(tmp_path):
    ca_key = pki.new_key()
    ca = pki.make_ca(ca_key, "faregate operator CA", datetime.datetime.now(datetime.UTC))
    now = datetime.datetime.now(datetime.UTC)
    srv_key, cli_key = pki.new_key(), pki.new_key()
    files = {}
    for name, key, server in (("srv", srv_key, True), ("cli", cli_key, False)):
        cert = pki.issue_cert(ca_key, ca, key.public_key(), name, now, server=server)
        files[name] = (str(tmp_path / (name + ".crt")), str(tmp_path / (name + ".key")))
        pki.save_cert(cert, files[name][0])
        pki.save_key(key, files[name][1])
    pki.save_cert(ca, str(tmp_path / "ca.crt"))

    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "ca.crt"))
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_cert_chain(*files["srv"])
    cctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    cctx.load_cert_chain(*files["cli"])

    import socket

    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]
    got = {}

    def serve():
        conn, _ = lsock.accept()
        with sctx.wrap_socket(conn, server_side=True) as s:
            got["peer"] = s.getpeercert()["subject"]
            s.sendall(s.recv(5))

    t = threading.Thread(target=serve)
    t.start()
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with cctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"hello")
            assert s.recv(5) == b"hello"
    t.join()
    lsock.close()
    assert got["peer"] == ((("commonName", "cli"),),)
