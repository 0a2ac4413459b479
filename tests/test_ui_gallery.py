"""The gallery at /ui/ in a real headless Chromium, on the real API and database: sign-in by
the one-time link of `metalake ui` and by key, the grid and its query, an item's boxes drawn
where the stored boxes are, the confidence slider, escaping, CSRF, refusals without a session.
Screenshots of each page go to out/ui/."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.config import Settings
from engine.db.models import Annotation, File
from engine.db.session import session_scope
from engine.interop.draw import label_color
from engine.ui import thumbnails
from sdk import Client
from tests.fixtures import shapes
from tests.fixtures.browser import screenshot, sign_in_link, unlabelled

pytestmark = pytest.mark.integration

HUMAN_BOX = {"x1": 40, "y1": 50, "x2": 200, "y2": 180}
SURE_BOX = {"x1": 220, "y1": 20, "x2": 300, "y2": 100}  # machine, confidence 0.9
UNSURE_BOX = {"x1": 100, "y1": 150, "x2": 180, "y2": 230}  # machine, confidence 0.3
SCRIPT_TAG = "<script>window.pwned=1</script>"


def _images(folder: Path, names: list[str], size: tuple[int, int] = (320, 240)) -> None:
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        Image.new("RGB", size, (40 + 20 * i % 200, 90, 140)).save(folder / name)


@pytest.fixture
def lake(client: Client, tmp_path: Path, session_factory: sessionmaker[Session]) -> dict[str, int]:
    """birds: a.png … e.png, cats: x.png, y.png; birds_a.png has a human box and two
    machine boxes; birds_b.png a tag named like a script. Returns the files' ids by name."""
    _images(tmp_path / "birds", ["a.png", "b.png", "c.png", "d.png", "e.png"])
    _images(tmp_path / "cats", ["x.png", "y.png"], size=(200, 300))
    client.upload_files_to_collection(tmp_path / "birds", "image", "birds")
    client.upload_files_to_collection(tmp_path / "cats", "image", "cats")
    client.add_annotations(
        "birds_a.png", [{"label": "square", "shape": "box", "geometry": HUMAN_BOX}]
    )
    client.add_tags("birds_b.png", [SCRIPT_TAG])
    with session_scope(session_factory) as session:
        ids = {
            name: file_id for name, file_id in session.execute(select(File.unique_name, File.id))
        }
        for label, box, confidence in (("circle", SURE_BOX, 0.9), ("triangle", UNSURE_BOX, 0.3)):
            session.add(
                Annotation(
                    file_id=ids["birds_a.png"],
                    label=label,
                    shape="box",
                    geometry=box,
                    confidence=confidence,
                    source="machine",
                    status="applied",
                )
            )
    return ids


@pytest.fixture
def link(api_url: str, settings: Settings) -> Callable[[str], str]:
    """The one-time link `metalake ui` prints for a key."""
    assert settings.database_url

    def make(key: str) -> str:
        return sign_in_link(api_url, key, settings.database_url)

    return make


@pytest.fixture
def signed_in(page: Page, link: Callable[[str], str], admin_key: str, lake: dict[str, int]) -> Page:
    page.goto(link(admin_key))
    return page


def _cards(page: Page) -> int:
    return page.locator("#cards .card").count()


