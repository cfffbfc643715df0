"""The web page of ``aifdata serve``: sign in with a token, search, a dataset's page with its
lineage drawn, the audit log for admins.

Plain HTML rendered here from Jinja2 templates (``templates/``, autoescaped, the SVG too),
one small stylesheet and script (``static/``), nothing from elsewhere. Each page runs
through the same :meth:`Service.call` as the JSON API, as the principal of the
``aifdata_token`` cookie, and builds on the API's own endpoint functions, so grants, audit
and input checks are the API's. A dataset the caller may not read is the same 404 page as
a missing one.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import jinja2
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

import aifdata.service._api as _api

from .._errors import (
    AccessDenied,
    InvalidToken,
    RateLimited,
    RequestTimeout,
    UnknownDataset,
    one_line,
)
from ._calls import TOKEN_COOKIE, Call, Caller, Service, read_body
from ._lineage_svg import lay_out, lineage_graph
from ._responses import hide_location, log, status_of

HERE = Path(__file__).parent
#: What a login form with a token that did not authenticate is told (one text for all).
BAD_TOKEN = "That token was not accepted: it is unknown, expired or revoked."
#: How many runs away from a version its page draws, each way (more: ``?depth=N``).
LINEAGE_DEPTH = 8
#: Every page: nothing from elsewhere, no framing, no caching, no referrer to other sites.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def dataset_url(name: str, version: int | None = None) -> str:
    """The page of dataset ``name`` (at ``version``): ``/datasets/NAME?version=N``."""
    url = "/datasets/" + quote(name, safe="/")
    return url if version is None else f"{url}?version={version}"


def _when(stamp: float | None) -> str:
    if stamp is None:
        return ""
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")


def _size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template: HTML and SVG alike
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(dataset_url=dataset_url, when=_when, size=_size)
    return env


TEMPLATES = _environment()


def render(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
    """A page from ``template`` with HTTP status ``code`` and the security headers."""
    html = TEMPLATES.get_template(template).render(context)
    return HTMLResponse(html, status_code=code, headers=HEADERS)


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


# -- pages that act as the cookie's principal --------------------------------------------

Work = Callable[[Call], tuple[str, dict[str, Any]]]


async def page(request: Request, work: Work, params: QueryParams | None = None) -> Response:
    """Run ``work(call)`` as the request's caller (as the API does) and render the template
    it names; no token or a dead one goes to the login page, an error to the error page."""
    service = _service(request)
    params = request.query_params if params is None else params

    def run(caller: Caller) -> tuple[str | None, dict[str, Any]]:
        call = Call(service, caller, params)
        me = _api.whoami(call)
        try:
            template, context = work(call)
        except Exception as exc:  # shown with the caller's header
            return None, {"me": me, "error": hide_location(exc, service.catalog)}
        return template, {"me": me, **context}

    try:
        template, context = await service.call(request, run)
    except InvalidToken:
        response = RedirectResponse("/login", status_code=303, headers=HEADERS)
        if request.cookies.get(TOKEN_COOKIE) is not None:
            _forget(request, response)
        return response
    except Exception as exc:
        return error_page(request, exc)
    if template is None:
        return error_page(request, context["error"], me=context["me"])
    return render(request, template, **context)


def error_page(request: Request, exc: BaseException, me: Any = None) -> Response:
    """The page for an error, with the API's status (an unexpected error: 500, logged)."""
    status, message = status_of(exc), one_line(exc)
    if status is None:
        log.error("internal error", exc_info=exc)
        status, message = 500, "Internal error (the server's log says why)."
    response = render(request, "error.html", status, me=me, status=status, message=message)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return response


async def search_page(request: Request) -> Response:
    """``/?q=``: the datasets the caller may read that match every word."""

    def work(call: Call) -> tuple[str, dict[str, Any]]:
        return "search.html", _api.search(call)

    return await page(request, work)


