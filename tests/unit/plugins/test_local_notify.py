"""local.mail against a real SMTP server on loopback (aiosmtpd), local.slack and
local.mattermost against a loopback receiver that checks each documented payload shape."""

from __future__ import annotations

import json
import socket
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opsbook.plugin import ActionContext, HostInfo, Status
from opsbook.secrets import SecretStore
from opsbook_plugins import local
from pydantic import ValidationError

aiosmtpd = pytest.importorskip("aiosmtpd", reason="aiosmtpd is in the test extras")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult  # noqa: E402

PASSWORD = "pw-Zq8!smtp"


class Inbox:
    """aiosmtpd handler: keeps what it received."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 OK"


def _auth(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"ops" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = _free_port()  # aiosmtpd's Controller cannot be given port 0
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=_auth, auth_require_tls=False,
                            auth_exclude_mechanism=["LOGIN"])  # smtplib retries a refused PLAIN with LOGIN
    controller.start()
    yield inbox, port
    controller.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(action: str, args: dict, *, check: bool = False, secrets: SecretStore | None = None):
    spec = local.plugin.actions[action]
    ctx = ActionContext(host=HostInfo("localhost", {}), step_name="t", check_mode=check, secrets=secrets)
    return spec.fn(ctx, spec.parse_args(args))


def test_mail_is_delivered_with_ansible_argument_names(smtp):
    inbox, port = smtp
    out = run("mail", {"host": "127.0.0.1", "port": port, "to": "oncall@example.org, lead@example.org",
                       "bcc": ["audit@example.org"], "from": "opsbook@example.org",
                       "subject": "web1 isolated", "body": "web1 was drained and disconnected."})
    assert out.status is Status.OK and out.changed, out.msg
    assert out.msg == (f"sent mail 'web1 isolated' to oncall@example.org, lead@example.org, audit@example.org "
                       f"via 127.0.0.1:{port}")
    (rcpt, raw), = inbox.messages
    assert rcpt == ["oncall@example.org", "lead@example.org", "audit@example.org"]
    mail = message_from_bytes(raw)
    assert mail["Subject"] == "web1 isolated" and mail["From"] == "opsbook@example.org"
    assert mail["To"] == "oncall@example.org, lead@example.org" and mail["Bcc"] is None
    assert mail.get_payload(decode=True).decode().strip() == "web1 was drained and disconnected."


def test_mail_login_works_and_a_wrong_password_is_named_without_it(smtp):
    inbox, port = smtp
    base = {"host": "127.0.0.1", "port": port, "to": "a@example.org", "subject": "s", "username": "ops",
            "secure": "never"}
    assert run("mail", {**base, "password": PASSWORD}).status is Status.OK
    wrong = run("mail", {**base, "password": "nope-" + PASSWORD})
    assert wrong.status is Status.FAILED and wrong.msg.startswith(f"127.0.0.1:{port} refused the login of ops: 535")
    assert PASSWORD not in wrong.msg
    assert len(inbox.messages) == 1


def test_mail_never_sends_a_password_without_tls_unless_told(smtp):
    inbox, port = smtp
    base = {"host": "127.0.0.1", "port": port, "to": "a@example.org", "subject": "s"}
    cleartext = run("mail", {**base, "username": "ops", "password": PASSWORD})
    assert cleartext.status is Status.FAILED
    assert "refusing to send the password without TLS" in cleartext.msg
    required = run("mail", {**base, "secure": "starttls"})
    assert required.msg == f"127.0.0.1:{port}: the server does not offer STARTTLS (secure: starttls)"
    assert inbox.messages == []


def test_mail_check_mode_sends_nothing_and_says_what_it_would(smtp):
    inbox, port = smtp
    out = run("mail", {"host": "127.0.0.1", "port": port, "to": ["a@example.org"], "subject": "drill"}, check=True)
    assert out.status is Status.OK and out.changed
    assert out.msg == f"would send mail 'drill' to a@example.org via 127.0.0.1:{port}"
    assert inbox.messages == []


def test_mail_to_a_closed_port_and_bad_arguments_say_why():
    port = _free_port()
    out = run("mail", {"host": "127.0.0.1", "port": port, "to": "a@example.org", "subject": "s"})
    assert out.status is Status.FAILED and out.msg == f"cannot send mail through 127.0.0.1:{port}: Connection refused"
    with pytest.raises(ValidationError, match="give username and password together"):
        local.plugin.actions["mail"].parse_args({"subject": "s", "username": "ops"})


# -- chat webhooks -----------------------------------------------------------------------------

SLACK_KEYS = {"text", "channel", "username", "icon_emoji", "icon_url", "attachments", "blocks"}
MATTERMOST_KEYS = {"text", "channel", "username", "icon_emoji", "icon_url", "attachments", "props"}


class Receiver(BaseHTTPRequestHandler):
    """An incoming webhook that answers as Slack and Mattermost do: 200 "ok" for a payload of
    the documented shape, 400 with a reason otherwise. /slack/<token>, /mattermost/<token>."""

    received: list[tuple[str, dict]] = []

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        kind, _, token = self.path.strip("/").partition("/")
        problem = self._problem(kind, token)
        if problem is None:
            self.received.append((kind, self._payload))
        body = (problem or "ok").encode()
        self.send_response(400 if problem else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _problem(self, kind: str, token: str) -> str | None:
        if token != "T000/B000/XXXXSECRET":
            return "invalid_token"
        if self.headers.get("Content-Type") != "application/json":
            return "invalid_payload: not JSON"
        self._payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        allowed = SLACK_KEYS if kind == "slack" else MATTERMOST_KEYS
        if not isinstance(self._payload, dict) or set(self._payload) - allowed:
            return f"invalid_payload: unknown keys {sorted(set(self._payload) - allowed)}"
        if not any(k in self._payload for k in ("text", "attachments", "blocks")):
            return "no_text"
        if not isinstance(self._payload.get("text", ""), str):
            return "invalid_payload: text"
        for item in self._payload.get("attachments", []):
            if not isinstance(item, dict) or not all(isinstance(f, dict) for f in item.get("fields", [])):
                return "invalid_attachments"
        if any(not isinstance(b, dict) or "type" not in b for b in self._payload.get("blocks", [])):
            return "invalid_blocks"
        return None


@pytest.fixture
def hooks():
    Receiver.received = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", Receiver.received
    httpd.shutdown()
    httpd.server_close()


def test_slack_payload_has_the_documented_shape(hooks):
    base, received = hooks
    attachment = {"color": "danger", "title": "web1", "fields": [{"title": "state", "value": "drained", "short": True}]}
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*web1* drained"}}]
    out = run("slack", {"url": f"{base}/slack/T000/B000/XXXXSECRET", "msg": "web1 drained", "channel": "#ops",
                        "username": "opsbook", "icon_emoji": ":rotating_light:", "attachments": [attachment],
                        "blocks": blocks})
    assert out.status is Status.OK and out.changed, out.msg
    assert out.msg == f"posted a Slack message to #ops via {base}"
    assert received == [("slack", {"text": "web1 drained", "channel": "#ops", "username": "opsbook",
                                   "icon_emoji": ":rotating_light:", "attachments": [attachment],
                                   "blocks": blocks})]


def test_mattermost_payload_has_the_documented_shape(hooks):
    base, received = hooks
    out = run("mattermost", {"url": f"{base}/mattermost/T000/B000/XXXXSECRET", "text": "db1 promoted",
                             "props": {"card": "details"}})
    assert out.status is Status.OK, out.msg
    assert received == [("mattermost", {"text": "db1 promoted", "props": {"card": "details"}})]


def test_a_refused_webhook_names_the_site_never_the_token(hooks):
    base, received = hooks
    secrets = SecretStore()
    out = run("slack", {"url": f"{base}/slack/T000/B000/WRONGTOKEN", "text": "x"}, secrets=secrets)
    assert out.status is Status.FAILED
    assert out.msg == f"Slack webhook at {base} answered HTTP 400: 'invalid_token'"
    assert "WRONGTOKEN" not in out.msg and received == []
    # the URL is a secret from now on, whoever shows it
    assert "WRONGTOKEN" not in secrets.redact(f"posted to {base}/slack/T000/B000/WRONGTOKEN")


def test_chat_check_mode_posts_nothing_and_shows_the_payload(hooks):
    base, received = hooks
    out = run("mattermost", {"url": f"{base}/mattermost/T000/B000/XXXXSECRET", "text": "drill"}, check=True)
    assert out.status is Status.OK and out.changed
    assert out.msg == f"would post a Mattermost message via {base}: 'drill'"
    assert out.data["payload"] == {"text": "drill"} and received == []


def test_chat_arguments_are_checked_before_anything_is_sent():
    slack = local.plugin.actions["slack"]
    with pytest.raises(ValidationError, match="give text, blocks or attachments"):
        slack.parse_args({"url": "https://hooks.slack.com/services/x"})
    with pytest.raises(ValidationError, match="every block needs a type"):
        slack.parse_args({"url": "https://hooks.slack.com/services/x", "blocks": [{"text": "x"}]})
    with pytest.raises(ValidationError, match="url must be an http:// or https:// webhook URL"):
        slack.parse_args({"url": "hooks.slack.com/services/x", "text": "x"})
