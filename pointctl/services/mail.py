"""Sending a report by e-mail through the SMTP server of ``POINTCTL_SMTP_URL``:
``smtp://[user[:password]@]host[:port][?starttls=true]`` (port 25 by default) or
``smtps://...`` (TLS from the start, port 465). The sender is ``POINTCTL_SMTP_FROM``
(default ``pointctl@localhost``). Errors never show the password."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from pointctl.core.errors import InvalidInputError, ServiceUnavailableError

TIMEOUT_SECONDS = 15
# a plain address: no display names, comments or quoting
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
_SWITCH = {"1": True, "true": True, "yes": True, "on": True,
           "0": False, "false": False, "no": False, "off": False}


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    tls: bool = False
    starttls: bool = False
    user: str | None = None
    password: str | None = None

    def __str__(self) -> str:  # what messages may show: never the password
        return f"{'smtps' if self.tls else 'smtp'}://{self.host}:{self.port}"


def recipients(text: str) -> list[str]:
    """``a@x,b@y`` -> the addresses; exit 2 on anything that is not one."""
    found = [part.strip() for part in text.split(",") if part.strip()]
    if not found:
        raise InvalidInputError("--email needs at least one address, such as a@example.com")
    for address in found:
        if not _ADDRESS.match(address):
            raise InvalidInputError(f"invalid e-mail address {address!r} in --email")
    return found


def server_from_env() -> SmtpServer:
    url = os.environ.get("POINTCTL_SMTP_URL", "").strip()
    if not url:
        raise ServiceUnavailableError(
            "no mail server: set POINTCTL_SMTP_URL, e.g. smtp://mail.example.com:587"
            "?starttls=true, to send reports by e-mail")
    return parse_server(url)


def parse_server(url: str) -> SmtpServer:
    """The server of an SMTP URL. Messages about a malformed one never repeat any of it: a
    password with an unencoded # or / would otherwise show up as a host name."""
    shape = ("POINTCTL_SMTP_URL is not an SMTP URL: expected smtp://[user:password@]host[:port]"
             "[?starttls=true] or smtps://... (percent-encode #, /, ? and @ in the user name "
             "and password)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ServiceUnavailableError(shape) from None
    after_scheme = url.partition("://")[2]
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname or parts.fragment or \
            ("@" in after_scheme and "@" not in parts.netloc) or parts.path not in ("", "/"):
        raise ServiceUnavailableError(shape)
    options = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(options) - {"starttls"})
    starttls = options.get("starttls", ["false"])[-1].strip().lower()
    if unknown or starttls not in _SWITCH:
        raise ServiceUnavailableError("POINTCTL_SMTP_URL: the only option is starttls=true or "
                                      "starttls=false")
    tls = parts.scheme == "smtps"
    server = SmtpServer(
        host=parts.hostname, port=port or (465 if tls else 25), tls=tls,
        starttls=_SWITCH[starttls] and not tls,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None)
    if server.user and not (server.tls or server.starttls):
        raise ServiceUnavailableError(
            f"refusing to send the mail password to {server} in clear text: add "
            "?starttls=true to POINTCTL_SMTP_URL or use smtps://")
    return server


def sender() -> str:
    found = os.environ.get("POINTCTL_SMTP_FROM", "pointctl@localhost").strip()
    if not _ADDRESS.match(found):
        raise InvalidInputError(f"invalid POINTCTL_SMTP_FROM {found!r}: expected an address "
                                "such as reports@example.com")
    return found


def send(server: SmtpServer, *, to: list[str], subject: str, body: str, filename: str,
         data: bytes, mime: tuple[str, str]) -> None:
    """One message with one attachment; exit 4 when the server cannot be reached or refuses
    it."""
    import smtplib
    import ssl
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = sender()
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(body)
    printable = "".join(ch if ch.isprintable() else "_" for ch in filename)
    message.add_attachment(data, maintype=mime[0], subtype=mime[1], filename=printable)
    context = ssl.create_default_context()  # certificates checked, for smtps and STARTTLS
    smtp: smtplib.SMTP | None = None
    try:
        if server.tls:
            smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=TIMEOUT_SECONDS,
                                    context=context)
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT_SECONDS)
        if server.starttls:
            smtp.starttls(context=context)
        if server.user:
            smtp.login(server.user, server.password or "")
        smtp.send_message(message)
        smtp.quit()
    except (OSError, smtplib.SMTPException, UnicodeError) as error:
        if smtp is not None:  # no QUIT: after a failed TLS handshake it would wait for nothing
            smtp.close()
        reason = _reason(error, server)
        raise ServiceUnavailableError(f"could not send the report through {server}: "
                                      f"{reason}") from None


def _reason(error: Exception, server: SmtpServer) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    text = " ".join(str(error).split()) or type(error).__name__
    if server.password:
        text = text.replace(server.password, "***")
    return text[:200]
