"""local.mail, local.slack, local.mattermost: tell people, from the controller.

`local.mail` sends one message over SMTP with community.general.mail's arguments (host,
port, to, cc, bcc, subject, body, from/sender, secure, username, password, timeout,
headers, charset, subtype). `secure`: `try` (default: STARTTLS when the server offers it),
`starttls` (required), `always` (SMTP over TLS), `never`. A password is never sent over a
connection without TLS unless `secure: never` says so.

`local.slack` and `local.mattermost` POST an incoming-webhook payload in the shape each
documents (`text`, `channel`, `username`, `icon_emoji`, `icon_url`, `attachments`, and
Slack's `blocks` / Mattermost's `props`) through the one HTTP path of the controller's
actions (`http_deadline.exchange`, as `local.http` and `local.notify`).

Secrets: pass the SMTP password and the webhook URL (its path is the token) from secret
parameters, which the engine redacts from all output; these actions never name more of a
webhook URL than its scheme and host, nor the password. Check mode sends nothing and says
what would be sent.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
import urllib.parse
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from http import client as http_client
from typing import Any, Literal

from opsbook.plugin import ActionContext, Result, Seconds
from opsbook_plugins.http_checks import excerpt
from opsbook_plugins.http_deadline import exchange
from opsbook_plugins.local import _Args, plugin
from pydantic import AliasChoices, Field, field_validator, model_validator

ANSWER_CAP = 64 * 1024  # a webhook's answer is a word ("ok") or a short error


def _listed(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class MailArgs(_Args):
    """Send an email over SMTP (community.general.mail's arguments)."""

    host: str = Field("localhost", description="SMTP server")
    port: int = Field(25, ge=1, le=65535, description="SMTP port (465 with secure: always, 587 for starttls)")
    to: list[str] = Field(default_factory=lambda: ["root"], description='recipients: a list, or "a@x, b@y"')
    cc: list[str] = Field(default_factory=list, description="copy recipients")
    bcc: list[str] = Field(default_factory=list, description="blind copy recipients")
    subject: str = Field(description="the subject line")
    body: str = Field("", description="the message text (default: the subject)")
    sender: str = Field("root", validation_alias=AliasChoices("sender", "from"),
                        description="the From address (also written from)")
    secure: Literal["try", "starttls", "always", "never"] = Field(
        "try", description="try (STARTTLS when offered), starttls (required), always (TLS from the start), never")
    username: str | None = Field(None, description="SMTP login")
    password: str | None = Field(None, description="SMTP password: pass it from a secret parameter")
    timeout: Seconds = Field(20.0, gt=0, description="time for the whole exchange (20, 30s)")
    headers: dict[str, str] = Field(default_factory=dict, description="more header fields")
    charset: str = "utf-8"
    subtype: Literal["plain", "html"] = "plain"

    @field_validator("to", "cc", "bcc", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        return _listed(value)

    @model_validator(mode="after")
    def _login_pair(self) -> MailArgs:
        if (self.username is None) != (self.password is None):
            raise ValueError("give username and password together")
        if not (self.to or self.cc or self.bcc):
            raise ValueError("no recipient: give to, cc or bcc")
        return self


def _message(args: MailArgs) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = args.sender
    if args.to:
        msg["To"] = ", ".join(args.to)
    if args.cc:
        msg["Cc"] = ", ".join(args.cc)
    msg["Subject"] = args.subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="opsbook")
    for key, value in args.headers.items():
        msg[key] = value
    msg.set_content(args.body or args.subject, subtype=args.subtype, charset=args.charset)
    return msg


class _Refused(Exception):
    """A reason not to go on, said to the user as it is."""


def _smtp(args: MailArgs, timeout: float) -> smtplib.SMTP:
    context = ssl.create_default_context()
    if args.secure == "always":
        return smtplib.SMTP_SSL(args.host, args.port, timeout=timeout, context=context)
    smtp = smtplib.SMTP(args.host, args.port, timeout=timeout)
    smtp.ehlo()
    if smtp.has_extn("starttls") and args.secure != "never":
        smtp.starttls(context=context)
        smtp.ehlo()
    elif args.secure == "starttls":
        smtp.close()
        raise _Refused("the server does not offer STARTTLS (secure: starttls)")
    elif args.username and args.secure != "never":
        smtp.close()
        raise _Refused("refusing to send the password without TLS: the server does not offer STARTTLS "
                       "(secure: never allows it)")
    return smtp


@plugin.action(check=True, data=["recipients", "message_id"])
def mail(ctx: ActionContext, args: MailArgs) -> Result:
    """Send an email over SMTP (community.general.mail); check mode says what it would send."""
    _keep_secret(ctx, "local.mail password", args.password)
    where = f"{args.host}:{args.port}"
    rcpt = [*args.to, *args.cc, *args.bcc]
    said = f"mail {args.subject!r} to {', '.join(rcpt)} via {where}"
    msg = _message(args)
    data = {"recipients": rcpt, "message_id": msg["Message-ID"]}
    if ctx.check_mode:
        return Result.ok(changed=True, msg=f"would send {said}", data=data)
    timeout = min(args.timeout, ctx.timeout) if ctx.timeout else args.timeout
    try:
        with _smtp(args, timeout) as smtp:
            if args.username is not None:
                smtp.login(args.username, args.password or "")
            refused = smtp.send_message(msg, to_addrs=rcpt)
    except _Refused as exc:
        return Result.failed(f"{where}: {exc}")
    except smtplib.SMTPAuthenticationError as exc:
        return Result.failed(f"{where} refused the login of {args.username}: {exc.smtp_code} {_text(exc.smtp_error)}")
    except smtplib.SMTPRecipientsRefused as exc:
        return Result.failed(f"{where} refused every recipient: {_refusals(exc.recipients)}")
    except smtplib.SMTPResponseException as exc:
        return Result.failed(f"{where} answered {exc.smtp_code} {_text(exc.smtp_error)}")
    except (smtplib.SMTPException, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return Result.failed(f"cannot send mail through {where}: {reason}")
    if refused:
        return Result.failed(f"sent {said}, but {where} refused {_refusals(refused)}", changed=True, data=data)
    return Result.ok(changed=True, msg=f"sent {said}", data=data)


def _keep_secret(ctx: ActionContext, name: str, value: str | None) -> None:
    """Redact `value` from everything the run shows from now on, declared a secret or not."""
    if value and ctx.secrets is not None and hasattr(ctx.secrets, "add"):
        # one name per value: two webhooks of one run are both kept secret
        ctx.secrets.add(f"{name} {hashlib.sha256(value.encode()).hexdigest()[:12]}", value)


def _text(raw: Any) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def _refusals(refused: dict[str, Any]) -> str:
    return "; ".join(f"{rcpt} ({code} {_text(why)})" for rcpt, (code, why) in refused.items())


# -- chat webhooks ---------------------------------------------------------------------------


class ChatArgs(_Args):
    """Post a message to an incoming webhook."""

    url: str = Field(description="the incoming webhook URL (its path is a token: pass it from a secret)")
    text: str | None = Field(None, validation_alias=AliasChoices("text", "msg"),
                             description="the message (also written msg), markdown as the chat renders it")
    channel: str | None = Field(None, description="post to this channel instead of the webhook's own")
    username: str | None = Field(None, description="the name shown as the poster")
    icon_emoji: str | None = Field(None, description="e.g. :rotating_light:")
    icon_url: str | None = Field(None, description="picture shown as the poster's")
    attachments: list[dict[str, Any]] | None = Field(
        None, description="message attachments (fallback, color, pretext, title, text, fields, ...)")
    timeout: Seconds = Field(10.0, gt=0, description="time for the whole exchange (10, 30s)")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if "{{" not in value and urllib.parse.urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("url must be an http:// or https:// webhook URL")
        return value


class SlackArgs(ChatArgs):
    """A Slack incoming-webhook message (Slack's documented payload)."""

    blocks: list[dict[str, Any]] | None = Field(None, description="Block Kit blocks, each with a type")

    @model_validator(mode="after")
    def _something_to_say(self) -> SlackArgs:
        if not (self.text or self.blocks or self.attachments):
            raise ValueError("give text, blocks or attachments")
        for block in self.blocks or []:
            if not isinstance(block.get("type"), str):
                raise ValueError(f"every block needs a type (section, header, divider, ...): {block}")
        return self


class MattermostArgs(ChatArgs):
    """A Mattermost incoming-webhook message (Mattermost's documented payload)."""

    props: dict[str, Any] | None = Field(None, description="Mattermost's props (e.g. card)")

    @model_validator(mode="after")
    def _something_to_say(self) -> MattermostArgs:
        if not (self.text or self.attachments):
            raise ValueError("give text or attachments")
        return self


_PAYLOAD_KEYS = ("text", "channel", "username", "icon_emoji", "icon_url", "attachments", "blocks", "props")


def payload(args: ChatArgs) -> dict[str, Any]:
    """The JSON body: the documented keys that were given."""
    return {key: getattr(args, key) for key in _PAYLOAD_KEYS if getattr(args, key, None) is not None}


def _site(url: str) -> str:
    """scheme://host of a webhook URL: its path is a token and is never shown."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def _post(ctx: ActionContext, args: ChatArgs, kind: str) -> Result:
    _keep_secret(ctx, f"{kind} webhook URL", args.url)
    body = payload(args)
    site = _site(args.url)
    what = f"a {kind} message" + (f" to {args.channel}" if args.channel else "") + f" via {site}"
    if ctx.check_mode:
        return Result.ok(changed=True, msg=f"would post {what}: {excerpt(args.text or '')}", data={"payload": body})
    limit = min(args.timeout, ctx.timeout) if ctx.timeout else args.timeout
    try:
        code, answer, _ = exchange(args.url, "POST", body, {}, limit, ctx.cancelled, ANSWER_CAP)
    except TimeoutError as exc:
        return Result.failed(f"{kind} webhook at {site}: {exc}")
    except (OSError, http_client.HTTPException) as exc:
        return Result.failed(f"{kind} webhook at {site} unreachable: {getattr(exc, 'reason', None) or exc}")
    except ValueError:
        return Result.failed(f"{kind} webhook: not a valid URL ({site})")
    if not 200 <= code < 300:
        return Result.failed(f"{kind} webhook at {site} answered HTTP {code}: {excerpt(answer)}",
                             data={"payload": body, "status": code})
    return Result.ok(changed=True, msg=f"posted {what}", data={"payload": body, "status": code})


@plugin.action(check=True, data=["payload", "status"])
def slack(ctx: ActionContext, args: SlackArgs) -> Result:
    """Post to a Slack incoming webhook (text, channel, username, icon_emoji, attachments, blocks)."""
    return _post(ctx, args, "Slack")


@plugin.action(check=True, data=["payload", "status"])
def mattermost(ctx: ActionContext, args: MattermostArgs) -> Result:
    """Post to a Mattermost incoming webhook (text, channel, username, icon_url, attachments, props)."""
    return _post(ctx, args, "Mattermost")


plugin.ansible_module("mail", "mail")
plugin.ansible_module("community.general.mail", "mail")
# Ansible's chat modules build the webhook URL from parts; these actions take the whole URL
_SLACK = ("url is the whole incoming-webhook URL (https://hooks.slack.com/services/... , where Ansible "
          "takes token and domain), the message is text (or msg); color, link_names, parse, "
          "thread_id and validate_certs are not read")
_MATTERMOST = ("url is the whole incoming-webhook URL (URL/hooks/API_KEY, where Ansible takes url and "
               "api_key apart); text, channel, username, icon_url and attachments are the same; "
               "priority and validate_certs are not read")
for _prefix in ("", "community.general."):
    plugin.ansible_module(f"{_prefix}slack", "slack", differs=_SLACK)
    plugin.ansible_module(f"{_prefix}mattermost", "mattermost", differs=_MATTERMOST)
