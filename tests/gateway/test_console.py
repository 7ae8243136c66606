"""The console in a real headless browser (Debian's chromium through its chromedriver, driven by selenium):
submit the bundled photo pair, watch the candidates stream in, open the winner, move the slider. The test
writes screenshots (out/console-e2e/) and checks that what must be on them is on the page when they are
taken; pixels are not compared."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.gateway.conftest import API_KEY, GatewayStack

REPO_ROOT = Path(__file__).resolve().parents[2]
SHOTS = REPO_ROOT / "out" / "console-e2e"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1300"):
        options.add_argument(argument)
    # An explicit driver: selenium's own driver manager would try to download one.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, timeout_s: float = 300) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, timeout_s, poll_frequency=0.2)


def js(driver: WebDriver, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def screenshot(driver: WebDriver, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    assert driver.save_screenshot(str(path))
    assert path.read_bytes().startswith(b"\x89PNG")
    return path


def white_mask_pixels(driver: WebDriver) -> int:
    return int(
        js(
            driver,
            "const c = state.maskCanvas; const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] >= 128) n++; return n;",
        )
    )


def test_submit_the_bundled_pair_watch_it_stream_open_the_winner_and_slide(
    gateway_stack: GatewayStack, browser: WebDriver
) -> None:
    driver = browser
    driver.get(f"{gateway_stack.base_url}/console/")
    key = driver.find_element(By.ID, "api-key")
    key.send_keys(API_KEY)
    key.send_keys(Keys.TAB)  # "change": the key is kept for the session

    driver.find_element(By.ID, "use-sample").click()
    wait(driver, 60).until(lambda d: d.find_element(By.ID, "use-sample").get_attribute("data-loaded") == "true")
    # Adjust the mask: a stroke on the init image adds to it.
    before = white_mask_pixels(driver)
    canvas = driver.find_element(By.ID, "mask-canvas")
    ActionChains(driver).move_to_element_with_offset(canvas, -60, -60).click_and_hold().move_by_offset(
        30, 0
    ).release().perform()
    assert white_mask_pixels(driver) > before

    driver.find_element(By.ID, "request-id").send_keys("console-e2e-1")
    driver.find_element(By.ID, "submit").click()

    # Candidates appear as they are scored, grouped by stage; the operation ends SUCCEEDED.
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#stage-global .candidate.scored"))
    wait(driver).until(lambda d: d.find_element(By.ID, "state").text == "SUCCEEDED")
    assert not driver.find_element(By.ID, "error").is_displayed(), driver.find_element(By.ID, "error").text
    scored = driver.find_elements(By.CSS_SELECTOR, ".candidate.scored")
    assert len(scored) >= 3
    # Every score reached the page from the live stream (progress events), not only from the final result.
    assert all(card.get_attribute("data-live") == "true" for card in scored)
    local = driver.find_elements(By.CSS_SELECTOR, "#stage-local .family")
    assert local, "the local stage shows parent -> children"
    for family in local:
        parent = family.get_attribute("data-parent")
        children = [c.get_attribute("data-id") for c in family.find_elements(By.CSS_SELECTOR, ".candidate")]
        assert children and all(str(child).startswith(f"{parent}.") for child in children)
    # Stand-in runs are marked.
    assert driver.find_element(By.ID, "standin-banner").is_displayed()
    # The chart: one bar segment per weighted signal per scored candidate.
    segments = driver.find_elements(By.CSS_SELECTOR, "#chart-svg rect.term")
    assert len(segments) == 3 * len(scored)
    run_shot = screenshot(driver, "run.png")

    # Open the winner.
    best = driver.find_element(By.CSS_SELECTOR, ".candidate.best")
    best_id = best.get_attribute("data-id")
    best.click()
    wait(driver, 60).until(lambda d: js(d, "return document.getElementById('after-img').naturalWidth") > 0)
    assert driver.find_element(By.ID, "detail-id").text.startswith(f"{best_id} (best)")
    assert driver.find_element(By.ID, "detail-standin").is_displayed()
    assert js(driver, "return document.getElementById('before-img').dataset.known") == "true"
    # The zoomed face crop and the refined mask overlay are drawn (not blank).
    for canvas_id in ("face-crop", "refined-mask"):
        painted = js(
            driver,
            "const c = document.getElementById(arguments[0]); const d = c.getContext('2d')"
            ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
            "for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n / (d.length / 4);",
            canvas_id,
        )
        assert painted > 0.9, canvas_id

    # Move the slider: the init image's share of the frame (left of the slider) follows it.
    slider = driver.find_element(By.ID, "slider")
    assert driver.find_element(By.ID, "before-clip").value_of_css_property("width") == "160px"
    slider.click()
    for _ in range(20):
        slider.send_keys(Keys.ARROW_LEFT)
    assert slider.get_attribute("value") == "30"
    assert driver.find_element(By.ID, "before-clip").get_attribute("style") == "width: 30%;"
    assert str(driver.find_element(By.ID, "ledger").get_attribute("textContent")).startswith("{")
    winner_shot = screenshot(driver, "winner.png")

    # The list of past operations has this one, marked as a stand-in run.
    driver.find_element(By.ID, "refresh").click()
    # Read in one script: the list is rebuilt on every refresh, so element handles may go stale.
    wait(driver, 60).until(
        lambda d: js(
            d,
            "return [...document.querySelectorAll('#operations .operation-row')].some("
            "r => r.textContent.includes('console-e2e-1') && r.querySelector('.standin-badge'))",
        )
    )
    list_shot = screenshot(driver, "operations.png")
    assert run_shot.stat().st_size > 10_000 and winner_shot.stat().st_size > 10_000 and list_shot.is_file()


def test_a_missing_then_a_wrong_key_show_the_services_error(gateway_stack: GatewayStack, browser: WebDriver) -> None:
    browser.get(f"{gateway_stack.base_url}/console/")
    js(browser, "sessionStorage.clear()")
    browser.refresh()
    # With no key, the page's first call (the list of operations) is refused.
    error = browser.find_element(By.ID, "error")
    wait(browser, 30).until(lambda d: error.is_displayed() and "API_KEY_MISSING" in error.text)
    assert "401 UNAUTHENTICATED" in error.text
    key = browser.find_element(By.ID, "api-key")
    key.clear()
    key.send_keys("not-a-key")
    key.send_keys(Keys.TAB)
    wait(browser, 30).until(lambda d: "API_KEY_INVALID" in error.text)
    assert "401 UNAUTHENTICATED" in error.text
    screenshot(browser, "unauthenticated.png")
