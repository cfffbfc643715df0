"""The web page of ``aifdata serve``.

In process (Starlette's TestClient): signing in and out and the cookie's flags, one message
for every bad token, escaping (HTML and SVG), a hidden dataset as the same page as a missing
one, the audit page for admins only, the lineage picture, nothing from elsewhere.

In a real browser (``browser``): an ``aifdata serve`` process on a loopback port over the
test world, driven by Debian's chromium through Playwright: sign in, search, open a dataset
and its lineage graph, be refused, the audit log, sign out. Each step's screenshot is kept
under ``$AIFDATA_TEST_ARTIFACTS`` (default ``test-artifacts/`` in the repository).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from aifdata import lineage
from aifdata.catalog import Principal, acting_as
from aifdata.service import WEB_ROUTES, ServiceSettings, build_app
from aifdata.service._lineage_svg import Graph, GraphNode, lay_out
from aifdata.service._web import BAD_TOKEN

from ._serving import HIDDEN_FROM_BOB, make_world

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
NASTY = '<script>alert("x")</script>&"\'<svg onload=alert(1)>'


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path / "world")


def web_client(world, base_url="http://testserver"):
    settings = ServiceSettings(rate_per_token=1000.0, burst=1000)
    app = build_app(world.catalog, settings, extra_routes=WEB_ROUTES)
    return TestClient(app, base_url=base_url, follow_redirects=False)


def signed_in(world, user, base_url="http://testserver"):
    client = web_client(world, base_url)
    response = client.post("/login", data={"token": world.tokens[user]})
    assert response.status_code == 303 and response.headers["location"] == "/"
    return client


def count(html, pattern):
    return len(re.findall(pattern, html))


# -- signing in and out ------------------------------------------------------------------


def test_signing_in_keeps_the_token_in_an_httponly_samesite_strict_cookie(world):
    client = web_client(world)
    response = client.post("/login", data={"token": world.tokens["alice"]})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"aifdata_token={world.tokens['alice']};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would not return
    page = client.get("/")
    assert page.status_code == 200 and "user:alice" in page.text


def test_over_https_the_cookie_is_secure(world):
    client = web_client(world, "https://testserver")
    response = client.post("/login", data={"token": world.tokens["alice"]})
    assert "Secure" in response.headers["set-cookie"]


def test_every_bad_token_gets_the_form_again_with_one_message(world):
    client = web_client(world)
    bodies = set()
    revoked = world.tokens["carol"]
    from aifdata.catalog import list_tokens, revoke_token

    with acting_as(Principal("boss")):
        carols = [t for t in list_tokens(world.catalog) if t.principal == "user:carol"]
        revoke_token(world.catalog, carols[0].id)
    for bad in ("nonsense", "aif_0000000000000000_" + "x" * 43, revoked, world.tokens["bob"] + "x"):
        response = client.post("/login", data={"token": bad})
        assert response.status_code == 401 and "set-cookie" not in response.headers
        assert response.text.count(BAD_TOKEN) == 1
        assert 'name="token"' in response.text  # the form again
        bodies.add(response.text)
    assert len(bodies) == 1  # no hint of which token was nearly right


def test_an_empty_token_is_asked_for(world):
    response = web_client(world).post("/login", data={"token": "  "})
    assert response.status_code == 400 and "Paste a token" in response.text


def test_pages_without_a_token_go_to_the_login_form(world):
    client = web_client(world)
    for path in ("/", "/?q=reads", "/datasets/shared/trimmed", "/audit"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.get("/login").status_code == 200


def test_a_dead_cookie_is_forgotten(world):
    client = web_client(world)
    client.cookies.set("aifdata_token", "aif_dead_token")
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert 'aifdata_token=""' in response.headers["set-cookie"]


def test_signing_out_clears_the_cookie(world):
    client = signed_in(world, "alice")
    response = client.post("/logout")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert 'aifdata_token=""' in response.headers["set-cookie"]
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert client.get("/").status_code == 303


def test_forms_posted_from_another_site_are_refused(world):
    client = signed_in(world, "alice")
    evil = {"origin": "https://evil.example"}
    assert client.post("/logout", headers=evil).status_code == 403
    response = client.post("/login", data={"token": world.tokens["bob"]}, headers=evil)
    assert response.status_code == 403 and "set-cookie" not in response.headers
    assert client.post("/logout", headers={"sec-fetch-site": "cross-site"}).status_code == 403
    same = {"origin": "http://testserver", "sec-fetch-site": "same-origin"}
    assert client.post("/logout", headers=same).status_code == 303


# -- what the pages show -----------------------------------------------------------------


def test_search_shows_only_what_the_caller_may_read(world):
    html = signed_in(world, "bob").get("/", params={"q": "reads"}).text
    assert 'href="/datasets/lab/gen_1"' in html
    for hidden in HIDDEN_FROM_BOB:
        assert hidden not in html


def test_the_dataset_page_shows_files_tiers_checksums_and_the_callers_grants(world):
    html = signed_in(world, "bob").get("/datasets/lab/gen_1").text
    with acting_as(Principal("carol")):
        ds = world.catalog.dataset("lab/gen_1")
    assert ds.files[0].checksum in html and "t.csv" in html and "csv" in html
    assert re.search(r'class="tier">\s*archive', html)  # the tier that serves it
    assert re.search(r"<td>user:bob</td><td>read</td><td[^>]*>lab/gen_1</td>", html)
    assert "You may: read." in html


def test_a_name_with_percent_reaches_its_page(world):
    response = signed_in(world, "bob").get("/datasets/lab/a%25b")
    assert response.status_code == 200 and "lab/a%b" in response.text


def test_a_hidden_dataset_is_the_same_page_as_a_missing_one(world):
    client = signed_in(world, "bob")
    missing = client.get("/datasets/nothing/here")
    assert missing.status_code == 404
    for hidden in HIDDEN_FROM_BOB:
        response = client.get(f"/datasets/{hidden.replace('%', '%25')}")
        assert response.status_code == 404
        assert response.text.replace(hidden, "NAME") == missing.text.replace("nothing/here", "NAME")
        assert str(world.root) not in response.text  # nor where the catalog lives
    with acting_as(Principal("boss")):
        refused = [r for r in world.catalog.audit_log(50) if not r["allowed"]]
    assert any(r["principal"] == "user:bob" and r["target"] == "genomics/run42" for r in refused)


def test_a_glob_or_dots_in_a_name_are_a_bad_request(world):
    client = signed_in(world, "bob")
    for name in ("shared/*", "lab/gen_?", "lab/[a-z]en_1"):
        response = client.get("/datasets/" + name.replace("?", "%3F"))
        assert response.status_code == 400, name
        assert "trimmed" not in response.text and "gen_1</" not in response.text


def test_the_lineage_is_drawn_as_svg_nodes_and_edges(world):
    html = signed_in(world, "alice").get("/datasets/shared/trimmed").text
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert count(svg, r'<g class="node dataset') == 2 and count(svg, r'<g class="node run') == 1
    assert count(svg, r'<path class="edge"') == 2
    assert 'data-source="d:genomics/run42@1"' in svg  # input -> run -> output
    assert re.search(r'<g class="node dataset focus" data-key="d:shared/trimmed@1"', svg)
    assert 'href="/datasets/genomics/run42?version=1"' in svg  # a node leads to its page


def test_the_lineage_names_no_dataset_the_caller_may_not_read(world):
    html = signed_in(world, "bob").get("/datasets/shared/trimmed").text
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert "genomics" not in html
    assert count(svg, r'<g class="node') == 2 and count(svg, r'<path class="edge"') == 1
    assert "1 hidden" in svg


def test_every_text_is_escaped_in_html_and_svg(world):
    fs = world.catalog.filesystem()
    with (
        acting_as(Principal("alice")),
        lineage.run(NASTY, inputs=["genomics/run42"], catalog=world.catalog) as run,
    ):
        fs.pipe("both/nasty/x.csv", b"a\n1\n")
        run.output("lab/nasty", source="aif://both/nasty", description=NASTY, tags={"k": NASTY})
    client = signed_in(world, "alice")
    for path in ("/datasets/lab/nasty", "/?q=nasty", "/datasets/genomics/run42"):
        html = client.get(path).text
        assert "<script>alert" not in html and "<svg onload" not in html, path
        assert "&lt;script&gt;" in html or "&lt;svg onload" in html, path
    reflected = client.get("/", params={"q": NASTY}).text
    assert "<script>alert" not in reflected and "&lt;script&gt;alert" in reflected


def test_the_audit_page_is_for_admins(world):
    refused = signed_in(world, "bob").get("/audit")
    assert refused.status_code == 403
    assert "The audit log is for catalog admins; user:bob is not one." in refused.text
    assert 'id="audit"' not in refused.text
    html = signed_in(world, "boss").get("/audit").text
    assert 'id="audit"' in html and count(html, r'<tr class="(allowed|refused)">') > 0
    assert "user:bob" in html  # bob's refusal is there


def test_pages_load_nothing_from_elsewhere(world):
    client = signed_in(world, "boss")
    for path in ("/", "/datasets/shared/trimmed", "/audit", "/datasets/no/such"):
        response = client.get(path)
        assert not re.search(r'(src|href)="(https?:)?//', response.text), path
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert response.headers["x-frame-options"] == "DENY"
    for static in ("/static/web.css", "/static/web.js", "/static/favicon.svg"):
        assert client.get(static).status_code == 200
    assert web_client(world).get("/login").headers["cache-control"] == "no-store"


def test_the_api_still_answers_json_beside_the_pages(world):
    client = web_client(world)
    response = client.get("/api/v1/whoami", headers=world.headers("alice"))
    assert response.json()["principal"] == "user:alice"


# -- the lineage layout ------------------------------------------------------------------


def _node(key, kind="dataset"):
    return GraphNode(key, kind, key, "", key)


def test_layers_put_each_node_right_of_its_furthest_input_and_a_source_near_its_use():
    graph = Graph()
    for key in ("a", "b", "r1", "c", "ref", "r2", "d"):
        graph.add(_node(key, "run" if key in ("r1", "r2") else "dataset"))
    edges = [("a", "r1"), ("b", "r1"), ("r1", "c"), ("c", "r2"), ("a", "r2"), ("ref", "r2"),
             ("r2", "d")]  # fmt: skip
    for edge in edges:
        graph.link(*edge)
    picture = lay_out(graph)
    x = {p.node.key: p.x for p in picture.nodes}
    assert x["a"] == x["b"] < x["r1"] < x["c"] == x["ref"] < x["r2"] < x["d"]
    assert len(picture.edges) == 7 and all(e.path.startswith("M") for e in picture.edges)
    assert picture.width > x["d"] and picture.height > 0


def test_a_cycle_still_draws_every_node():
    graph = Graph()
    for key in ("a", "b"):
        graph.add(_node(key))
    graph.link("a", "b")
    graph.link("b", "a")
    assert {p.node.key for p in lay_out(graph).nodes} == {"a", "b"}


def test_the_templates_and_static_files_ship_in_the_package():
    import aifdata.service

    here = Path(aifdata.service.__file__).parent
    for name in ("base", "login", "search", "dataset", "audit", "error"):
        assert (here / "templates" / f"{name}.html").is_file()
    assert (here / "templates" / "lineage.svg").is_file()
    assert (here / "static" / "web.css").is_file() and (here / "static" / "web.js").is_file()


# -- in a real browser -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _world_toml(root: Path) -> str:
    return f"""
