"""The desk's web application: Starlette routes rendering Jinja2 pages (autoescaped).

Every page goes through ``Desk.endpoint`` (the static files and ``networks.css`` are
public): it reads the signed session, checks the person on every request (a disabled
user's session stops working), checks the CSRF token on every POST and the role's
permission for the action, then calls ``socialbot.operations`` (the same functions as the
CLI; no rule is repeated here). Every response, errors included,
carries a strict Content-Security-Policy and refuses to be framed.
"""

from __future__ import annotations

import csv
import difflib
import hmac
import io
import ipaddress
import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    import uvicorn

from socialbot import operations
from socialbot.compose.counting import network_name
from socialbot.config import Settings
from socialbot.desk.users import Can, Role, Throttle, User, UserError, Users, parse_role
from socialbot.errors import SocialbotError
from socialbot.models import LANGUAGES, NETWORKS, Delivery, DeliveryStatus, Post, Release, Revision
from socialbot.networks import PROFILES
from socialbot.store import Store, open_store, utcnow

COOKIE = "socialbot_desk"
PAGE_SIZE = 25
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")
"""Sent over HTTPS, or when told the desk is behind an HTTPS proxy: browsers keep to HTTPS."""


class SecurityHeaders:
    """Adds the CSP and framing headers to every response, pages, files and errors alike.

    It wraps the whole application (``DeskApp``), outside Starlette's error handler, so a
    500 carries them too. ``behind_https`` adds Strict-Transport-Security to every
    response; without it, only responses to HTTPS requests carry it.
    """

    def __init__(self, app: ASGIApp, behind_https: bool = False) -> None:
        self.app = app
        self.behind_https = behind_https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = list(SECURITY_HEADERS)
        if self.behind_https or scope.get("scheme") == "https":
            added.append(HSTS)
        names = {name for name, _ in added}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = headers + added
            await send(message)

        await self.app(scope, receive, send_with_headers)


class DeskApp(Starlette):
    """Starlette with the security headers outside everything, its error handler included."""

    behind_https = False

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack(), self.behind_https)


def session_start(session: Mapping[str, Any]) -> float:
    """When the session's person signed in (epoch seconds; 0 when it does not say)."""
    signed = session.get("iat")
    return float(signed) if isinstance(signed, int | float) else 0.0


def known_language(code: object) -> str:
    """The ISO 639-1 code for a ``lang`` attribute; empty when it is none (a typing error)."""
    text = code.strip().lower() if isinstance(code, str) else ""
    return text if text in LANGUAGES else ""


def safe_url(value: str | None) -> str | None:
    """The address when it is http(s) with a host; None otherwise (never a link)."""
    if not value:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        return None
    return value


def segments(post: Post) -> list[tuple[str, str, str]]:
    """The post's text as (kind, text, address) pieces: links and hashtags marked."""
    from socialbot.compose.richtext import link_spans, tag_spans

    text = post.text
    spans: list[tuple[int, int, str, str]] = []
    if post.link_text and post.link_text in text:
        start = text.index(post.link_text)
        spans.append((start, start + len(post.link_text), "link", post.link))
    for start, end, uri in link_spans(text):
        spans.append((start, end, "link", uri))
    for start, end, tag in tag_spans(text):
        spans.append((start, end, "tag", tag))
    spans.sort()
    pieces: list[tuple[str, str, str]] = []
    at = 0
    for start, end, kind, target in spans:
        if start < at:
            continue
        if start > at:
            pieces.append(("text", text[at:start], ""))
        href = safe_url(target) if kind == "link" else ""
        pieces.append((kind if href is not None else "text", text[start:end], href or ""))
        at = end
    if at < len(text):
        pieces.append(("text", text[at:], ""))
    return pieces


class FormProblem(SocialbotError):
    """A form field that cannot be read (one sentence)."""


class FieldProblems(FormProblem):
    """Every field of a release form that needs a change, each with its own sentence."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(self.problems.values()))


FIELDS: dict[str, tuple[str, str]] = {
    "id": ("Release id", "e-id"),
    "title": ("Title", "e-title"),
    "summary": ("Summary", "e-summary"),
    "body": ("Body", "e-body"),
    "url": ("Address of the release", "e-url"),
    "language": ("Language", "e-language"),
    "hashtags": ("Hashtags", "e-hashtags"),
    "topics": ("Topics", "e-topics"),
    "networks": ("Networks", "e-networks"),
    "overrides": ("Per-network text", "e-overrides"),
    "not_before": ("Not before", "e-not-before"),
}
"""A release form's fields: the name its label shows and the id of its input."""


@dataclass
class Visit:
    """One request as the desk sees it: who, their session, the form."""

    request: Request
    session: dict[str, Any]
    user: User | None
    zone: ZoneInfo
    form: FormData | None = None
    changed: bool = False
    sso: bool = False
    flashes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def csrf(self) -> str:
        token = self.session.get("csrf")
        if not isinstance(token, str) or not token:
            token = secrets.token_urlsafe(32)
            self.session["csrf"] = token
            self.changed = True
        return token

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name, default) if self.form is not None else default
        return value if isinstance(value, str) else default

    def flash(self, message: str, kind: str = "ok") -> None:
        self.session.setdefault("flash", []).append([kind, message])
        self.changed = True

    def take_flashes(self) -> list[tuple[str, str]]:
        found = self.session.pop("flash", [])
        if found:
            self.changed = True
        return [(str(k), str(m)) for k, m in found]