def test_the_link_signs_in_once_and_the_grid_counts_the_matches(
    page: Page,
    api_url: str,
    link: Callable[[str], str],
    admin_key: str,
    lake: dict[str, int],
) -> None:
    one_time = link(admin_key)
    page.goto(one_time)
    assert page.url == api_url + "/ui/"
    assert _cards(page) == 7
    expect(page.locator("#total")).to_have_text("7")
    cookie = next(c for c in page.context.cookies() if c["name"] == "metalake_ui")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert admin_key not in cookie["value"]
    sources = page.locator("nav.sidebar li").filter(
        has_text=re.compile("^(raw|human|machine|proposed)")
    )
    assert [" ".join(t.split()) for t in sources.all_inner_texts()] == [
        "raw 6",
        "human 1",
        "machine 1",
        "proposed 0",
    ]
    screenshot(page, "grid")

    page.fill("#q", "collection=birds")
    page.select_option("#sort", "name")
    page.select_option("#order", "asc")
    page.click("button:text('Search')")
    expect(page.locator("#total")).to_have_text("5")
    assert _cards(page) == 5
    assert page.locator("#cards .card .name").all_inner_texts() == [
        "a.png",
        "b.png",
        "c.png",
        "d.png",
        "e.png",
    ]
    # the sidebar's counts are over the matches
    sidebar = page.locator("nav.sidebar")
    expect(sidebar.locator("li", has_text="square")).to_contain_text("1")
    expect(sidebar.locator("li", has_text="birds")).to_contain_text("5")
    assert sidebar.locator("li", has_text="cats").count() == 0
    screenshot(page, "grid-query")

    # a facet narrows the query
    sidebar.get_by_role("link", name="square").click()
    expect(page.locator("#total")).to_have_text("1")
    assert page.input_value("#q") == 'collection=birds AND annotation.label="square"'

    used = httpx.get(one_time)  # the link was used up
    assert used.status_code == 401
    assert "used already" in used.text


def test_the_link_leads_on_to_a_gallery_page_but_never_off_site(
    page: Page, api_url: str, link: Callable[[str], str], admin_key: str, lake: dict[str, int]
) -> None:
    # as `make demo` prints it: the grid of one collection
    page.goto(link(admin_key) + "?" + urlencode({"next": "/ui/?q=collection%3D%22cats%22"}))
    assert page.url == api_url + "/ui/?q=collection%3D%22cats%22"
    expect(page.locator("#total")).to_have_text("2")
    assert page.input_value("#q") == 'collection="cats"'

    page.context.clear_cookies()
    page.goto(link(admin_key) + "?" + urlencode({"next": "https://elsewhere.example/ui/"}))
    assert page.url == api_url + "/ui/"
    expect(page.locator("#total")).to_have_text("7")


def test_a_bad_query_shows_its_error_at_its_position(signed_in: Page) -> None:
    signed_in.fill("#q", "collection=birds AND (tag=")
    signed_in.click("button:text('Search')")
    error = signed_in.locator("#query-error")
    expect(error).to_be_visible()
    position = int(re.findall(r"position (\d+)", error.inner_text())[0])
    assert position == len("collection=birds AND (tag=")
    assert _cards(signed_in) == 0
    screenshot(signed_in, "query-error")


def test_the_item_shows_the_stored_boxes_and_the_slider_hides_unsure_ones(
    signed_in: Page, api_url: str, lake: dict[str, int]
) -> None:
    page = signed_in
    page.goto(f"{api_url}/ui/?q=collection%3Dbirds&sort=name&order=asc")
    page.locator("#cards .card", has_text="a.png").get_by_role("link").click()
    expect(page.locator("h1")).to_have_text("a.png")
    page.wait_for_function("document.getElementById('image').complete")
    image = page.locator("#image").bounding_box()
    assert image is not None
    scale = image["width"] / 320
    assert image["height"] / 240 == pytest.approx(scale, rel=0.01)

    def box_on_screen(label: str) -> dict[str, float]:
        """The rectangle's geometry (not its stroke) in the page's pixels."""
        box: dict[str, float] = page.locator(f"#overlay rect[data-label='{label}']").evaluate(
            """(rect) => {
                const b = rect.getBBox(), m = rect.getScreenCTM();
                return {x: m.a * b.x + m.e, y: m.d * b.y + m.f,
                        width: m.a * b.width, height: m.d * b.height};
            }"""
        )
        return box

    for label, stored in (("square", HUMAN_BOX), ("circle", SURE_BOX), ("triangle", UNSURE_BOX)):
        drawn = box_on_screen(label)
        assert drawn["x"] == pytest.approx(image["x"] + stored["x1"] * scale, abs=1)
        assert drawn["y"] == pytest.approx(image["y"] + stored["y1"] * scale, abs=1)
        assert drawn["width"] == pytest.approx((stored["x2"] - stored["x1"]) * scale, abs=1)
        assert drawn["height"] == pytest.approx((stored["y2"] - stored["y1"]) * scale, abs=1)
    assert page.locator("rect.human").count() == 1
    assert page.locator("rect.machine").count() == 2
    screenshot(page, "item")

    page.locator("#confidence").fill("0.5")
    expect(page.locator("rect[data-label='triangle']")).to_be_hidden()
    expect(page.locator("rect[data-label='circle']")).to_be_visible()
    expect(page.locator("rect[data-label='square']")).to_be_visible()  # human: never hidden
    screenshot(page, "item-slider")
    page.locator("#confidence").fill("0.95")
    expect(page.locator("rect[data-label='circle']")).to_be_hidden()
    page.locator("[data-toggle-source='human']").uncheck()
    expect(page.locator("rect[data-label='square']")).to_be_hidden()

    page.locator("body").click()
    page.keyboard.press("ArrowRight")
    expect(page.locator("h1")).to_have_text("b.png")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("h1")).to_have_text("a.png")


