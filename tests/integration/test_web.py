"""The HTTP side against real clients: --web.config.file's TLS (with a test
CA, server and client certificates made by the openssl CLI), basic auth
(bcrypt hashes made by libcrypt through Python's crypt module) and response
headers; its configuration errors; and the hardening of the server itself:
slow and idle clients, methods, paths and the number of connections."""

import base64
import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import unittest
import warnings

from harness import (EXPORTER, Exporter, Prometheus, TempDirTest, as_user, free_port,
                     parse_metrics, promtool_check, tool, value)

with warnings.catch_warnings():
    # Deprecated since Python 3.11 (PEP 594), still shipped by Debian's
    # python3.11, and the one way to reach libcrypt's bcrypt from Python.
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

UNPRIVILEGED = "nobody"
# Every wait on a socket in these tests is bounded by this.
IO_TIMEOUT = 20.0
# The flags that keep the exporter quick: one cheap collector, a small cache.
QUICK = ("--collector.disable-defaults", "--collector.inode")

USER, PASSWORD = "prometheus", "s3cr:t \u00fc"  # a ':' and a non-ASCII letter in the password
OTHER_USER, OTHER_PASSWORD = "bob", "hunter2"


def bcrypt(password, cost=4):
    """A bcrypt ($2b$) hash of password, by libcrypt. Cost 4 keeps the tests quick."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2 ** cost))
    if not hashed or not hashed.startswith(f"$2b${cost:02d}$") or len(hashed) != 60:
        raise AssertionError(f"libcrypt made no bcrypt hash: {hashed!r}")
    return hashed


def basic(user, password):
    """An Authorization header value for HTTP basic auth, UTF-8 as browsers send it."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def assert_nothing_listens(test, port):
    with test.assertRaises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def request(port, method="GET", path="/metrics", headers=None, context=None,
            timeout=IO_TIMEOUT):
    """(status, headers, body) of one request, over TLS when context is given."""
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def raw_exchange(port, data, timeout=IO_TIMEOUT):
    """Sends data as is on a new TCP connection and returns all that comes
    back until the server closes it (or the timeout, then raises)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        else:
            raise AssertionError(f"server did not close the connection within {timeout}s")
        return out


def split_response(data):
    """(status, {lower-case header: value}, body) of a raw HTTP/1.x response."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"not an HTTP response: {data[:200]!r}")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/\d\.\d (\d{3}) ", lines[0])
    if not m:
        raise AssertionError(f"not an HTTP status line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, val = line.partition(":")
        headers[name.strip().lower()] = val.strip()
    return int(m.group(1)), headers, body


def thread_count(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^Threads:\s+(\d+)$", f.read(), re.M).group(1))


def check_metrics(test, body):
    """The body is a valid exposition from this exporter."""
    text = body.decode()
    code, out = promtool_check(text)
    test.assertEqual((code, out), (0, ""), text)
    test.assertEqual(value(parse_metrics(text), "gocache_exporter_build_info"), 1)
    return text


def run_to_exit(args, user=None, binary=None, timeout=20):
    """Runs the exporter on a free port to completion; (result, port)."""
    port = free_port()
    cmd = [binary or EXPORTER, f"--web.listen-address=127.0.0.1:{port}", *args]
    if user:
        cmd = as_user(user, cmd)
    return subprocess.run(cmd, capture_output=True, timeout=timeout), port


class WebTest(TempDirTest):
    """A temporary cache directory and helpers to write web configurations."""

    def setUp(self):
        super().setUp()
        self.cache = os.path.join(self.tmp, "cache")
        os.mkdir(self.cache)

    def write_config(self, text, name="web.yml"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, config_text=None, *args):
        """The exporter, on a free port, with this web configuration."""
        flags = [f"--cache.dir={self.cache}", *QUICK, *args]
        if config_text is not None:
            flags.append(f"--web.config.file={self.write_config(config_text)}")
        return Exporter(*flags)

    def assert_config_error(self, config_path, *want, user=None, binary=None):
        """The exporter exits 2 with one line on stderr naming what is wrong,
        before listening."""
        r, port = run_to_exit([f"--web.config.file={config_path}", f"--cache.dir={self.cache}",
                               *QUICK], user=user, binary=binary)
        err = r.stderr.decode(errors="replace")
        self.assertEqual(r.returncode, 2, err)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertTrue(err.startswith("gocache_exporter: "), err)
        for w in want:
            self.assertIn(w, err)
        self.assertNotIn("listening", err)
        self.assertEqual(r.stdout, b"")
        assert_nothing_listens(self, port)
        return err


class CertTest(WebTest):
    """Certificates made afresh for each test by the openssl CLI: a server CA
    with the server's certificate (SAN IP:127.0.0.1), a client CA with a
    client certificate, and another CA with a client certificate the server
    must not trust."""

    def setUp(self):
        super().setUp()
        self.pki = os.path.join(self.tmp, "pki")
        os.mkdir(self.pki)
        self.make_ca("server-ca")
        self.make_ca("client-ca")
        self.make_ca("other-ca")
        self.make_cert("server", "server-ca",
                       ["subjectAltName=IP:127.0.0.1", "extendedKeyUsage=serverAuth"])
        self.make_cert("client", "client-ca", ["extendedKeyUsage=clientAuth"])
        self.make_cert("rogue", "other-ca", ["extendedKeyUsage=clientAuth"])

    def pem(self, name, ext="crt"):
        return os.path.join(self.pki, f"{name}.{ext}")

    def openssl(self, *args):
        r = subprocess.run([tool("openssl"), *args], capture_output=True, timeout=60,
                           cwd=self.pki)
        if r.returncode != 0:
            raise AssertionError(f"openssl {' '.join(args)}: {r.stderr.decode()}")

    def make_ca(self, name):
        ext = self.pem(name, "ext")
        with open(ext, "w") as f:
            f.write("[v3]\nbasicConstraints=critical,CA:TRUE\n"
                    "keyUsage=critical,keyCertSign,cRLSign\n"
                    "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n")
        self.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-nodes", "-keyout", self.pem(name, "key"), "-out", self.pem(name),
                     "-days", "2", "-subj", f"/CN=gocache test {name}", "-config", ext,
                     "-extensions", "v3")

    def make_cert(self, name, ca, extensions):
        ext = self.pem(name, "ext")
        with open(ext, "w") as f:
            f.write("\n".join(["basicConstraints=critical,CA:FALSE",
                               "keyUsage=critical,digitalSignature",
                               "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid",
                               *extensions]) + "\n")
        self.openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-nodes", "-keyout", self.pem(name, "key"), "-out", self.pem(name, "csr"),
                     "-subj", f"/CN=gocache test {name}")
        self.openssl("x509", "-req", "-in", self.pem(name, "csr"), "-CA", self.pem(ca),
                     "-CAkey", self.pem(ca, "key"), "-set_serial",
                     str(int.from_bytes(os.urandom(8), "big")), "-days", "2", "-extfile", ext,
                     "-out", self.pem(name))

    def tls_config(self, **extra):
        """tls_server_config with the server's certificate and key, plus extra keys."""
        lines = ["tls_server_config:", f"  cert_file: {self.pem('server')}",
                 f"  key_file: {self.pem('server', 'key')}"]
        lines += [f"  {k}: {v}" for k, v in extra.items()]
        return "\n".join(lines) + "\n"

    def client(self, cert=None, minimum=None, maximum=None):
        """A client context that trusts the test server CA, with a client certificate."""
        ctx = ssl.create_default_context(cafile=self.pem("server-ca"))
        if cert:
            ctx.load_cert_chain(self.pem(cert), self.pem(cert, "key"))
        if minimum:
            ctx.minimum_version = minimum
        if maximum:
            ctx.maximum_version = maximum
        return ctx

    def tls_version(self, port, ctx):
        """The protocol version one handshake with ctx negotiates."""
        with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                return s.version()

    def assert_refused(self, port, ctx, what):
        """A request with ctx gets no HTTP response: the TLS handshake fails,
        or the server drops the connection right after it (TLS 1.3 sends the
        server's verdict on a client certificate after the client has
        finished its handshake). Returns the error."""
        try:
            status, _, body = request(port, context=ctx)
        except (ssl.SSLError, ConnectionError, http.client.HTTPException) as e:
            return e
        self.fail(f"{what}: got HTTP {status} ({body[:80]!r}), want the connection refused")