async def dataset_page(request: Request) -> Response:
    """``/datasets/NAME?version=N``: a version, its files and the tier serving each, the
    caller's grants on it, and its lineage drawn."""
    name = request.path_params["name"]
    others = [(k, v) for k, v in request.query_params.multi_items() if k != "name"]
    params = QueryParams([("name", name), *others])

    def work(call: Call) -> tuple[str, dict[str, Any]]:
        try:
            found = _api.dataset(call)
        except UnknownDataset as exc:  # missing or hidden: the same words for both
            raise UnknownDataset(f"There is no dataset {name!r} that you may read.") from exc
        depth = call.integer("depth", LINEAGE_DEPTH, 1, 100)
        trees = call.catalog.lineage(f"{found['name']}@{found['version']}", depth=depth)
        picture = lay_out(lineage_graph(trees))
        return "dataset.html", {"ds": found, "picture": picture, "depth": depth}

    return await page(request, work, params)


async def audit_page(request: Request) -> Response:
    """``/audit``: the newest audit rows, for catalog admins (others: 403)."""

    def work(call: Call) -> tuple[str, dict[str, Any]]:
        try:
            return "audit.html", _api.audit(call)
        except AccessDenied as exc:  # refused (and the refusal audited) by the catalog
            who = call.caller.principal
            raise AccessDenied(f"The audit log is for catalog admins; {who} is not one.") from exc

    return await page(request, work)


# -- signing in and out ------------------------------------------------------------------


def _same_origin(request: Request) -> bool:
    """Whether a form post comes from this site (a browser says where it comes from:
    ``Sec-Fetch-Site``, else ``Origin``; a client that says neither is not a browser)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def _forget(request: Request, response: Response) -> None:
    response.delete_cookie(
        TOKEN_COOKIE, path="/", secure=request.url.scheme == "https", httponly=True,
        samesite="strict",
    )  # fmt: skip


def _refused(request: Request, message: str, status: int) -> Response:
    return render(request, "login.html", status, me=None, message=message)


async def login_form(request: Request) -> Response:
    return render(request, "login.html", me=None, message=None)


async def login(request: Request) -> Response:
    """Check the pasted token; if good, keep it in an HttpOnly, SameSite=Strict cookie."""
    if not _same_origin(request):
        return _refused(request, "This form must be sent from this site.", 403)
    service = _service(request)
    try:
        body = await read_body(request, service.settings.request_timeout)
    except RequestTimeout as exc:
        return _refused(request, one_line(exc), 504)
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
    token = (fields.get("token") or [""])[0].strip()
    if not token:
        return _refused(request, "Paste a token (aifdata token create user:NAME).", 400)
    try:
        await service.in_thread(lambda: service.identify(token, _client(request)))
    except InvalidToken:
        return _refused(request, BAD_TOKEN, 401)
    except RateLimited as exc:
        return _refused(request, one_line(exc), 429)
    response = RedirectResponse("/", status_code=303, headers=HEADERS)
    response.set_cookie(
        TOKEN_COOKIE, token, path="/", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


async def logout(request: Request) -> Response:
    """Forget the cookie; back to the login form."""
    if not _same_origin(request):
        return _refused(request, "This form must be sent from this site.", 403)
    response = RedirectResponse("/login", status_code=303, headers=HEADERS)
    _forget(request, response)
    return response


#: The web page's routes, for :func:`~aifdata.service.build_app`'s ``extra_routes``.
WEB_ROUTES: list[BaseRoute] = [
    Route("/", search_page, methods=["GET"], name="search_page"),
    Route("/login", login_form, methods=["GET"], name="login_form"),
    Route("/login", login, methods=["POST"], name="login"),
    Route("/logout", logout, methods=["POST"], name="logout"),
    Route("/datasets/{name:path}", dataset_page, methods=["GET"], name="dataset_page"),
    Route("/audit", audit_page, methods=["GET"], name="audit_page"),
    Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
]