def test_user_strings_render_as_text(signed_in: Page, api_url: str, lake: dict[str, int]) -> None:
    page = signed_in
    expect(page.locator("nav.sidebar")).to_contain_text(SCRIPT_TAG)
    page.goto(f"{api_url}/ui/items/{lake['birds_b.png']}")
    expect(page.locator("td.tag-name")).to_have_text(SCRIPT_TAG)
    assert page.evaluate("window.pwned") is None
    assert page.locator("main script").count() == 0
    screenshot(page, "escaped-tag")


def test_pages_refuse_without_a_session(
    page: Page,
    api_url: str,
    lake: dict[str, int],
) -> None:
    page.goto(api_url + "/ui/?q=tag%3Ddog")
    assert page.url.startswith(api_url + "/ui/signin?next=")
    expect(page.get_by_label("API key")).to_be_visible()
    screenshot(page, "signin")
    file_id = lake["birds_a.png"]
    for path in (f"/ui/items/{file_id}", "/ui/"):
        answer = httpx.get(api_url + path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/ui/signin?next=")
    for path in (f"/ui/files/{file_id}", f"/ui/thumbs/{file_id}", "/ui/cards?page=1"):
        assert httpx.get(api_url + path).status_code == 401
    forged = httpx.get(api_url + "/ui/", cookies={"metalake_ui": "not-a-session"})
    assert forged.status_code == 303
    # the API itself still wants a key
    assert httpx.get(api_url + "/api/v1/items").status_code == 401


def test_sign_in_by_key_read_keys_browse_write_keys_tag_with_csrf(
    page: Page,
    api_url: str,
    client: Client,
    make_key: Callable[..., str],
    lake: dict[str, int],
) -> None:
    file_id = lake["birds_c.png"]
    page.goto(f"{api_url}/ui/items/{file_id}")
    page.get_by_label("API key").fill("mlk_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".error")).to_contain_text("not valid")

    page.get_by_label("API key").fill(make_key("read", name="reader"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text("c.png")  # back where it was going
    assert page.locator("form.add-tag").count() == 0  # a read key browses only
    csrf = page.locator("input[name=csrf_token]").first.input_value()
    refused = page.request.post(
        f"{api_url}/ui/items/{file_id}/tags", form={"name": "sneaky", "csrf_token": csrf}
    )
    assert refused.status == 403
    assert "write" in refused.text()

    page.locator("form.signout button").click()
    page.get_by_label("API key").fill(make_key("write", name="tagger"))
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{api_url}/ui/items/{file_id}")
    forged = page.request.post(
        f"{api_url}/ui/items/{file_id}/tags", form={"name": "forged", "csrf_token": "guess"}
    )
    assert forged.status == 403
    assert "security token" in forged.text()
    assert [t.name for t in client.list_tags("birds_c.png")] == []

    page.get_by_label("Add a tag").fill("heron")
    page.get_by_role("button", name="Add").click()
    expect(page.locator("td.tag-name")).to_have_text("heron")
    assert [(t.name, t.source) for t in client.list_tags("birds_c.png")] == [("heron", "human")]
    screenshot(page, "item-tagged")


def test_thumbnails_are_made_once_and_served_from_the_cache(
    api_url: str,
    link: Callable[[str], str],
    admin_key: str,
    api_settings: Any,
    lake: dict[str, int],
) -> None:
    with httpx.Client(base_url=api_url, follow_redirects=True) as browser_like:
        assert browser_like.get(link(admin_key)).status_code == 200
        first = browser_like.get(f"/ui/thumbs/{lake['cats_y.png']}")
        assert first.status_code == 200
        assert first.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(first.content)) as thumb:
            assert thumb.size == (171, 256)  # 200x300 scaled to a 256 px long side
        [cached] = (api_settings.home / "thumbnails").rglob("*.jpg")
        assert cached.read_bytes() == first.content
        cached.write_bytes(b"cached bytes")  # served from the cache: not made again
        assert browser_like.get(f"/ui/thumbs/{lake['cats_y.png']}").content == b"cached bytes"
        assert cached.name == f"{Path(cached).stem.split('-')[0]}-{thumbnails.SIDE}.jpg"


def test_the_grid_scrolls_on_past_its_first_page(
    page: Page,
    link: Callable[[str], str],
    admin_key: str,
    client: Client,
    tmp_path: Path,
) -> None:
    _images(tmp_path / "many", [f"{i:03d}.png" for i in range(60)], size=(32, 24))
    client.upload_files_to_collection(tmp_path / "many", "image", "many")
    page.goto(link(admin_key))
    expect(page.locator("#total")).to_have_text("60")
    assert _cards(page) == 48
    page.locator("#more").scroll_into_view_if_needed()
    expect(page.locator("#cards .card")).to_have_count(60)
    expect(page.locator("#more")).to_have_count(0)
    screenshot(page, "grid-scrolled")


def test_similar_items_are_the_nearest_among_the_querys_results(
    signed_in: Page, api_url: str, client: Client, lake: dict[str, int]
) -> None:
    vectors = {
        "birds_a.png": [1.0, 0.0, 0.0],
        "birds_b.png": [0.9, 0.3, 0.0],
        "birds_c.png": [0.0, 1.0, 0.0],
        "cats_x.png": [1.0, 0.0, 0.05],
    }
    client.insert_image_embeddings_batch(
        [{"uniqueName": name, "embeddings": v} for name, v in vectors.items()], "ext", [3]
    )
    page = signed_in
    page.goto(f"{api_url}/ui/items/{lake['birds_a.png']}")
    similar = page.locator("ul.similar li .name")
    expect(similar).to_have_text(["cats_x.png", "birds_b.png", "birds_c.png"])
    screenshot(page, "item-similar")

    page.goto(f"{api_url}/ui/items/{lake['birds_a.png']}?q=collection%3Dbirds")
    expect(similar).to_have_text(["birds_b.png", "birds_c.png"])  # the cat is not a result
    page.locator("ul.similar a", has_text="birds_b.png").click()
    expect(page.locator("h1")).to_have_text("b.png")

    page.goto(f"{api_url}/ui/items/{lake['birds_d.png']}")
    expect(page.locator("p.none")).to_contain_text("no vector")


def test_polygons_are_drawn_at_the_stored_points(
    page: Page,
    link: Callable[[str], str],
    admin_key: str,
    api_url: str,
    client: Client,
    tmp_path: Path,
    session_factory: sessionmaker[Session],
) -> None:
    """Generated scenes with their shapes as human polygons and machine boxes: each polygon's
    SVG points are the stored ones; the pages' screenshots are what docs/ui.md shows."""
    folder = tmp_path / "shapes"
    folder.mkdir()
    truths = {}
    for index, found in enumerate(shapes.scenes(16, seed=3, size=(320, 240))):
        found.image.save(folder / f"scene{index:02d}.png")
        truths[f"shapes_scene{index:02d}.png"] = found.shapes
    client.upload_files_to_collection(folder, "image", "shapes")
    with session_scope(session_factory) as session:
        ids = {n: i for n, i in session.execute(select(File.unique_name, File.id))}
        for name, truth in truths.items():
            for number, shape in enumerate(truth):
                x1, y1, x2, y2 = shape.box
                geometry = {"points": [[round(x, 1), round(y, 1)] for x, y in shape.polygon]}
                session.add_all(
                    [
                        Annotation(
                            file_id=ids[name],
                            label=shape.label,
                            shape="polygon",
                            geometry=geometry,
                            source="human",
                        ),
                        Annotation(
                            file_id=ids[name],
                            label=shape.label,
                            shape="box",
                            geometry={"x1": x1 - 3, "y1": y1 - 3, "x2": x2 + 3, "y2": y2 + 3},
                            source="machine",
                            confidence=0.95 - 0.3 * number,
                        ),
                    ]
                )
    page.goto(link(admin_key))
    expect(page.locator("#total")).to_have_text("16")
    screenshot(page, "shapes-grid")
    sizes = page.evaluate("[...document.querySelectorAll('#cards img')].map(i => i.naturalWidth)")
    assert sizes == [256] * 16  # every card shows its 256 px thumbnail

    name = "shapes_scene07.png"
    page.goto(f"{api_url}/ui/items/{ids[name]}")
    drawn = page.locator("#overlay polygon")
    expect(drawn).to_have_count(len(truths[name]))
    for shape, polygon in zip(truths[name], drawn.all(), strict=True):
        points = [tuple(map(float, p.split(","))) for p in polygon.get_attribute("points").split()]
        assert points == [(round(x, 1), round(y, 1)) for x, y in shape.polygon]
        assert polygon.get_attribute("data-label") == shape.label
        assert polygon.get_attribute("stroke") == _hex(label_color(shape.label))
    screenshot(page, "shapes-item")


def _hex(color: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


# -- accessibility ------------------------------------------------------------------------

CONTROLS = "a[href], button, input:not([type=hidden]), select, textarea, [tabindex]"


def _tab_through(page: Page) -> tuple[list[str], list[str]]:
    """(every visible keyboard control of the page, the controls Tab focused in turn): each
    control is numbered first, then Tab is pressed until focus has gone round the page."""
    controls: list[str] = page.evaluate(
        """selector => [...document.querySelectorAll(selector)]
            .filter(e => e.tabIndex >= 0 && !e.disabled && e.getClientRects().length > 0)
            .map((e, i) => { e.dataset.control = String(i);
                             return e.tagName.toLowerCase() + ' ' +
                                    (e.id || e.getAttribute('href') || e.textContent.trim()); })""",
        CONTROLS,
    )
    page.locator("body").focus()
    focused: list[str] = []
    for _ in range(len(controls) + 2):
        page.keyboard.press("Tab")
        index = page.evaluate("document.activeElement && document.activeElement.dataset.control")
        if index is not None:
            focused.append(controls[int(index)])
    return controls, focused


def test_every_control_is_reached_by_the_keyboard(
    signed_in: Page, api_url: str, lake: dict[str, int]
) -> None:
    pages = {
        "grid": "/ui/?q=collection%3Dbirds&sort=name&order=asc",
        "item": f"/ui/items/{lake['birds_a.png']}?q=collection%3Dbirds&sort=name&order=asc&at=0",
        "jobs": "/ui/jobs",
    }
    for name, path in pages.items():
        signed_in.goto(api_url + path)
        controls, focused = _tab_through(signed_in)
        assert len(controls) >= 5, (name, controls)
        # in document order, each once: nothing skipped, no trap
        assert focused[: len(controls)] == controls, name
        if name == "grid":
            assert {"input q", "select sort", "select order", "button Search"} <= set(controls)
            assert sum(c.startswith("a /ui/items/") for c in controls) == 5
        if name == "item":
            assert {"input confidence", "input tag-name", "button Add"} <= set(controls)
            toggles = signed_in.locator("input[type=checkbox]").count()
            assert toggles >= 3  # per source and per label
            assert controls.count("input ") == toggles
        # focus is visible where it lands: the stylesheet's outline
        signed_in.locator("[data-control='1']").focus()
        outline = signed_in.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline == "solid", (name, outline)


def test_every_input_has_a_label(signed_in: Page, api_url: str, lake: dict[str, int]) -> None:
    for path in (
        "/ui/?q=collection%3Dbirds",
        f"/ui/items/{lake['birds_a.png']}",
    ):
        signed_in.goto(api_url + path)
        assert signed_in.locator("input:not([type=hidden]), select").count() >= 1, path
        assert unlabelled(signed_in) == [], path
    signed_in.context.clear_cookies()
    signed_in.goto(api_url + "/ui/signin")
    assert signed_in.locator("input:not([type=hidden])").count() >= 1
    assert unlabelled(signed_in) == []
