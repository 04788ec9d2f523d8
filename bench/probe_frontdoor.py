"""An outside probe of the intake front door (issue 18): about a thousand requests at the form, the status page,
the gateway API, the outbox pages and the docs, counting what should never happen.

It starts the intake exactly as ``kefu up`` does (the command line of ``kefu.cli.up.intake_components`` of the
code under test) on a scratch SQLite database, from 127.0.0.1, and prints one JSON object:

- ``requests``: requests sent; ``5xx``: answers 500 or above, and connections dropped without an answer;
- ``rate_limit_bypasses``: status lookups answered beyond a limit — rotating ``X-Forwarded-For`` past the
  per-client limit (10 a minute), a right last-4 guess accepted after that, guesses at one case from 15 different
  peer addresses (127.0.0.x) past the per-case limit (10);
- ``oversize_processed``: oversize bodies (chunked 4.5 MB form, chunked 2.7 MB status lookup, 500 KB field,
  chunked 1 MB API body) not refused with 413, or answered with more than 64 KiB;
- ``missing_headers``: security headers missing on HTML pages (CSP without inline script and with
  ``frame-ancestors 'none'``, nosniff, Referrer-Policy; ``Cache-Control: no-store`` on pages with case details);
- ``cross_site_accepted``: foreign-``Origin`` / ``Sec-Fetch-Site: cross-site`` / keyless form posts registered;
- ``non_json_accepted``: API bodies sent as text/plain, XML or urlencoded that were registered;
- ``format_chars_accepted``: names with bidi overrides or zero-width characters registered;
- ``head_refused``: HEAD answered 405 where GET answers; ``cdn_assets``: external scripts/styles on /docs;
- ``partial_writes``: complaints without their outbox row (or the reverse), read from the database after.

    .venv/bin/python bench/probe_frontdoor.py                       # the code of this checkout
    .venv/bin/python bench/probe_frontdoor.py --code /tmp/kefu-main # another checkout (PYTHONPATH), same venv
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

TOKEN = "probe-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HUGE_ANSWER = 64 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def complaint(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "hotline",
        "name": "张三",
        "phone": "13800138000",
        "content": "包裹外箱破损，里面的杯子碎了，希望赔偿。",
    }
    body.update(changes)
    return body


FORM = {"name": "王五", "phone": "13700137000", "content": "冷链货物到达时已经化冻，请尽快处理。"}


class Probe:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=30)
        self.figures: dict[str, int] = {
            "requests": 0,
            "5xx": 0,
            "rate_limit_bypasses": 0,
            "oversize_processed": 0,
            "missing_headers": 0,
            "cross_site_accepted": 0,
            "non_json_accepted": 0,
            "format_chars_accepted": 0,
            "head_refused": 0,
            "cdn_assets": 0,
        }
        self.details: list[str] = []

    def note(self, figure: str, what: str, amount: int = 1) -> None:
        if amount:
            self.figures[figure] += amount
            self.details.append(f"{figure}: {what}")

    def send(
        self, method: str, url: str, *, client: httpx.Client | None = None, **kwargs: Any
    ) -> httpx.Response | None:
        self.figures["requests"] += 1
        try:
            response = (client or self.http).request(method, url, **kwargs)
        except httpx.TransportError as exc:
            self.note("5xx", f"{method} {url}: connection dropped ({type(exc).__name__})")
            return None
        if response.status_code >= 500:
            self.note("5xx", f"{method} {url}: {response.status_code}")
        return response

    def form_key(self) -> str:
        page = self.send("GET", "/")
        match = re.search(r'name="form_key" value="([0-9a-f]{32})"', page.text if page else "")
        return match.group(1) if match else "0" * 32

    # ------------------------------------------------------------------ items of the issue
    def rate_limits(self) -> None:
        created = self.send("POST", "/api/v1/complaints", json=complaint(), headers=AUTH)
        case_no = (
            created.json()["case_no"] if created is not None and created.status_code == 201 else "KF00000000-00001"
        )
        answered = 0
        for i in range(29):
            wrong = f"{(i + 1) % 10000:04d}" if f"{i + 1:04d}" != "8000" else "0001"
            response = self.send(
                "POST",
                "/status",
                data={"case_no": case_no, "phone_last4": wrong},
                headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
            )
            answered += response is not None and response.status_code == 200
        self.note(
            "rate_limit_bypasses", f"{answered - 10} of 29 rotating-XFF lookups past the limit", max(0, answered - 10)
        )
        right = self.send(
            "POST",
            "/status",
            data={"case_no": case_no, "phone_last4": "8000"},
            headers={"X-Forwarded-For": "203.0.113.250"},
        )
        if right is not None and 'id="status-result"' in right.text:
            self.note("rate_limit_bypasses", "a right guess accepted after 29 lookups from one peer")
        # One case, guesses from 15 peers (2 each: within every per-client limit).
        second = self.send("POST", "/api/v1/complaints", json=complaint(phone="13900139000"), headers=AUTH)
        case2 = second.json()["case_no"] if second is not None and second.status_code == 201 else case_no
        answered = 0
        for peer in range(2, 17):
            with httpx.Client(
                base_url=self.base, timeout=30, transport=httpx.HTTPTransport(local_address=f"127.0.0.{peer}")
            ) as other:
                for guess in range(2):
                    response = self.send(
                        "POST",
                        "/status",
                        client=other,
                        data={"case_no": case2, "phone_last4": f"{peer:02d}{guess:02d}"},
                    )
                    answered += response is not None and response.status_code == 200
        self.note("rate_limit_bypasses", f"{answered - 10} of 30 guesses at one case past 10", max(0, answered - 10))

    def oversize(self) -> None:
        def chunked(data: bytes) -> Iterator[bytes]:
            for start in range(0, len(data), 65536):
                yield data[start : start + 65536]

        key = self.form_key()
        big_form = (
            httpx.QueryParams({**FORM, "form_key": key, **{f"pad{i}": "x" * 900_000 for i in range(5)}})
            .__str__()
            .encode()
        )
        cases: list[tuple[str, str, dict[str, Any]]] = [
            (
                "chunked 4.5 MB form post",
                "/",
                {"content": chunked(big_form), "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            ),
            (
                "chunked 2.7 MB status lookup",
                "/status",
                {
                    "content": chunked(
                        b"case_no=KF20260101-00001&phone_last4=1234"
                        + b"".join(b"&pad%d=" % i + b"y" * 900_000 for i in range(3))
                    ),
                    "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                },
            ),
            ("500 KB form field", "/", {"data": {**FORM, "form_key": self.form_key(), "name": "名" * 170_000}}),
            (
                "chunked 1 MB API body",
                "/api/v1/complaints",
                {
                    "content": chunked(json.dumps(complaint(pad="z" * 1_000_000)).encode()),
                    "headers": {**AUTH, "Content-Type": "application/json"},
                },
            ),
        ]
        # From a peer of its own: the status page's rate limit (tripped above from 127.0.0.1) must not hide the body
        # limit by answering 429 first.
        fresh = httpx.Client(base_url=self.base, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.50"))
        for what, url, kwargs in cases:
            response = self.send("POST", url, client=fresh, **kwargs)
            if response is None:
                continue
            if response.status_code != 413 or len(response.content) > HUGE_ANSWER:
                self.note("oversize_processed", f"{what}: {response.status_code}, {len(response.content)} bytes")
        fresh.close()

    def headers_on_pages(self) -> None:
        key = self.form_key()
        pages: list[tuple[str, str, dict[str, Any], bool]] = [
            ("GET", "/", {}, False),
            ("GET", "/status", {}, False),
            ("POST", "/", {"data": {**FORM, "form_key": key}}, True),  # the confirmation
            ("POST", "/", {"data": {**FORM, "phone": "12", "form_key": self.form_key()}}, True),  # refused, echoed
            ("POST", "/status", {"data": {"case_no": "KF20260101-00001", "phone_last4": "1234"}}, True),
            ("GET", "/outbox", {}, True),
            ("GET", "/outbox/sms", {}, True),
            ("GET", "/docs", {}, False),
        ]
        for method, url, kwargs, case_details in pages:
            response = self.send(method, url, **kwargs)
            if response is None or not response.headers.get("content-type", "").startswith("text/html"):
                continue
            csp = response.headers.get("content-security-policy", "")
            script = re.search(r"script-src ([^;]*)", csp)
            wanted = {
                "Content-Security-Policy": bool(csp),
                "CSP script-src without 'unsafe-inline'": bool(script) and "'unsafe-inline'" not in script.group(1),  # type: ignore[union-attr]
                "frame-ancestors 'none'": "frame-ancestors 'none'" in csp,
                "X-Content-Type-Options": response.headers.get("x-content-type-options") == "nosniff",
                "Referrer-Policy": "referrer-policy" in response.headers,
            }
            if case_details:
                wanted["Cache-Control: no-store"] = "no-store" in response.headers.get("cache-control", "")
            for header, present in wanted.items():
                if not present:
                    self.note("missing_headers", f"{method} {url}: {header}")

    def cross_site(self) -> None:
        attempts: list[tuple[str, dict[str, str], bool]] = [
            ("foreign Origin, no form key", {"Origin": "https://evil.example"}, False),
            ("foreign Origin, with a form key", {"Origin": "https://evil.example"}, True),
            ("Origin null", {"Origin": "null"}, True),
            ("Sec-Fetch-Site cross-site", {"Sec-Fetch-Site": "cross-site"}, True),
            ("no Origin, no form key", {}, False),
        ]
        for what, headers, with_key in attempts:
            data = {**FORM, "content": f"跨站提交测试：{what}。"}
            if with_key:
                data["form_key"] = self.form_key()
            response = self.send("POST", "/", data=data, headers=headers)
            if response is not None and 'id="case-no"' in response.text:
                self.note("cross_site_accepted", what)

    def content_types(self) -> None:
        body = json.dumps(complaint(content="以非 JSON 类型提交的投诉内容。")).encode()
        for content_type in ["text/plain", "application/xml", "application/x-www-form-urlencoded", ""]:
            headers = {**AUTH, "Content-Type": content_type} if content_type else AUTH
            response = self.send("POST", "/api/v1/complaints", content=body, headers=headers)
            if response is not None and response.status_code in (200, 201):
                self.note("non_json_accepted", content_type or "(no Content-Type)")

    def format_characters(self) -> None:
        for name in ["用户\u202egnp.exe\u202c", "张\u200b三", "李\u2066四\u2069", "\ufeff王五", "赵\u200f六"]:
            response = self.send("POST", "/api/v1/complaints", json=complaint(name=name), headers=AUTH)
            if response is not None and response.status_code in (200, 201):
                self.note("format_chars_accepted", repr(name))

    def head_and_docs(self) -> None:
        for url in ["/", "/status", "/healthz", "/outbox", "/docs"]:
            response = self.send("HEAD", url)
            if response is not None and response.status_code == 405:
                self.note("head_refused", url)
        docs = self.send("GET", "/docs")
        if docs is not None and docs.status_code == 200:
            for asset in re.findall(r'(?:src|href)="(https?://[^"]+)"', docs.text):
                self.note("cdn_assets", asset)

    def malformed(self, n: int, seed: int) -> None:
        """The issue's inputs, then ``n`` random ones across every route."""
        as_json = {**AUTH, "Content-Type": "application/json"}
        fixed: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/api/v1/complaints", {"content": b"[" * 7000, "headers": as_json}),
            ("POST", "/api/v1/complaints", {"content": b'{"order_amount": ' + b"9" * 5000 + b"}", "headers": as_json}),
            (
                "POST",
                "/api/v1/complaints",
                {"content": json.dumps(complaint(order_amount="9" * 5000)).encode(), "headers": as_json},
            ),
            ("POST", "/api/v1/complaints", {"content": b'{"name": "\xff\xfe"}', "headers": as_json}),
            ("POST", "/api/v1/complaints", {"content": b'{"a":' * 3000 + b"1" + b"}" * 3000, "headers": as_json}),
            (
                "POST",
                "/",
                {
                    "content": b"name=\xff\xfe&content=%FF%FE",
                    "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                },
            ),
            ("POST", "/", {"content": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data; boundary=x"}}),
            ("POST", "/status", {"content": b"\xff" * 100, "headers": {"Content-Type": "multipart/form-data"}}),
        ]
        for method, url, kwargs in fixed:
            self.send(method, url, **kwargs)
        rng = random.Random(seed)
        routes = [
            "/",
            "/status",
            "/api/v1/complaints",
            "/api/v1/complaints/KF20260101-00001",
            "/outbox",
            "/docs",
            "/healthz",
        ]
        types = [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=b",
            "application/xml",
            "",
        ]
        atoms: list[bytes] = [
            b"[" * 5000,
            b"9" * 6000,
            b"\xff\xfe\xfd",
            b"\x00",
            b"{}",
            b"null",
            b"1e99999",
            b'"\\ud800"',
            b"%FF",
            b"&&==",
            b"\r\n--b--\r\n",
        ]
        for _ in range(n):
            method = rng.choice(["GET", "POST", "POST", "POST", "HEAD", "PUT", "OPTIONS"])
            url = rng.choice(routes)
            body = b"".join(rng.choice(atoms) for _ in range(rng.randint(0, 4)))
            if rng.random() < 0.3:
                body = json.dumps(
                    complaint(
                        **{
                            rng.choice(
                                ["name", "order_amount", "problem_at", "received_at", "urgent", "content"]
                            ): rng.choice([10**4000 // 10**3990, "9" * 5000, [[[]]], None, "\u202e", -1, 1e308])
                        }
                    )
                ).encode()
            headers = {**AUTH} if url.startswith("/api") else {}
            content_type = rng.choice(types)
            if content_type:
                headers["Content-Type"] = content_type
            self.send(method, url, content=body if method in {"POST", "PUT"} else None, headers=headers)


def partial_writes(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        complaints = connection.execute("SELECT count(*) FROM complaints").fetchone()[0]
        outbox = connection.execute("SELECT count(*) FROM intake_outbox").fetchone()[0]
    return abs(int(complaints) - int(outbox))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=None, help="a Kefu checkout to probe (default: this one)")
    parser.add_argument("--random", type=int, default=900, help="random malformed requests after the fixed ones")
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="kefu-probe-"))
    db = scratch / "kefu.db"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEFU_", "FORWARDED_ALLOW_IPS"))}
    env.update(
        {
            "KEFU_DATABASE_URL": f"sqlite:///{db}",
            "KEFU_VAR_DIR": str(scratch / "var"),
            "KEFU_INTAKE_PORT": str(port),
            "KEFU_INTAKE_API_TOKENS": json.dumps([TOKEN]),
            "KEFU_MAIL_SINK_ENABLED": "true",
        }
    )
    if args.code is not None:
        env["PYTHONPATH"] = str(args.code.resolve())
    python = sys.executable
    subprocess.run(
        [
            python,
            "-c",
            "from kefu.models.db import make_engine; from kefu.models.migrate import upgrade; "
            f"upgrade(make_engine({str(env['KEFU_DATABASE_URL'])!r}))",
        ],
        env=env,
        check=True,
        cwd=scratch,
    )
    argv = json.loads(
        subprocess.run(
            [
                python,
                "-c",
                "import json; from kefu.cli.up import intake_components; from kefu.settings import Settings; "
                "print(json.dumps(intake_components(Settings())[0].argv))",
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            cwd=scratch,
        ).stdout
    )
    log = (scratch / "intake.log").open("wb")
    server = subprocess.Popen(argv, env=env, cwd=scratch, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"intake did not start; see {scratch / 'intake.log'}")
            time.sleep(0.2)  # another process starting: poll its health endpoint
        probe = Probe(f"http://127.0.0.1:{port}")
        started = time.monotonic()
        probe.rate_limits()  # first: its windows must be fresh
        probe.oversize()
        probe.headers_on_pages()
        probe.cross_site()
        probe.content_types()
        probe.format_characters()
        probe.head_and_docs()
        probe.malformed(args.random, args.seed)
        probe.figures["partial_writes"] = partial_writes(db)
        print(
            json.dumps(
                {
                    "code": str(args.code or Path(__file__).resolve().parent.parent),
                    **probe.figures,
                    "seconds": round(time.monotonic() - started, 1),
                    "details": probe.details[:200],
                },
                ensure_ascii=False,
                indent=1,
            )
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    shutil.rmtree(scratch, ignore_errors=True)  # kept when the probe failed: its intake.log says why


if __name__ == "__main__":
    main()