[mounts.both]
read_order = ["pfs", "archive"]
write_tier = "archive"
[mounts.both.pfs]
path = "{root / "pfs"}"
[mounts.both.archive]
kind = "pfs"
path = "{root / "archive"}"
"""


def _align(world) -> None:
    """One more run: ``align`` reads shared/trimmed and reference/grch38 (alice's) and
    makes shared/aligned (which bob may read, through his grant on ``shared/*``)."""
    fs = world.catalog.filesystem()
    with acting_as(Principal("boss")):  # shared/* has grants: a new name there needs one
        world.catalog.grant("alice", "write", "shared/aligned")
    with acting_as(Principal("alice")):
        fs.pipe("both/ref/genome.fa", b">chr1\nACGTACGT\n")
        world.catalog.ingest("aif://both/ref", "reference/grch38", description="reference genome")
        inputs = ["shared/trimmed", "reference/grch38"]
        with lineage.run("align", inputs=inputs, catalog=world.catalog) as run:
            fs.pipe("both/aligned/hits.csv", b"read,pos\nr1,1\n")
            run.output("shared/aligned", source="aif://both/aligned",
                       description="reads of run 42 aligned to GRCh38")  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A world (with :func:`_align`'s run), and an ``aifdata serve`` process over it on a
    free loopback port."""
    root = tmp_path_factory.mktemp("web") / "world"
    with pytest.MonkeyPatch.context() as mp:  # set up before each test's own $AIFDATA_HOME
        mp.setenv("AIFDATA_HOME", str(tmp_path_factory.mktemp("web-home")))
        world = make_world(root)
        _align(world)
    config = root / "config.toml"
    config.write_text(_world_toml(root))
    port = _free_port()
    env = {**os.environ, "AIFDATA_CONFIG": str(config), "AIFDATA_HOME": str(root / "home")}
    env.pop("AIFDATA_USER", None)
    command = [sys.executable, "-m", "aifdata", "serve", "--catalog", str(root / "catalog.db"),
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    log = (root / "serve.log").open("wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(server, base, root / "serve.log")
        yield world, base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _wait_until_up(server: subprocess.Popen, base: str, log: Path) -> None:
    deadline = time.monotonic() + 120  # a busy machine imports slowly
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"aifdata serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/login", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"aifdata serve did not answer at {base}:\n{log.read_text()}")


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright (no browser download)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    args = [
        "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    ]  # fmt: skip
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield launched
        launched.close()


@pytest.fixture
def shots(request):
    """Save a screenshot of a page as this test's artifact: ``shots(page, "step")``."""
    root = Path(os.environ.get("AIFDATA_TEST_ARTIFACTS") or REPO / "test-artifacts")
    folder = root / "web" / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    taken: list[Path] = []

    def shoot(page, step: str, full_page: bool = True) -> Path:
        path = folder / f"{len(taken) + 1:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=full_page)
        taken.append(path)
        return path

    return shoot


@pytest.fixture
def page(browser, served):
    """A fresh browser tab on the served site; afterwards, it must have asked nothing of
    another site, loaded every file it asked for, and logged no error (a script's, or a
    blocked by the Content-Security-Policy)."""
    _, base = served
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    opened = context.new_page()
    problems: list[str] = []

    def on_request(request) -> None:
        if not request.url.startswith(base):
            problems.append(f"asked another site: {request.url}")

    def on_response(response) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            problems.append(f"{response.status} for {response.url}")

    def on_console(message) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            problems.append(f"console: {message.text}")  # a page's own 403/404 is no problem

    opened.on("request", on_request)
    opened.on("response", on_response)
    opened.on("console", on_console)
    opened.on("pageerror", lambda error: problems.append(f"script: {error}"))
    yield opened
    context.close()
    assert not problems


def sign_in(page, token: str) -> None:
    page.goto("/login")
    page.fill("#token", token)
    with page.expect_navigation():  # the form's answer (a page, or a redirect to one)
        page.click("#sign-in")


@pytest.mark.e2e
@pytest.mark.browser
def test_browser_sign_in_search_open_a_dataset_and_its_lineage_then_sign_out(served, page, shots):
    world, base = served
    page.goto("/")
    assert page.url == f"{base}/login"  # no cookie: the login form
    sign_in(page, world.tokens["alice"])
    assert page.locator("#who").inner_text() == "user:alice"
    cookie = next(c for c in page.context.cookies() if c["name"] == "aifdata_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # out of the page's scripts' reach
    shots(page, "signed-in")

    page.fill("input[name=q]", "reads")
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**/?q=reads")
    assert "genomics/run42" in page.locator("#hits a").all_inner_texts()
    shots(page, "search")

    page.click("#hits a:text-is('genomics/run42')")
    page.wait_for_url("**/datasets/genomics/run42")
    assert page.locator("#dataset-name").inner_text().startswith("genomics/run42")
    assert page.locator("#files td.tier").first.inner_text().startswith("archive")
    graph = page.locator("#lineage svg.graph")
    assert graph.locator("g.node").count() == 5  # run42 -> trim -> trimmed -> align -> aligned
    shots(page, "dataset-run42")

    graph.locator('g.node[data-key="d:shared/trimmed@1"] a').click()  # along the graph
    page.wait_for_url("**/datasets/shared/trimmed?version=1")
    graph.locator('g.node[data-key="d:shared/aligned@1"] a').click()
    page.wait_for_url("**/datasets/shared/aligned?version=1")
    assert graph.locator("g.node.dataset").count() == 4  # aligned, trimmed, grch38, run42
    assert graph.locator("g.node.run").count() == 2
    assert graph.locator("path.edge").count() == 5
    assert graph.locator("g.node.focus").get_attribute("data-key") == "d:shared/aligned@1"
    box = graph.bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 80  # drawn, not empty
    page.hover('svg.graph g.node.run[data-key^="r:"] >> nth=-1')
    assert graph.locator("path.edge.lit").count() >= 2  # the script lights a run's edges
    page.mouse.move(0, 0)
    shots(page, "dataset-with-lineage")

    page.click("#logout")
    page.wait_for_url("**/login")
    assert not [c for c in page.context.cookies() if c["name"] == "aifdata_token"]
    page.goto("/datasets/shared/trimmed")
    assert page.url == f"{base}/login"
    shots(page, "signed-out")


@pytest.mark.e2e
@pytest.mark.browser
def test_browser_a_bad_token_and_the_refusals(served, page, shots):
    world, _ = served
    sign_in(page, "aif_not_a_token")
    assert page.locator("#message").inner_text() == BAD_TOKEN
    assert page.locator("#token").count() == 1
    shots(page, "bad-token")

    sign_in(page, world.tokens["bob"])
    response = page.goto("/datasets/genomics/run42")
    assert response is not None and response.status == 404
    hidden = page.locator("#message").inner_text()
    shots(page, "hidden-dataset")
    missing = page.goto("/datasets/no/such")
    assert missing is not None and missing.status == 404
    assert page.locator("#message").inner_text() == hidden.replace("genomics/run42", "no/such")

    assert page.locator("#audit-link").count() == 0
    response = page.goto("/audit")
    assert response is not None and response.status == 403
    assert "for catalog admins" in page.locator("#message").inner_text()
    shots(page, "audit-refused")

    page.goto("/datasets/shared/trimmed")
    # trim (its input hidden) -> trimmed -> align (reference/grch38 hidden) -> aligned
    assert page.locator("svg.graph g.node").count() == 4
    assert "genomics" not in page.content() and "grch38" not in page.content()
    shots(page, "lineage-with-hidden-inputs")


@pytest.mark.e2e
@pytest.mark.browser
def test_browser_an_admin_reads_the_audit_log(served, page, shots):
    world, base = served
    refused = httpx.get(f"{base}/api/v1/dataset", params={"name": "climate/x"},
                        headers=world.headers("bob"))  # fmt: skip
    assert refused.status_code == 404
    sign_in(page, world.tokens["boss"])
    page.click("#audit-link")
    page.wait_for_url("**/audit")
    rows = page.locator("#audit-rows tr")
    assert rows.count() > 0
    page.fill("input.filter", "refused")  # the script filters the rows
    visible = [r.inner_text() for r in rows.all() if r.is_visible()]
    assert visible and all("refused" in text for text in visible)
    assert any("user:bob" in text and "climate/x" in text for text in visible)
    shots(page, "audit")


def test_the_lineage_is_drawn_to_a_depth(world):
    client = signed_in(world, "alice")
    html = client.get("/datasets/genomics/run42", params={"depth": "1"}).text
    assert count(html, r'<g class="node') == 3  # run42 -> trim -> trimmed
    assert 'depth=2">draw further' in html
    assert client.get("/datasets/genomics/run42", params={"depth": "0"}).status_code == 400