class TlsTest(CertTest):

    def test_client_trusting_the_ca_gets_valid_metrics(self):
        with self.start(self.tls_config()) as exporter:
            self.assertIn("tls=true", exporter.log())
            status, headers, body = request(exporter.port, context=self.client())
            self.assertEqual(status, 200)
            self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
            check_metrics(self, body)
            self.assertEqual(request(exporter.port, path="/", context=self.client())[0], 200)
            # The certificate really is checked: a client trusting only the
            # system's CAs refuses the server.
            with self.assertRaises(ssl.SSLCertVerificationError):
                request(exporter.port, context=ssl.create_default_context())

    def test_plain_http_to_the_tls_port_fails(self):
        with self.start(self.tls_config()) as exporter:
            with self.assertRaises((ConnectionError, http.client.HTTPException)):
                request(exporter.port)
            # Whatever comes back before the server hangs up is no HTTP answer
            # and no metrics; and it does hang up.
            got = raw_exchange(exporter.port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            self.assertFalse(got.startswith(b"HTTP/"), got[:200])
            self.assertNotIn(b"gocache_", got)
            # And TLS clients are still served.
            self.assertEqual(request(exporter.port, context=self.client())[0], 200)

    def test_require_and_verify_client_cert(self):
        config = self.tls_config(client_auth_type="RequireAndVerifyClientCert",
                                 client_ca_file=self.pem("client-ca"))
        with self.start(config) as exporter:
            port = exporter.port
            self.assert_refused(port, self.client(), "no client certificate")
            self.assert_refused(port, self.client("rogue"), "a certificate from another CA")
            # The server's own certificate is signed by a CA the server does
            # not take for clients.
            self.assert_refused(port, self.client("server"), "a certificate from the server CA")
            # TLS 1.2, where the verdict comes inside the handshake.
            tls12 = ssl.TLSVersion.TLSv1_2
            with self.assertRaises(ssl.SSLError):
                self.tls_version(port, self.client(maximum=tls12))
            with self.assertRaises(ssl.SSLError):
                self.tls_version(port, self.client("rogue", maximum=tls12))

            status, _, body = request(port, context=self.client("client"))
            self.assertEqual(status, 200)
            check_metrics(self, body)
            self.assertEqual(self.tls_version(port, self.client("client", maximum=tls12)),
                             "TLSv1.2")
            # Refusals did not wedge the server.
            self.assertEqual(request(port, context=self.client("client"))[0], 200)

    def test_verify_client_cert_if_given(self):
        config = self.tls_config(client_auth_type="VerifyClientCertIfGiven",
                                 client_ca_file=self.pem("client-ca"))
        with self.start(config) as exporter:
            self.assertEqual(request(exporter.port, context=self.client())[0], 200)
            self.assertEqual(request(exporter.port, context=self.client("client"))[0], 200)
            self.assert_refused(exporter.port, self.client("rogue"), "a certificate from another CA")

    def test_require_any_client_cert(self):
        # Go's RequireAnyClientCert: a certificate must come, but is not verified.
        with self.start(self.tls_config(client_auth_type="RequireAnyClientCert")) as exporter:
            self.assert_refused(exporter.port, self.client(), "no client certificate")
            self.assertEqual(request(exporter.port, context=self.client("rogue"))[0], 200)

    def test_min_version_tls13_refuses_tls12_clients(self):
        tls12 = ssl.TLSVersion.TLSv1_2
        # This machine's OpenSSL lets a client speak TLS 1.2 (so that the
        # refusal below is the server's doing): the default minimum, TLS12,
        # serves a TLS1.2-only client.
        with self.start(self.tls_config()) as exporter:
            self.assertEqual(self.tls_version(exporter.port, self.client(maximum=tls12)), "TLSv1.2")
            self.assertEqual(request(exporter.port, context=self.client(maximum=tls12))[0], 200)
        with self.start(self.tls_config(min_version="TLS13")) as exporter:
            with self.assertRaises(ssl.SSLError) as refused:
                request(exporter.port, context=self.client(maximum=tls12))
            self.assertIn("PROTOCOL_VERSION", str(refused.exception).upper())
            self.assertEqual(self.tls_version(exporter.port, self.client()), "TLSv1.3")
            self.assertEqual(request(exporter.port, context=self.client())[0], 200)

    def test_max_version_tls12_refuses_tls13_only_clients(self):
        tls13 = ssl.TLSVersion.TLSv1_3
        with self.start(self.tls_config(max_version="TLS12")) as exporter:
            with self.assertRaises(ssl.SSLError):
                request(exporter.port, context=self.client(minimum=tls13))
            self.assertEqual(self.tls_version(exporter.port, self.client()), "TLSv1.2")

    def test_tls_with_basic_auth_and_headers(self):
        config = self.tls_config() + (
            f"basic_auth_users:\n  {USER}: {bcrypt(PASSWORD)}\n"
            "http_server_config:\n  headers:\n"
            "    Strict-Transport-Security: max-age=31536000; includeSubDomains\n")
        with self.start(config) as exporter:
            status, headers, _ = request(exporter.port, context=self.client())
            self.assertEqual(status, 401)
            self.assertEqual(headers["Strict-Transport-Security"],
                             "max-age=31536000; includeSubDomains")
            status, headers, body = request(exporter.port, context=self.client(),
                                            headers=basic(USER, PASSWORD))
            self.assertEqual(status, 200)
            self.assertEqual(headers["Strict-Transport-Security"],
                             "max-age=31536000; includeSubDomains")
            check_metrics(self, body)

    def test_idle_tls_handshake_is_cut_off(self):
        # A client that connects to the TLS port and never sends its hello
        # holds a connection no longer than the request timeout.
        with self.start(self.tls_config(), "--web.request-timeout=2s") as exporter:
            with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as s:
                start = time.monotonic()
                try:
                    got = s.recv(100)
                except socket.timeout:
                    self.fail("an idle TLS connection was still open after 10 s")
                except ConnectionResetError:
                    got = b""
                elapsed = time.monotonic() - start
            self.assertLess(elapsed, 6, "cut off too late")
            self.assertNotIn(b"gocache_", got)
            self.assertEqual(request(exporter.port, context=self.client())[0], 200)


class PrometheusScrapeTest(CertTest):
    """The README's setup, scraped by the client users have: Prometheus, whose
    TLS is Go's. Go's client refuses a TLS 1.3 CertificateRequest that
    carries an empty list of CA names, which OpenSSL's clients accept."""

    AUTH_TYPES = ("NoClientCert", "RequestClientCert", "RequireAnyClientCert",
                  "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")

    def test_prometheus_scrapes_every_client_auth_type_over_tls12_and_tls13(self):
        password = os.path.join(self.tmp, "password")
        with open(password, "w") as f:
            f.write(PASSWORD)
        exporters, jobs = {}, []
        for auth in self.AUTH_TYPES:
            for version in ("TLS12", "TLS13"):
                extra = {"client_auth_type": auth, "min_version": version,
                         "max_version": version}
                if "Verify" in auth:
                    extra["client_ca_file"] = self.pem("client-ca")
                config = self.tls_config(**extra) + (
                    f"basic_auth_users:\n  {USER}: {bcrypt(PASSWORD)}\n")
                job = f"{auth}_{version}"
                exporter = Exporter(f"--cache.dir={self.cache}", *QUICK,
                                    f"--web.config.file={self.write_config(config, job + '.yml')}")
                self.addCleanup(exporter.stop)
                exporters[job] = exporter
                jobs.append(f"""  - job_name: {job}
    scheme: https
    tls_config:
      ca_file: {self.pem("server-ca")}
      cert_file: {self.pem("client")}
      key_file: {self.pem("client", "key")}
    basic_auth:
      username: {USER}
      password_file: {password}
    static_configs:
      - targets: ['127.0.0.1:{exporter.port}']
""")
        prometheus = Prometheus(self.tmp, "global:\n  scrape_interval: 1s\n"
                                "scrape_configs:\n" + "".join(jobs))
        self.addCleanup(prometheus.stop)

        def healths():
            return {t["labels"]["job"]: (t["health"], t["lastError"])
                    for t in prometheus.targets()}

        deadline = time.monotonic() + 60
        while True:
            got = healths()
            if len(got) == len(exporters) and all(h == "up" for h, _ in got.values()):
                break
            if prometheus.proc.poll() is not None or time.monotonic() > deadline:
                self.fail(f"targets not all up: {got}\n{prometheus.output()}")
            time.sleep(0.5)
        # Each scrape really was TLS at the version the exporter was held to,
        # with the client certificate and password, and got the metrics.
        for job, exporter in exporters.items():
            r = prometheus.query(f'gocache_exporter_build_info{{job="{job}"}}')
            self.assertEqual([s["value"][1] for s in r["data"]["result"]], ["1"], job)
            self.assertIn("tls=true", exporter.log())


class BasicAuthTest(WebTest):

    def setUp(self):
        super().setUp()
        # bob's hash in the $2y$ spelling (htpasswd's), which libcrypt reads as $2b$.
        other = "$2y$" + bcrypt(OTHER_PASSWORD)[4:]
        self.config = (f"basic_auth_users:\n  {USER}: '{bcrypt(PASSWORD)}'\n"
                       f"  {OTHER_USER}: '{other}'\n")

    def test_only_the_right_credentials_are_let_in(self):
        with self.start(self.config) as exporter:
            self.assertIn("basic_auth=true", exporter.log())
            port = exporter.port
            for what, headers in [
                ("no credentials", {}),
                ("wrong password", basic(USER, "wrong")),
                ("password of another user", basic(USER, OTHER_PASSWORD)),
                ("unknown user", basic("mallory", PASSWORD)),
                ("empty user", basic("", PASSWORD)),
                ("password prefix", basic(USER, PASSWORD[:-1])),
                ("user name case", basic(USER.upper(), PASSWORD)),
                ("no colon", {"Authorization": "Basic " + base64.b64encode(USER.encode()).decode()}),
                ("not base64", {"Authorization": "Basic !!!notbase64!!!"}),
                ("another scheme", {"Authorization": "Bearer " + PASSWORD}),
            ]:
                with self.subTest(what):
                    status, headers_back, body = request(port, headers=headers)
                    self.assertEqual(status, 401)
                    self.assertTrue(headers_back["WWW-Authenticate"].startswith("Basic "),
                                    headers_back)
                    self.assertIn('realm="', headers_back["WWW-Authenticate"])
                    self.assertNotIn(b"gocache_", body)

            status, _, body = request(port, headers=basic(USER, PASSWORD))
            self.assertEqual(status, 200)
            check_metrics(self, body)
            status, _, body = request(port, headers=basic(OTHER_USER, OTHER_PASSWORD))
            self.assertEqual(status, 200)
            check_metrics(self, body)
            # A login that passed is remembered, but only for its own password.
            self.assertEqual(request(port, headers=basic(USER, "wrong"))[0], 401)
            self.assertEqual(request(port, headers=basic(USER, PASSWORD))[0], 200)

    def test_password_with_a_nul_and_more_is_not_the_password(self):
        # bcrypt reads its key as a C string; a password that only begins
        # with the right one, then a NUL, is still another password (Go's
        # bcrypt, which node_exporter uses, refuses it).
        with self.start(self.config) as exporter:
            self.assertEqual(request(exporter.port, headers=basic(USER, PASSWORD))[0], 200)
            for suffix in ("\0", "\0anything"):
                with self.subTest(suffix=suffix):
                    status, _, body = request(exporter.port,
                                              headers=basic(USER, PASSWORD + suffix))
                    self.assertEqual(status, 401)
                    self.assertNotIn(b"gocache_", body)

    def test_auth_guards_every_path_and_method(self):
        with self.start(self.config) as exporter:
            port = exporter.port
            for method, path, authorized in [("GET", "/", 200), ("GET", "/nope", 404),
                                             ("GET", "/metrics/", 404), ("HEAD", "/metrics", 200),
                                             ("POST", "/metrics", 405), ("DELETE", "/", 405)]:
                with self.subTest(method=method, path=path):
                    status, headers, body = request(port, method, path)
                    self.assertEqual(status, 401)
                    self.assertIn("WWW-Authenticate", headers)
                    self.assertNotIn(b"gocache_", body)
                    status, _, _ = request(port, method, path, headers=basic(USER, PASSWORD))
                    self.assertEqual(status, authorized)

    def test_bcrypt_cost_limit(self):
        hashed = bcrypt(PASSWORD)
        # The limit itself is taken (the hash is only read at start, so its
        # cost field can be rewritten without paying for a cost-14 hash).
        at_limit = hashed.replace("$04$", "$14$", 1)
        with self.start(f"basic_auth_users:\n  {USER}: '{at_limit}'\n") as exporter:
            self.assertEqual(request(exporter.port)[0], 401)
        above = hashed.replace("$04$", "$15$", 1)
        path = self.write_config(f"basic_auth_users:\n  {USER}: '{above}'\n")
        err = self.assert_config_error(path, f"basic_auth_users.{USER}", "15", "14")
        self.assertNotIn(above, err)  # no hash in logs

    def test_non_bcrypt_hashes_are_refused(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            sha512 = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_SHA512))
        for what, hashed in [("sha512-crypt", sha512), ("plain text", PASSWORD),
                             ("bcrypt, cut short", bcrypt(PASSWORD)[:-1]),
                             ("$2x$", "$2x$" + bcrypt(PASSWORD)[4:])]:
            with self.subTest(what):
                path = self.write_config(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
                self.assert_config_error(path, f"basic_auth_users.{USER}", "bcrypt")


class HeadersTest(WebTest):

    HEADERS = {
        "X-Frame-Options": "deny",
        "Strict-Transport-Security": "max-age=31536000",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'",
    }

    def config(self):
        lines = ["http_server_config:", "  headers:"]
        lines += [f'    {k}: "{v}"' for k, v in self.HEADERS.items()]
        lines += ["basic_auth_users:", f"  {USER}: '{bcrypt(PASSWORD)}'"]
        return "\n".join(lines) + "\n"

    def test_headers_on_every_response(self):
        auth = basic(USER, PASSWORD)
        with self.start(self.config()) as exporter:
            for method, path, headers, want in [("GET", "/metrics", auth, 200),
                                                ("GET", "/", auth, 200),
                                                ("HEAD", "/metrics", auth, 200),
                                                ("GET", "/metrics", {}, 401),
                                                ("GET", "/nope", auth, 404),
                                                ("POST", "/metrics", auth, 405)]:
                with self.subTest(method=method, path=path, status=want):
                    status, got, _ = request(exporter.port, method, path, headers=headers)
                    self.assertEqual(status, want)
                    for name, val in self.HEADERS.items():
                        self.assertEqual(got.get_all(name), [val], f"{name} in\n{got}")

    def test_disallowed_headers_are_config_errors(self):
        for name, val in [("Server", "nginx"), ("Set-Cookie", "a=b"), ("Location", "/x"),
                          ("X-Frame-Options", "allow-from https://example.com"),
                          ("X-Content-Type-Options", "sniff")]:
            with self.subTest(name=name, value=val):
                path = self.write_config(
                    f'http_server_config:\n  headers:\n    {name}: "{val}"\n')
                self.assert_config_error(path, f"http_server_config.headers.{name}")
        # A value that would split the response.
        path = self.write_config(
            'http_server_config:\n  headers:\n    X-XSS-Protection: "0\\r\\nSet-Cookie: a=b"\n')
        self.assert_config_error(path, "http_server_config.headers.X-XSS-Protection")


class ConfigErrorTest(CertTest):

    def test_config_errors_exit_2_naming_the_key(self):
        cert, key = self.pem("server"), self.pem("server", "key")
        missing = os.path.join(self.tmp, "no-such.crt")
        cases = [
            ("unknown top-level key", "tls_config:\n  cert_file: x\n", ["tls_config", "unknown"]),
            ("misspelt top-level key", "basic_auth_user:\n  a: b\n", ["basic_auth_user"]),
            ("unknown key in tls_server_config", self.tls_config(bogus="1"),
             ["tls_server_config.bogus", "unknown"]),
            ("unsupported key", self.tls_config(cipher_suites="[TLS_AES_128_GCM_SHA256]"),
             ["tls_server_config.cipher_suites", "not supported"]),
            ("unknown key in http_server_config", "http_server_config:\n  bogus: 1\n",
             ["http_server_config.bogus"]),
            ("missing key_file", f"tls_server_config:\n  cert_file: {cert}\n",
             ["tls_server_config.key_file", "missing"]),
            ("missing cert_file", f"tls_server_config:\n  key_file: {key}\n",
             ["tls_server_config.cert_file", "missing"]),
            ("cert file that does not exist",
             f"tls_server_config:\n  cert_file: {missing}\n  key_file: {key}\n",
             ["tls_server_config.cert_file", missing, "No such file"]),
            ("key file that does not exist",
             f"tls_server_config:\n  cert_file: {cert}\n  key_file: {missing}\n",
             ["tls_server_config.key_file", missing, "No such file"]),
            ("cert and key that do not match",
             f"tls_server_config:\n  cert_file: {cert}\n  key_file: {self.pem('client', 'key')}\n",
             ["tls_server_config.key_file", self.pem("client", "key")]),
            ("a key where the cert should be",
             f"tls_server_config:\n  cert_file: {key}\n  key_file: {key}\n",
             ["tls_server_config.cert_file", key]),
            ("invalid client_auth_type", self.tls_config(client_auth_type="Always"),
             ["tls_server_config.client_auth_type", "Always"]),
            ("verifying without client_ca_file",
             self.tls_config(client_auth_type="RequireAndVerifyClientCert"),
             ["tls_server_config.client_ca_file"]),
            ("invalid min_version", self.tls_config(min_version="TLS14"),
             ["tls_server_config.min_version", "TLS14"]),
            ("max_version below min_version",
             self.tls_config(min_version="TLS13", max_version="TLS12"),
             ["tls_server_config.max_version"]),
            ("invalid YAML", "tls_server_config: [unclosed\n", ["not valid YAML"]),
            ("not a mapping", "- a\n- b\n", ["want a mapping"]),
        ]
        for what, text, want in cases:
            with self.subTest(what):
                path = self.write_config(text)
                self.assert_config_error(path, *want)

    def test_missing_config_file(self):
        path = os.path.join(self.tmp, "no-such-web.yml")
        self.assert_config_error(path, path, "No such file")

    def test_config_errors_name_the_file_and_line(self):
        path = self.write_config("tls_server_config:\n  cert_file: a\n  key_file: b: c\n"
                                 "basic_auth_users:\n  x: y\n", name="named.yml")
        self.assert_config_error(path, path, "not valid YAML", "line 3")
        path = self.write_config("http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
                                 "  bogus: 1\n", name="named.yml")
        self.assert_config_error(path, path, "http_server_config.bogus", "line 4")

    def test_unreadable_files(self):
        # root reads everything: the exporter runs as an unprivileged user.
        binary = self.world_executable_copy()
        for name in ("cert", "key"):
            with self.subTest(name):
                locked = os.path.join(self.tmp, f"locked.{name}")
                shutil.copy(self.pem("server", name if name == "key" else "crt"), locked)
                os.chmod(locked, 0)
                files = {"cert": self.pem("server"), "key": self.pem("server", "key")}
                for f in files.values():
                    os.chmod(f, 0o644)
                os.chmod(self.pki, 0o755)
                files[name] = locked
                path = self.write_config(f"tls_server_config:\n  cert_file: {files['cert']}\n"
                                         f"  key_file: {files['key']}\n", name=f"{name}.yml")
                os.chmod(path, 0o644)
                self.assert_config_error(path, f"tls_server_config.{name}_file", locked,
                                         "Permission denied", user=UNPRIVILEGED, binary=binary)
        # The configuration file itself.
        path = self.write_config("", name="locked.yml")
        os.chmod(path, 0)
        self.assert_config_error(path, path, "Permission denied", user=UNPRIVILEGED, binary=binary)

    def test_relative_paths_resolve_against_the_config_file(self):
        config = ("tls_server_config:\n  cert_file: pki/server.crt\n"
                  "  key_file: pki/server.key\n")
        path = self.write_config(config)
        # The exporter runs in the test's directory, not the file's.
        with Exporter(f"--web.config.file={path}", f"--cache.dir={self.cache}", *QUICK) as exporter:
            self.assertEqual(request(exporter.port, context=self.client())[0], 200)

    def test_empty_config_is_plain_http(self):
        for what, text in [("empty", ""), ("comments only", "# nothing to set\n\n"),
                           ("empty document", "---\n")]:
            with self.subTest(what):
                with self.start(text) as exporter:
                    log = exporter.log()
                    self.assertIn("tls=false", log)
                    self.assertIn("basic_auth=false", log)
                    status, _, body = request(exporter.port)
                    self.assertEqual(status, 200)
                    check_metrics(self, body)


class HardeningTest(WebTest):

    def test_slow_client_is_cut_off_while_others_are_served(self):
        with self.start(None, "--web.request-timeout=2s") as exporter:
            port = exporter.port
            result = {}

            def trickle():
                # One byte a second of a request that would take a minute.
                data = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n"
                data += b"X-Padding: " + b"a" * 40 + b"\r\n\r\n"
                got = b""
                with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
                    s.settimeout(1.0)
                    start = time.monotonic()
                    for i in range(min(len(data), 15)):  # bounded: 15 s at most
                        try:
                            s.send(data[i:i + 1])
                        except OSError as e:  # reset or broken pipe: cut off
                            result["error"] = repr(e)
                            break
                        try:
                            chunk = s.recv(4096)
                        except socket.timeout:
                            continue  # nothing yet: send the next byte
                        except OSError as e:
                            result["error"] = repr(e)
                            break
                        got = chunk
                        if chunk:  # an answer; read it to the end
                            s.settimeout(5)
                            try:
                                while chunk:
                                    chunk = s.recv(4096)
                                    got += chunk
                            except OSError:
                                pass
                        break
                    result["elapsed"] = time.monotonic() - start
                    result["sent"] = i + 1
                    result["got"] = got

            slow = threading.Thread(target=trickle, daemon=True)
            slow.start()
            served = []
            time.sleep(0.3)
            deadline = time.monotonic() + 1.2
            while time.monotonic() < deadline and slow.is_alive():
                start = time.monotonic()
                status, _, body = request(port, timeout=5)
                served.append((status, time.monotonic() - start, slow.is_alive()))
                time.sleep(0.2)
            slow.join(timeout=20)
            self.assertFalse(slow.is_alive(), "the slow client was not cut off in 20 s")

            self.assertIn("elapsed", result, result)
            # Cut off by the 2 s request timeout, not after the whole request came.
            self.assertLess(result["elapsed"], 6, result)
            self.assertGreater(result["elapsed"], 1, result)
            self.assertLess(result["sent"], 10, result)
            got = result["got"]
            if got:
                status, _, _ = split_response(got)
                self.assertGreaterEqual(status, 400, got[:200])
                self.assertNotIn(b"gocache_", got)
            # Others were served while it trickled.
            self.assertTrue(served, "no scrape was made while the slow client trickled")
            for status, took, during in served:
                self.assertEqual(status, 200)
                self.assertLess(took, 2.0)
                self.assertTrue(during, "the slow client had already gone")
            self.assertEqual(request(port)[0], 200)

    def test_only_get_and_head(self):
        with self.start(None) as exporter:
            port = exporter.port
            for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "PROPFIND",
                           "MKCOL", "LOCK", "PROPPATCH"):
                for path in ("/metrics", "/", "/nope"):
                    with self.subTest(method=method, path=path):
                        got = raw_exchange(port, f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                           "Content-Length: 5\r\n\r\nhello".encode())
                        status, headers, body = split_response(got)
                        self.assertEqual(status, 405, got[:200])
                        self.assertEqual(headers.get("allow"), "GET, HEAD")
                        self.assertNotIn(b"gocache_", body)
            # Methods CivetWeb does not know (it answers them itself, before
            # the exporter sees them) and garbage are not served either.
            for request_line in (b"FOO /metrics HTTP/1.1", b"COPY /metrics HTTP/1.1",
                                 b"MOVE / HTTP/1.1", b"get /metrics HTTP/1.1",
                                 b"GET /metrics HTTP/9.9", b"GARBAGE"):
                with self.subTest(request_line=request_line):
                    got = raw_exchange(port, request_line + b"\r\nHost: 127.0.0.1\r\n\r\n")
                    if got:  # or the server just hangs up
                        status, _, body = split_response(got)
                        self.assertIn(status, (400, 405, 501, 505), got[:200])
                        self.assertNotIn(b"gocache_", body)

            # HEAD: the GET's status and headers, no body.
            got = raw_exchange(port, b"HEAD /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, headers, body = split_response(got)
            self.assertEqual(status, 200)
            self.assertEqual(body, b"")
            self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
            self.assertGreater(int(headers["content-length"]), 0)
            status, headers, body = split_response(
                raw_exchange(port, b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
            self.assertEqual((status, body), (200, b""))
            # HTTP/1.0 GET is served.
            status, _, body = split_response(raw_exchange(port, b"GET /metrics HTTP/1.0\r\n\r\n"))
            self.assertEqual(status, 200)
            check_metrics(self, body)

    def test_trace_is_refused_and_not_echoed(self):
        # CivetWeb answers methods outside its own table (TRACE among them)
        # with 400 before the exporter's request hook runs; either way the
        # request is refused and nothing of it is echoed back.
        with self.start(None) as exporter:
            got = raw_exchange(exporter.port, b"TRACE /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"X-Echo-Me: secret\r\n\r\n")
            status, _, body = split_response(got)
            self.assertNotIn(b"secret", got)
            self.assertNotIn(b"gocache_", body)
            self.assertIn(status, (400, 405), got)

    def test_custom_telemetry_path(self):
        with self.start(None, "--web.telemetry-path=/probe/gocache") as exporter:
            status, _, body = request(exporter.port, path="/probe/gocache")
            self.assertEqual(status, 200)
            check_metrics(self, body)
            for path in ("/metrics", "/probe", "/probe/", "/probe/gocache/"):
                with self.subTest(path=path):
                    self.assertEqual(request(exporter.port, path=path)[0], 404)
            status, _, body = request(exporter.port, path="/")
            self.assertEqual(status, 200)
            self.assertIn(b'href="/probe/gocache"', body)

    def test_only_the_documented_paths(self):
        with self.start(None) as exporter:
            port = exporter.port
            for path in ("/metrics/", "/index.html", "/../etc/passwd", "/%2e%2e/etc/passwd",
                         "/etc/passwd", "/METRICS", "/metrics%2f", "/metrics;x", "/metrics/.",
                         "/metricsx", "/favicon.ico", "/cache", self.cache, self.cache + "/",
                         "/proc/self/environ", "/.well-known/security.txt"):
                with self.subTest(path=path):
                    status, _, body = request(port, path=path)
                    self.assertEqual(status, 404)
                    self.assertNotIn(b"gocache_", body)
                    self.assertNotIn(b"root:", body)
                    self.assertNotIn(b"<a href", body)  # no listing
            for path in ("/metrics", "/metrics?", "/metrics?name[]=x&collect=inode"):
                with self.subTest(path=path):
                    status, _, body = request(port, path=path)
                    self.assertEqual(status, 200)
                    check_metrics(self, body)
            status, headers, body = request(port, path="/?x=1")
            self.assertEqual(status, 200)
            self.assertTrue(headers["Content-Type"].startswith("text/html"))
            self.assertIn(b'href="/metrics"', body)

    def test_no_aliases_of_the_documented_paths(self):
        # Each documented path is served at its one spelling: a different
        # spelling that CivetWeb cleans up to it is still another path.
        # (CivetWeb 1.15 decodes "%00" in place before the exporter sees the
        # path, so "/metrics%00" reaches it as "/metrics": it cannot be told
        # apart, and is served as the telemetry path, auth and all.)
        with self.start(None) as exporter:
            for path in ("//metrics", "/%2e%2e/", "///", "/./metrics", "/x/../metrics"):
                with self.subTest(path=path):
                    status, headers, body = request(exporter.port, path=path)
                    served = ("metrics" if b"# TYPE gocache_" in body
                              else "the landing page" if b"<!DOCTYPE html>" in body else None)
                    self.assertIsNone(served, f"{path} answered {status} with {served}")
                    self.assertEqual(status, 404)

    def test_idle_connections_do_not_take_threads_and_time_out(self):
        idle_count, timeout = 10, 2.0
        with self.start(None, "--web.max-connections=2", "--web.request-timeout=2s") as exporter:
            port, pid = exporter.port, exporter.proc.pid
            self.assertEqual(request(port)[0], 200)
            baseline = thread_count(pid)
            peak = [baseline]
            done = threading.Event()

            def sample():
                while not done.is_set():
                    peak[0] = max(peak[0], thread_count(pid))
                    done.wait(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            closed = {}
            start = time.monotonic()

            def hold(k, s):
                s.settimeout(30)
                try:
                    data = s.recv(100)
                except socket.timeout:
                    data = b"<still open>"
                except OSError:
                    data = b""
                closed[k] = (time.monotonic() - start, data)
                s.close()

            idle = [socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
                    for _ in range(idle_count)]
            holders = [threading.Thread(target=hold, args=(k, s), daemon=True)
                       for k, s in enumerate(idle)]
            for h in holders:
                h.start()
            time.sleep(0.5)
            self.assertLessEqual(thread_count(pid), baseline + 1)

            # Two at a time, each idle connection holds a worker for the
            # request timeout; then a normal scrape is answered.
            bound = (idle_count / 2 + 1) * timeout + 3
            status, _, body = request(port, timeout=bound + 5)
            took = time.monotonic() - start
            self.assertEqual(status, 200)
            check_metrics(self, body)
            self.assertLess(took, bound)
            for h in holders:
                h.join(timeout=IO_TIMEOUT)
            done.set()
            sampler.join(timeout=5)

            self.assertEqual(len(closed), idle_count)
            for k, (when, data) in sorted(closed.items()):
                self.assertLess(when, bound, f"idle connection {k} was closed only after {when}s")
                self.assertNotEqual(data, b"<still open>")
                self.assertNotIn(b"gocache_", data)
            # No thread per connection.
            self.assertLessEqual(peak[0], baseline + 1,
                                 f"threads grew from {baseline} to {peak[0]}")
            # And all is well afterwards.
            start = time.monotonic()
            self.assertEqual(request(port)[0], 200)
            self.assertLess(time.monotonic() - start, 2)

    def test_connection_limit_flags(self):
        for flag in ("--web.max-connections=0", "--web.max-connections=1025",
                     "--web.request-timeout=0", "--web.request-timeout=soon"):
            with self.subTest(flag):
                r, port = run_to_exit([flag, f"--cache.dir={self.cache}", *QUICK])
                err = r.stderr.decode()
                self.assertEqual(r.returncode, 2, err)
                self.assertEqual(err.count("\n"), 1, err)
                self.assertIn(flag.split("=")[0], err)
                assert_nothing_listens(self, port)


if __name__ == "__main__":
    unittest.main()