Handler = Callable[[Visit], Awaitable[Response]]


class Desk:
    """The application's state: settings, store, users, the session signer, templates."""

    def __init__(
        self, settings: Settings, store: Store, secret_key: str, users: Users | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.users = users or Users(store)
        desk = settings.desk
        self.throttle = Throttle(
            store,
            per_pair=desk.sign_in_attempts,
            per_address=desk.sign_in_attempts_per_address,
            per_account=desk.sign_in_attempts_per_account,
            window_seconds=desk.sign_in_window_minutes * 60,
        )
        self.signer = URLSafeTimedSerializer(secret_key, salt="socialbot-desk-session")
        self.max_age = int(desk.session_hours * 3600)
        self.zone = ZoneInfo(desk.time_zone)
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in desk.proxies()]
        self.env = Environment(
            loader=PackageLoader("socialbot.desk", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["safe_url"] = safe_url
        self.env.filters["known_language"] = known_language
        self.env.globals["network_name"] = network_name
        self.env.filters["network_name"] = network_name
        self.env.globals["NETWORKS"] = NETWORKS
        self.env.globals["FIELDS"] = FIELDS

    # -- sessions and people

    def visit(self, request: Request) -> Visit:
        session: dict[str, Any] = {}
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                loaded = self.signer.loads(raw, max_age=self.max_age)
                if isinstance(loaded, dict):
                    session = loaded
            except BadSignature:
                session = {}
        visit = Visit(request, session, None, self.zone)
        header = self.settings.desk.trusted_header
        if header and self.from_proxy(request):
            claimed = request.headers.get(header, "").strip()
            user = self.users.get(claimed) if claimed else None
            if user is not None and not user.disabled:
                visit.user = user
                visit.sso = True
            return visit
        name = session.get("user")
        if isinstance(name, str):
            user = self.users.get(name)
            signed = session_start(session)
            # The lifetime runs from sign-in: re-signing the cookie (a flash) does not extend it.
            fresh = time.time() - signed < self.max_age
            if user is not None and not user.disabled and fresh and signed >= user.sessions_after:
                visit.user = user
        return visit

    def from_proxy(self, request: Request) -> bool:
        return self.trusted(request.client.host if request.client else "")

    def trusted(self, host: str) -> bool:
        """The address is one of SOCIALBOT_DESK__TRUSTED_PROXIES."""
        try:
            address = ipaddress.ip_address(host.strip())
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    def client_address(self, request: Request) -> str:
        """The visitor's address: from X-Forwarded-For only when a trusted proxy sent it.

        Each proxy appends the address it was reached from, so the rightmost entry that is
        not itself a trusted proxy is the visitor; entries left of it may be forged.
        """
        peer = request.client.host if request.client else "unknown"
        if not self.trusted(peer):
            return peer
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
        for entry in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
            if self.trusted(entry):
                continue
            try:
                return str(ipaddress.ip_address(entry))
            except ValueError:
                return peer  # not what a proxy writes: count it as the proxy's
        return peer

    def secure(self, request: Request) -> bool:
        return request.url.scheme == "https" or self.settings.desk.behind_https

    def finish(self, visit: Visit, response: Response) -> Response:
        if visit.changed:
            max_age = self.max_age
            if "user" in visit.session:  # the browser drops it when the sign-in ends
                left = session_start(visit.session) + self.max_age - time.time()
                max_age = max(0, math.ceil(left))
            response.set_cookie(
                COOKIE,
                self.signer.dumps(visit.session),
                max_age=max_age,
                httponly=True,
                samesite="lax",
                secure=self.secure(visit.request),
                path="/",
            )
        response.headers["cache-control"] = "no-store"
        return response

    def endpoint(self, handler: Handler, need: Can | None = None, public: bool = False) -> Any:
        async def run(request: Request) -> Response:
            visit = self.visit(request)
            if request.method == "POST":
                visit.form = await request.form()
                sent = visit.field("csrf")
                expected = visit.session.get("csrf")
                # Compared as bytes: compare_digest refuses str with non-ASCII characters.
                if not (
                    isinstance(expected, str)
                    and hmac.compare_digest(sent.encode(), expected.encode())
                ):
                    return self.finish(
                        visit,
                        self.render(
                            visit,
                            "error.html",
                            {
                                "title": "Form expired",
                                "message": "This form has expired or did not come from the "
                                "desk. Go back, reload the page and try again.",
                            },
                            status=403,
                        ),
                    )
            if not public and visit.user is None:
                if request.method == "GET":
                    target = request.url.path + (
                        f"?{request.url.query}" if request.url.query else ""
                    )
                    return self.finish(
                        visit, RedirectResponse(f"/sign-in?next={quote(target)}", 303)
                    )
                return self.finish(visit, self.refuse(visit, "Sign in first.", 401))
            if need is not None and (visit.user is None or not visit.user.can(need)):
                role = visit.user.role.value if visit.user else "nobody"
                return self.finish(
                    visit, self.refuse(visit, f"Your role ({role}) may not do this.", 403)
                )
            return self.finish(visit, await handler(visit))

        return run

    # -- rendering

    def render(
        self, visit: Visit, template: str, context: Mapping[str, Any], status: int = 200
    ) -> HTMLResponse:
        user = visit.user
        base = {
            "user": user,
            "sso": visit.sso,
            "csrf": visit.csrf,
            "can_edit": bool(user and user.can(Can.EDIT)),
            "can_approve": bool(user and user.can(Can.APPROVE)),
            "can_operate": bool(user and user.can(Can.OPERATE)),
            "can_users": bool(user and user.can(Can.USERS)),
            "pauses": sorted(self.store.pauses().values(), key=lambda p: p.network) if user else [],
            "flashes": visit.take_flashes(),
            "path": visit.request.url.path,
            "when": self.when,
            "zone": self.settings.desk.time_zone,
        }
        html = self.env.get_template(template).render({**base, **context})
        return HTMLResponse(html, status_code=status)

    def refuse(self, visit: Visit, message: str, status: int) -> HTMLResponse:
        return self.render(
            visit, "error.html", {"title": "Not allowed", "message": message}, status
        )

    def when(self, value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        if value is None:
            return ""
        return value.astimezone(self.zone).strftime(fmt)

    def back(self, visit: Visit, fallback: str) -> RedirectResponse:
        target = visit.field("next") or fallback
        if not target.startswith("/") or target.startswith("//"):
            target = fallback
        return RedirectResponse(target, 303)

    # -- reading forms

    def form_values(self, release: Release) -> dict[str, Any]:
        """A release's fields as the edit form shows them (and reads them back)."""
        return {
            "title": release.title,
            "url": release.url,
            "language": release.language,
            "summary": release.summary,
            "body": release.body,
            "hashtags": "\n".join(release.hashtags),
            "topics": "; ".join(release.topics),
            "networks": release.networks or [],
            "overrides": dict(release.overrides),
            "not_before": self.local_input(release.not_before),
        }

    def release_fields(
        self,
        visit: Visit,
        shown: Release | None = None,
        problems: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The editable fields of a release, as the form sends them.

        With ``shown`` (the revision the edit form was filled from), a field the person left
        as the form showed it is left out, so it keeps its value exactly (seconds of a time,
        a browser's line endings). With ``problems``, a field that cannot be read is
        recorded there instead of raised, so every field's problem can be shown at once.
        """
        import re

        form = visit.form
        assert form is not None
        before = self.form_values(shown) if shown is not None else {}

        def typed(name: str) -> str | None:
            """The field's text, or None when it is as the form showed it."""
            text = visit.field(name).replace("\r\n", "\n")
            return None if name in before and text == before[name] else text

        fields: dict[str, Any] = {}
        for name in ("title", "url", "language", "summary", "body"):
            text = typed(name)
            if text is not None:
                fields[name] = text
        hashtags = typed("hashtags")
        if hashtags is not None:  # one per line: a hashtag may hold spaces and commas
            fields["hashtags"] = [tag.strip() for tag in hashtags.split("\n") if tag.strip()]
        topics = typed("topics")
        if topics is not None:
            fields["topics"] = [t.strip() for t in re.split(r"[;\n]", topics) if t.strip()]
        chosen = [n for n in form.getlist("networks") if isinstance(n, str)]
        if shown is None or chosen != before["networks"]:
            fields["networks"] = chosen or None
        overrides = dict(shown.overrides) if shown is not None else {}
        for n in NETWORKS:
            text = visit.field(f"override_{n}").replace("\r\n", "\n")
            if shown is not None and text == overrides.get(n, ""):
                continue
            if text.strip():
                overrides[n] = text.strip()
            else:
                overrides.pop(n, None)
        if shown is None or overrides != shown.overrides:
            fields["overrides"] = overrides
        not_before = typed("not_before")
        if not_before is not None:
            try:
                fields["not_before"] = self.read_local_time(not_before)
            except FormProblem as exc:
                if problems is None:
                    raise
                problems["not_before"] = str(exc)
        return fields

    def check_release(
        self,
        release_id: str,
        fields: Mapping[str, Any],
        base: Release | None = None,
        problems: dict[str, str] | None = None,
    ) -> None:
        """Raise FieldProblems naming every field that needs a change, by its label.

        ``problems`` holds what was found while reading the form (a time that is no time);
        the rest are found by validating the release as it would be saved.
        """
        from pydantic import ValidationError

        found = dict(problems or {})
        data = {**(base.model_dump() if base is not None else {}), **fields, "id": release_id}
        try:
            Release.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else ""
                if name not in FIELDS or name in found:
                    continue
                message = error["msg"].removeprefix("Value error, ")
                if error["type"] in ("missing", "string_too_short"):
                    message = "cannot be empty"
                found[name] = f"{FIELDS[name][0]}: {message}"
        if found:
            raise FieldProblems({name: found[name] for name in FIELDS if name in found})

    def read_local_time(self, text: str) -> datetime | None:
        text = text.strip()
        if not text:
            return None
        try:
            local = datetime.fromisoformat(text)
        except ValueError:
            raise FormProblem(
                f"Not before: {text!r} is not a date and time such as 2026-11-26T09:00"
            ) from None
        if local.tzinfo is None:
            local = local.replace(tzinfo=self.zone)
        return local.astimezone(UTC)

    def local_input(self, value: datetime | None) -> str:
        return value.astimezone(self.zone).strftime("%Y-%m-%dT%H:%M") if value else ""


# -- the pages ---------------------------------------------------------------------------------


def build_routes(desk: Desk) -> list[Route | Mount]:
    settings = desk.settings
    store = desk.store

    async def home(visit: Visit) -> Response:
        return RedirectResponse("/inbox", 303)

    # -- signing in and out

    async def sign_in_page(visit: Visit) -> Response:
        if visit.user is not None:
            return RedirectResponse("/inbox", 303)
        return desk.render(
            visit, "sign_in.html", {"next": visit.request.query_params.get("next", "")}
        )

    async def sign_in(visit: Visit) -> Response:
        name = visit.field("name").strip()
        password = visit.field("password")
        address = desk.client_address(visit.request)
        wait = desk.throttle.wait(name, address)
        if wait > 0:
            minutes = max(1, int(wait // 60) + (1 if wait % 60 else 0))
            return desk.render(
                visit,
                "sign_in.html",
                {
                    "error": f"Too many failed sign-ins: try again in {minutes} minute"
                    + ("s" if minutes != 1 else "")
                    + ".",
                    "name": name,
                    "next": visit.field("next"),
                },
                status=429,
            )
        user = desk.users.verify(name, password)
        if user is None:
            desk.throttle.failed(name, address)
            return desk.render(
                visit,
                "sign_in.html",
                {
                    "error": "That name and password do not match an enabled account.",
                    "name": name,
                    "next": visit.field("next"),
                },
                status=401,
            )
        desk.throttle.succeeded(name, address)
        # A new session at sign-in: a new id and a new CSRF token, nothing carried over.
        visit.session = {
            "user": user.name,
            "iat": time.time(),
            "sid": secrets.token_urlsafe(16),
            "csrf": secrets.token_urlsafe(32),
        }
        visit.changed = True
        visit.user = user
        return desk.back(visit, "/inbox")

    async def sign_out(visit: Visit) -> Response:
        if visit.user is not None and not visit.sso:
            desk.users.sign_out_everywhere(visit.user.name)
        visit.session = {"csrf": secrets.token_urlsafe(32)}
        visit.changed = True
        return RedirectResponse("/sign-in", 303)

    # -- the inbox

    async def inbox(visit: Visit) -> Response:
        query = visit.request.query_params
        stage_name = query.get("state", "")
        stage = next((s for s in operations.ReleaseStage if s.value == stage_name), None)
        network = query.get("network", "")
        items = operations.inbox(
            settings,
            store,
            language=query.get("language") or None,
            network=network if network in NETWORKS else None,
            stage=stage,
            text=query.get("q") or None,
        )
        try:
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            page = 1
        pages = max(1, (len(items) + PAGE_SIZE - 1) // PAGE_SIZE)
        page = min(page, pages)
        languages = sorted({r.release.language for r in store.latest_revisions().values()})
        params = {k: v for k, v in query.items() if k != "page" and v}
        return desk.render(
            visit,
            "inbox.html",
            {
                "items": items[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
                "total": len(items),
                "page": page,
                "pages": pages,
                "stages": list(operations.ReleaseStage),
                "languages": languages,
                "filters": dict(query),
                "page_link": lambda n: (
                    "/inbox?"
                    + "&".join(
                        f"{quote(k)}={quote(v)}" for k, v in {**params, "page": str(n)}.items()
                    )
                ),
            },
        )

    # -- a release

    def release_page(
        visit: Visit,
        release_id: str,
        *,
        error: str = "",
        field_errors: Mapping[str, str] | None = None,
        draft: Mapping[str, Any] | None = None,
        status: int = 200,
    ) -> Response:
        try:
            item = operations.release_item(settings, store, release_id)
        except SocialbotError:
            return desk.render(
                visit,
                "error.html",
                {"title": "Not found", "message": f"No release {release_id!r} is known."},
                status=404,
            )
        release = item.release
        latest = store.latest_revisions([release_id]).get(release_id)
        preview = operations.compose_posts(
            release,
            item.networks,
            operations.compose_options(settings, store),
            source=latest.source if latest is not None else None,
            store=store,
        )
        revisions = store.revisions(release_id)
        diffs = []
        previous: Revision | None = None
        for revision in revisions:
            before = as_lines(previous) if previous else []
            # Each line in its revision's language: a removed line in the one before.
            languages = {
                "+": revision.release.language,
                "-": previous.release.language if previous else revision.release.language,
            }
            diffs.append(
                (
                    revision,
                    [
                        (line, languages.get(line[:1], revision.release.language))
                        for line in difflib.unified_diff(
                            before, as_lines(revision), lineterm="", n=0
                        )
                        if not line.startswith(("---", "+++", "@@"))
                    ],
                )
            )
            previous = revision
        latest = item.revision
        author = latest.author or ""
        user = visit.user
        assert user is not None
        values = draft or desk.form_values(release)
        return desk.render(
            visit,
            "release.html",
            {
                "item": item,
                "release": release,
                "preview": preview,
                "segments": segments,
                "diffs": list(reversed(diffs)),
                "approvals": store.approvals(release_id),
                "rejections": store.rejections(release_id),
                "audit": list(reversed(store.audit_trail(release_id))),
                "deliveries": store.deliveries(release_id=release_id),
                "author": author,
                "own_revision": bool(author) and author.casefold() == user.name.casefold(),
                "unsubmitted": operations.unsubmitted(store, item.revision),
                "still_needed": max(0, item.required - len(item.approvers)),
                "error": error,
                "field_errors": field_errors or {},
                "values": values,
                "revision_number": latest.number,
            },
            status=status,
        )

    async def release(visit: Visit) -> Response:
        return release_page(visit, visit.request.path_params["release_id"])

    async def edit(visit: Visit) -> Response:
        release_id = visit.request.path_params["release_id"]
        user = visit.user
        assert user is not None
        problems: dict[str, str] = {}
        try:
            expect = revision_number(visit.field("revision"))
            latest = store.latest_revisions([release_id]).get(release_id)
            shown = latest.release if latest is not None else None
            fields = desk.release_fields(visit, shown, problems)
            desk.check_release(release_id, fields, shown, problems)
            revision = operations.edit_release(
                store, release_id, fields, author=user.name, expect_revision=expect
            )
            if visit.field("submit"):
                operations.submit(store, release_id, by=user.name)
        except SocialbotError as exc:
            return release_page(
                visit, release_id, **form_errors(exc), draft=draft_values(visit), status=400
            )
        if revision is None:
            visit.flash("Nothing changed: no new revision.")
        else:
            visit.flash(
                f"Saved as revision {revision.number}"
                + (" and submitted for approval." if visit.field("submit") else " (a draft).")
            )
        return RedirectResponse(f"/releases/{quote(release_id)}", 303)

    async def submit(visit: Visit) -> Response:
        release_id = visit.request.path_params["release_id"]
        assert visit.user is not None
        try:
            revision = operations.submit(store, release_id, by=visit.user.name)
            visit.flash(f"Revision {revision.number} submitted for approval.")
        except SocialbotError as exc:
            visit.flash(str(exc), "error")
        return RedirectResponse(f"/releases/{quote(release_id)}", 303)

    async def new_page(visit: Visit) -> Response:
        return desk.render(
            visit, "new.html", {"values": {"language": "en", "networks": [], "overrides": {}}}
        )

    async def create(visit: Visit) -> Response:
        assert visit.user is not None
        release_id = visit.field("id").strip()
        problems: dict[str, str] = {}
        try:
            fields = desk.release_fields(visit, problems=problems)
            desk.check_release(release_id, fields, problems=problems)
            revision = operations.create_release(
                store, {**fields, "id": release_id}, author=visit.user.name
            )
            if visit.field("submit"):
                operations.submit(store, revision.release_id, by=visit.user.name)
        except SocialbotError as exc:
            return desk.render(
                visit,
                "new.html",
                {
                    **form_errors(exc),
                    "values": {**draft_values(visit), "id": release_id},
                },
                status=400,
            )
        visit.flash(f"Created {revision.release_id} (revision 1).")
        return RedirectResponse(f"/releases/{quote(revision.release_id)}", 303)

    async def count(visit: Visit) -> Response:
        """The live counters: the composer counts, as preview and approval do."""
        release_id = visit.field("id").strip() or "new-release"
        try:
            fields = desk.release_fields(visit)
            release = operations.release_from_fields(release_id, fields)
        except SocialbotError as exc:
            return JSONResponse({"error": str(exc), "posts": []})
        targets = release.target_networks(settings.active_networks() or list(NETWORKS))
        preview = operations.compose_posts(
            release, targets, operations.compose_options(settings, store)
        )
        return JSONResponse(
            {
                "error": "; ".join(str(p) for p in preview.problems),
                "posts": [
                    {"network": p.network, "length": p.length, "limit": p.limit}
                    for p in preview.posts
                ],
            }
        )

    async def approve(visit: Visit) -> Response:
        release_id = visit.request.path_params["release_id"]
        assert visit.user is not None
        seen = visit.field("revision")
        try:
            item = operations.release_item(settings, store, release_id)
            current = item.revision
            if seen and seen != str(current.number):
                raise FormProblem(
                    f"revision {current.number} was saved after the page you approved from; "
                    "read it and approve again"
                )
            result = operations.approve(
                settings, store, release_id, by=visit.user.name, comment=visit.field("comment")
            )
        except SocialbotError as exc:
            visit.flash(str(exc), "error")
            return RedirectResponse(f"/releases/{quote(release_id)}", 303)
        if result.in_force:
            visit.flash(
                f"Approved revision {result.revision.number}: the posts go out as shown "
                f"({', '.join(result.approvers)})."
            )
        else:
            visit.flash(
                f"Approval recorded: {len(result.approvers)} of {result.required}; "
                "another approver must approve the same revision."
            )
        for note in result.notes:
            visit.flash(note)
        for note in result.to_settle:
            visit.flash(f"{note} (in the posting log).", "error")
        return RedirectResponse(f"/releases/{quote(release_id)}", 303)

    async def reject(visit: Visit) -> Response:
        release_id = visit.request.path_params["release_id"]
        assert visit.user is not None
        try:
            operations.reject(
                settings, store, release_id, by=visit.user.name, reason=visit.field("comment")
            )
            visit.flash("Rejected: nothing of this revision is posted.")
        except SocialbotError as exc:
            visit.flash(str(exc).replace("--reason", "A comment"), "error")
        return RedirectResponse(f"/releases/{quote(release_id)}", 303)

    async def take_back(visit: Visit) -> Response:
        release_id = visit.request.path_params["release_id"]
        kind = visit.request.path_params["kind"]
        assert visit.user is not None
        if kind not in ("withdraw", "retract"):
            return desk.render(
                visit, "error.html", {"title": "Not found", "message": "No such page."}, 404
            )
        network = visit.field("network") or None
        if network is not None and network not in NETWORKS:
            network = None
        try:
            function = operations.retract if kind == "retract" else operations.withdraw
            result = function(
                settings,
                store,
                release_id,
                by=visit.user.name,
                network=network,
                reason=visit.field("reason"),
            )
        except SocialbotError as exc:
            visit.flash(str(exc), "error")
            return desk.back(visit, f"/releases/{quote(release_id)}")
        visit.flash(*take_back_message(result, kind))
        return desk.back(visit, f"/releases/{quote(release_id)}")

    # -- the calendar

    async def calendar(visit: Visit) -> Response:
        query = visit.request.query_params
        view = "month" if query.get("view") == "month" else "week"
        try:
            day = date.fromisoformat(query.get("start", ""))
        except ValueError:
            day = datetime.now(desk.zone).date()
        try:
            first, last, previous, following = calendar_span(view, day)
        except OverflowError:
            return desk.render(
                visit,
                "error.html",
                {
                    "title": "No such calendar page",
                    "message": f"The calendar cannot show the {view} of {day.isoformat()}: "
                    "choose a date between the years 1 and 9999, away from their ends.",
                },
                status=400,
            )
        latest = store.latest_revisions()
        entries: dict[tuple[date, str], list[dict[str, Any]]] = {}
        for delivery in store.deliveries():
            at, kind = calendar_time(delivery)
            if at is None:
                continue
            local = at.astimezone(desk.zone)
            if not first <= local.date() <= last:
                continue
            entries.setdefault((local.date(), delivery.network), []).append(
                {
                    "time": local.strftime("%H:%M"),
                    "kind": kind,
                    "release_id": delivery.release_id,
                    "title": latest[delivery.release_id].release.title
                    if delivery.release_id in latest
                    else delivery.release_id,
                    "language": latest[delivery.release_id].release.language
                    if delivery.release_id in latest
                    else "",
                    "network": delivery.network,
                }
            )
        for found in entries.values():
            found.sort(key=lambda e: e["time"])
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        start = first - timedelta(days=first.weekday())
        weeks: list[list[date | None]] = []
        cursor = start
        while cursor <= last:
            weeks.append(
                [
                    (cursor + timedelta(days=n))
                    if first <= cursor + timedelta(days=n) <= last
                    else None
                    for n in range(7)
                ]
            )
            cursor += timedelta(days=7)
        return desk.render(
            visit,
            "calendar.html",
            {
                "view": view,
                "days": days,
                "weeks": weeks,
                "entries": entries,
                "networks": NETWORKS,
                "first": first,
                "last": last,
                "previous": previous.isoformat(),
                "following": following.isoformat(),
                "day_entries": lambda d: sorted(
                    (e for (when, _), found in entries.items() if when == d for e in found),
                    key=lambda e: (e["time"], e["network"]),
                ),
            },
        )

    # -- the posting log

    def log_rows(visit: Visit) -> tuple[list[Delivery], dict[str, str], str]:
        query = visit.request.query_params
        filters = {k: query.get(k, "") for k in ("release", "network", "status", "since")}
        error = ""
        cutoff = None
        if filters["since"]:
            try:
                cutoff = operations.cutoff(filters["since"], utcnow())
            except ValueError as exc:
                error = f"Changed within {filters['since']!r}: {exc}"
        status = next((s for s in DeliveryStatus if s.value == filters["status"]), None)
        rows = operations.log(
            store,
            release_id=filters["release"] or None,
            network=filters["network"] if filters["network"] in NETWORKS else None,
            status=status,
            since=cutoff,
            limit=500,
        )
        return rows, filters, error

    async def log_page(visit: Visit) -> Response:
        rows, filters, error = log_rows(visit)
        query = visit.request.url.query
        return desk.render(
            visit,
            "log.html",
            {
                "rows": rows,
                "languages": {
                    rid: r.release.language
                    for rid, r in store.latest_revisions(
                        sorted({d.release_id for d in rows})
                    ).items()
                },
                "filters": filters,
                "error": error,
                "statuses": [s.value for s in DeliveryStatus],
                "csv_link": "/log.csv" + (f"?{query}" if query else ""),
            },
            status=400 if error else 200,
        )

    async def log_csv(visit: Visit) -> Response:
        rows, _, error = log_rows(visit)
        if error:  # never the whole log in place of the rows asked for
            return Response(error + "\n", status_code=400, media_type="text/plain; charset=utf-8")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(
            [
                "updated_at",
                "release",
                "revision",
                "network",
                "status",
                "attempts",
                "approved_by",
                "url",
                "error",
                "text",
            ]
        )
        for row in rows:
            writer.writerow(
                [
                    cell(value)
                    for value in (
                        row.updated_at.isoformat(),
                        row.release_id,
                        str(row.revision or ""),
                        row.network,
                        row.status.value,
                        str(row.attempts),
                        row.approved_by,
                        row.url or "",
                        row.error or "",
                        row.text or "",
                    )
                ]
            )
        return Response(
            buffer.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="socialbot-log.csv"'},
        )

    async def retry(visit: Visit) -> Response:
        assert visit.user is not None
        release_id = visit.field("release")
        network = visit.field("network") or None
        try:
            count = operations.retry(store, release_id, network, by=visit.user.name)
            visit.flash(f"{count} delivery of {release_id} back in the queue for the next drain.")
        except SocialbotError as exc:
            visit.flash(str(exc), "error")
        return desk.back(visit, "/log")

    async def resolve(visit: Visit) -> Response:
        assert visit.user is not None
        release_id = visit.field("release")
        network = visit.field("network")
        posted = visit.field("verdict") == "posted"
        url = visit.field("url").strip() if posted else None
        try:
            if posted and not url:
                raise FormProblem("give the post's address to mark it posted")
            operations.resolve(settings, store, release_id, network, url=url, by=visit.user.name)
            visit.flash(
                f"{release_id} on {network}: "
                + (f"posted at {url}." if posted else "not posted; it is sent again.")
            )
        except SocialbotError as exc:
            visit.flash(str(exc).replace("--posted", "The address"), "error")
        return desk.back(visit, "/log")

    async def pause(visit: Visit) -> Response:
        assert visit.user is not None
        network = visit.field("network") or None
        if network is not None and network not in NETWORKS:
            network = None
        try:
            operations.pause(
                store, by=visit.user.name, reason=visit.field("reason"), network=network
            )
            visit.flash(f"Paused {network or 'every network'}: nothing is sent until resumed.")
        except SocialbotError as exc:
            visit.flash(str(exc).replace("--reason", "A reason"), "error")
        return desk.back(visit, "/log")

    async def resume(visit: Visit) -> Response:
        assert visit.user is not None
        network = visit.field("network") or None
        if network is not None and network not in NETWORKS:
            network = None
        lifted = operations.resume(store, by=visit.user.name, network=network)
        visit.flash(
            f"Resumed {network or 'every network'}." if lifted else "That switch was not on."
        )
        return desk.back(visit, "/log")

    # -- users

    async def users_page(visit: Visit) -> Response:
        return desk.render(
            visit, "users.html", {"users": desk.users.all(), "roles": [r.value for r in Role]}
        )

    async def users_change(visit: Visit) -> Response:
        action = visit.request.path_params["action"]
        name = visit.field("name")
        try:
            if action == "add":
                desk.users.add(name, parse_role(visit.field("role")), visit.field("password"))
                visit.flash(f"Added {name}.")
            elif action == "role":
                desk.users.set_role(name, parse_role(visit.field("role")))
                visit.flash(f"{name} is now {visit.field('role')}.")
            elif action == "disable":
                desk.users.disable(name)
                visit.flash(f"Disabled {name}: their sessions ended.")
            elif action == "enable":
                desk.users.enable(name)
                visit.flash(f"Enabled {name}.")
            else:
                return desk.refuse(visit, "No such action.", 404)
        except UserError as exc:
            visit.flash(str(exc), "error")
        return RedirectResponse("/users", 303)

    static = Path(__file__).parent / "static"
    e = desk.endpoint
    network_styles = "".join(
        f".post-{name} {{ border-top: 4px solid {profile.colour}; }}\n"
        for name, profile in PROFILES.items()
    )

    async def networks_css(request: Request) -> Response:
        """Each network's accent, from its profile."""
        return Response(
            network_styles, media_type="text/css", headers={"cache-control": "max-age=3600"}
        )

    return [
        Route("/", e(home)),
        Route("/sign-in", e(sign_in_page, public=True), methods=["GET"]),
        Route("/sign-in", e(sign_in, public=True), methods=["POST"]),
        Route("/sign-out", e(sign_out, public=True), methods=["POST"]),
        Route("/inbox", e(inbox)),
        Route("/releases/new", e(new_page, Can.EDIT), methods=["GET"]),
        Route("/releases/new", e(create, Can.EDIT), methods=["POST"]),
        Route("/count", e(count, Can.EDIT), methods=["POST"]),
        Route("/releases/{release_id}", e(release)),
        Route("/releases/{release_id}/edit", e(edit, Can.EDIT), methods=["POST"]),
        Route("/releases/{release_id}/submit", e(submit, Can.EDIT), methods=["POST"]),
        Route("/releases/{release_id}/approve", e(approve, Can.APPROVE), methods=["POST"]),
        Route("/releases/{release_id}/reject", e(reject, Can.APPROVE), methods=["POST"]),
        Route(
            "/releases/{release_id}/{kind:str}",
            e(take_back, Can.OPERATE),
            methods=["POST"],
        ),
        Route("/calendar", e(calendar)),
        Route("/log", e(log_page)),
        Route("/log.csv", e(log_csv)),
        Route("/log/retry", e(retry, Can.OPERATE), methods=["POST"]),
        Route("/log/resolve", e(resolve, Can.OPERATE), methods=["POST"]),
        Route("/pause", e(pause, Can.OPERATE), methods=["POST"]),
        Route("/resume", e(resume, Can.OPERATE), methods=["POST"]),
        Route("/users", e(users_page, Can.USERS)),
        Route("/users/{action:str}", e(users_change, Can.USERS), methods=["POST"]),
        Route("/static/networks.css", networks_css),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]


def as_lines(revision: Revision) -> list[str]:
    data = revision.release.model_dump(mode="json")
    return [
        f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in sorted(data.items())
    ]


def draft_values(visit: Visit) -> dict[str, Any]:
    """What the person typed, to show again with an error (never lost)."""
    form = visit.form
    assert form is not None
    values: dict[str, Any] = {
        name: visit.field(name)
        for name in ("title", "url", "language", "summary", "body", "hashtags", "topics")
    }
    values["networks"] = [n for n in form.getlist("networks") if isinstance(n, str)]
    values["overrides"] = {n: visit.field(f"override_{n}") for n in NETWORKS}
    values["not_before"] = visit.field("not_before")
    return values


def calendar_span(view: str, day: date) -> tuple[date, date, date, date]:
    """The first and last day shown, and the first days of the pages before and after.

    Raises OverflowError when one of them falls outside the years 1-9999.
    """
    if view == "week":
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=6)
        return first, last, first - timedelta(days=7), first + timedelta(days=7)
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    last = following - timedelta(days=1)
    previous = (first - timedelta(days=1)).replace(day=1)
    return first, last, previous, following


def form_errors(exc: SocialbotError) -> dict[str, Any]:
    """A form's problems for its template: per field, or one sentence for the whole form."""
    if isinstance(exc, FieldProblems):
        return {"error": "", "field_errors": exc.problems}
    return {"error": str(exc), "field_errors": {}}


def take_back_message(result: operations.TakeBack, kind: str) -> tuple[str, str]:
    """The flash after a withdrawal or retraction: what happens on each network, and its kind."""

    def names(networks: list[str]) -> str:
        return ", ".join(network_name(n) for n in networks)

    doubt = result.in_doubt
    done = names(result.retracted + result.withdrawn) or "nothing was waiting"
    parts = [f"{'Retracted' if kind == 'retract' else 'Withdrawn'}: {done}"]
    if doubt.looked_for:
        parts.append(f"may already be posted, so it is looked for first: {names(doubt.looked_for)}")
    if doubt.being_sent:
        then = "the next drain deletes it" if kind == "retract" else "retract it to delete it"
        parts.append(
            f"a drain is sending it (or was, when it stopped): {names(doubt.being_sent)}; "
            f"if it goes out, {then}, and if not it is withdrawn"
        )
    if doubt.to_settle:
        parts.append(
            f"may already be posted, and cannot be looked for: {names(doubt.to_settle)} "
            "(look at the channel, then resolve it in the posting log)"
        )
    if result.posted:
        parts.append(f"already posted, and still up: {names(result.posted)} (retract deletes it)")
    if result.failed:
        parts.append(f"problems: {'; '.join(result.failed)}")
    attention = bool(doubt.to_settle or result.failed)
    return "; ".join(parts) + ".", "error" if attention else "ok"


def revision_number(text: str) -> int | None:
    """The revision a form was shown with (None when the form names none)."""
    text = text.strip()
    if not text:
        return None
    if not text.isdecimal() or int(text) < 1:
        raise FormProblem(f"{text!r} is not a revision number; reload the release and try again")
    return int(text)


def calendar_time(delivery: Delivery) -> tuple[datetime | None, str]:
    if delivery.status is DeliveryStatus.POSTED:
        return delivery.posted_at or delivery.sent_at, "published"
    if delivery.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING):
        return delivery.not_before, "scheduled"
    return None, ""


def cell(value: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def create_app(
    settings: Settings, store: Store | None = None, *, users: Users | None = None
) -> Starlette:
    """The desk for ``settings``; refuses to start without a session secret."""
    from contextlib import asynccontextmanager

    from socialbot.errors import ConfigurationError

    secret = settings.desk.secret_key
    if secret is None or len(secret.get_secret_value()) < 16:
        raise ConfigurationError(
            "SOCIALBOT_DESK__SECRET_KEY is not set (or shorter than 16 characters): set it to a "
            "long random value, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    owned = store is None
    the_store = store if store is not None else open_store(settings.database_url)
    desk = Desk(settings, the_store, secret.get_secret_value(), users)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        if owned:
            the_store.close()

    app = DeskApp(routes=build_routes(desk), lifespan=lifespan)
    app.behind_https = settings.desk.behind_https
    app.state.desk = desk
    return app


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the desk with uvicorn until interrupted."""
    import uvicorn

    uvicorn.Server(server_config(create_app(settings), host, port)).run()


def server_config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings for the desk. Its own logging configuration is left out: its
    loggers (an application error's traceback included) go through socialbot's handler,
    which redacts secrets, instead of handlers of uvicorn's that would print them as is."""
    import logging

    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", proxy_headers=False, log_config=None
    )
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # as another Config left them
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return config
