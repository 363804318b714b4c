"""The playground at /: served with its own policy and its assets, open without an API key;
and, in headless Chromium (Debian's chromium and chromedriver, never a downloaded browser)
against a real `gradserve serve`: the sin example plots cos as its derivative, a trace draws
the graph with its adjoints, and a problem is shown beside the source with its location
marked. Screenshots are kept in artifacts/."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.api.conftest import ROOT, serve_in_process

ARTIFACTS = ROOT / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ASSETS = ["main.js", "plot.js", "graph.js", "svg.js", "examples.js", "style.css"]


@pytest.mark.anyio
async def test_the_page_and_its_assets_are_served_with_the_pages_own_policy(asgi_client):
    page = await asgi_client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "unsafe" not in policy
    # nothing from another origin: the page links this origin's files, the scripts import each other
    assert set(re.findall(r'(?:src|href)="([^"]*)"', page.text)) == {
        "data:,", "/static/playground/style.css", "/static/playground/main.js", "/docs", "/redoc",
    }  # fmt: skip
    for asset in ASSETS:
        response = await asgi_client.get(f"/static/playground/{asset}")
        assert response.status_code == 200 and response.content, asset
        assert all(module.startswith("./") for module in re.findall(r'from "([^"]*)"', response.text)), asset


@pytest.mark.anyio
async def test_the_page_loads_without_an_api_key_and_the_api_still_needs_one():
    key = "k" * 32
    async with serve_in_process(api_keys=key) as client:
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/static/playground/main.js")).status_code == 200
        body = {"function": {"expression": "x"}, "inputs": {"x": 1.0}}
        assert (await client.post("/v1/trace", json=body)).status_code == 401
        assert (await client.post("/v1/trace", json=body, headers={"X-API-Key": key})).status_code == 200


# ---- in a real browser ----


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed and could not be: scripts/test.sh installs "
            "them with apt-get when it runs as root with Debian's packages reachable"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1440,1000", "--lang=en"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver, server_url: str) -> WebDriver:
    browser.get(f"{server_url}/")
    wait(browser, lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    return browser


def wait(driver: WebDriver, condition, seconds: float = 30):
    try:
        return WebDriverWait(driver, seconds).until(lambda _: condition())
    except TimeoutException:
        driver.save_screenshot(str(ARTIFACTS / "playground-timeout.png"))
        raise


def plotted(driver: WebDriver, series: str) -> tuple[np.ndarray, np.ndarray]:
    points = driver.find_elements(By.CSS_SELECTOR, f'g[data-series="{series}"] circle.point')
    xs = [float(point.get_attribute("data-x")) for point in points]
    return np.array(xs), np.array([float(point.get_attribute("data-y")) for point in points])


def test_the_sin_example_plots_cos_as_the_derivative(page):
    page.find_element(By.CSS_SELECTOR, '[data-example="sin"]').click()
    wait(page, lambda: len(page.find_elements(By.CSS_SELECTOR, "g[data-series=\"f''\"] circle.point")) == 201)
    x, f = plotted(page, "f")
    x_prime, f_prime = plotted(page, "f'")
    _, f_second = plotted(page, "f''")
    assert x.size == 201 and x[0] == pytest.approx(-6.2832) and x[-1] == pytest.approx(6.2832)
    np.testing.assert_array_equal(x_prime, x)
    np.testing.assert_array_equal(f, np.sin(x))
    np.testing.assert_allclose(f_prime, np.cos(x), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(f_second, -np.sin(x), rtol=1e-15, atol=1e-15)
    assert len(page.find_elements(By.CSS_SELECTOR, 'g[data-series="f\'"] polyline.curve')) == 1
    page.save_screenshot(str(ARTIFACTS / "playground-plot.png"))


def test_a_trace_draws_the_graph_with_values_and_adjoints(page):
    page.find_element(By.CSS_SELECTOR, '[data-example="csc321"]').click()
    wait(page, lambda: len(page.find_elements(By.CSS_SELECTOR, "#graph g.node")) == 4)
    nodes = {
        node.get_attribute("data-id"): node for node in page.find_elements(By.CSS_SELECTOR, "#graph g.node")
    }  # fmt: skip
    values = {i: json.loads(node.get_attribute("data-value")) for i, node in nodes.items()}
    adjoints = {i: json.loads(node.get_attribute("data-adjoint")) for i, node in nodes.items()}
    assert values == {"%0": 2, "%1": 3, "%2": 5, "%3": 10}
    assert adjoints == {"%0": 7, "%1": 2, "%2": 2, "%3": 1}  # d = a(a + b): dd/da = 2a + b, dd/dc = a
    edges = {(e.get_attribute("data-from"), e.get_attribute("data-to"))
             for e in page.find_elements(By.CSS_SELECTOR, "#graph path.edge")}  # fmt: skip
    assert edges == {("%0", "%2"), ("%1", "%2"), ("%0", "%3"), ("%2", "%3")}
    assert "output" in nodes["%3"].get_attribute("class")
    nodes["%2"].send_keys(Keys.ENTER)  # a node is selected from the keyboard: its place in the graph's JSON
    mark = page.find_element(By.ID, "location-mark")
    assert mark.text == '"id": "c"' and mark.get_attribute("data-location") == "node 'c'"
    assert page.find_element(By.ID, "dot").get_attribute("textContent").startswith("digraph trace {")
    page.save_screenshot(str(ARTIFACTS / "playground-graph.png"))


def set_function(driver: WebDriver, kind: str, source: str, inputs: str, operation: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'input[name="kind"][value="{kind}"]').click()
    field = driver.find_element(By.ID, "source")
    field.clear()
    if "\n" in source:  # typed, Enter would indent as an editor does: set the text as it is
        driver.execute_script("arguments[0].value = arguments[1]", field, source)
    else:
        field.send_keys(source)
    driver.find_element(By.ID, "inputs").clear()
    driver.find_element(By.ID, "inputs").send_keys(inputs)
    Select(driver.find_element(By.ID, "operation")).select_by_value(operation)


def test_a_problem_is_shown_beside_the_source_with_its_location_marked(page):
    set_function(page, "expression", "2 * dot(x, y)", '{"x": [1, 2]}', "grad")
    page.find_element(By.ID, "source").send_keys(Keys.CONTROL, Keys.ENTER)  # Run, from the keyboard
    wait(page, lambda: page.find_element(By.ID, "problem").is_displayed())
    assert page.find_element(By.ID, "problem-title").text == "Unknown name"
    assert "'y'" in page.find_element(By.ID, "problem-detail").text
    assert page.find_element(By.ID, "problem-where").text == "at offset 11"
    mark = page.find_element(By.ID, "location-mark")
    assert (mark.text, mark.get_attribute("data-start")) == ("y", "11")
    source = page.find_element(By.ID, "source")
    assert page.switch_to.active_element == source  # the source is focused with the fault selected, to be fixed
    assert page.execute_script("return [arguments[0].selectionStart, arguments[0].selectionEnd]", source) == [11, 12]

    program = "def f(x):\n    y = x * 2\n    return y + z\n"
    set_function(page, "program", program, '{"x": 1.5}', "grad")
    page.find_element(By.ID, "run").click()
    wait(page, lambda: page.find_element(By.ID, "problem-where").text == "at line 3, column 16")
    mark = page.find_element(By.ID, "location-mark")
    assert mark.text == "z" and int(mark.get_attribute("data-start")) == program.index("z")
    page.save_screenshot(str(ARTIFACTS / "playground-problem.png"))
