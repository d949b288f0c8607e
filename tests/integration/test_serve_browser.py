"""The page at / in a real headless Chromium (Debian's, driven by Selenium): type the API key, upload
an image, see it drawn with its prediction and the numbers beside it; a bad file shows its error.
Needs `apt-get install -y chromium chromium-driver`; skipped, saying so, without them."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from zoo_core.serve import BackgroundServer, load_predictor
from zoo_core.serve.client import predict

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.zoo_plugins("classify", "localize"),
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="no chromium/chromedriver: apt-get install -y chromium chromium-driver"),
]
KEY = "page-key"


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in zoo-core's test extra")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download a browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module", params=["classify", "localize"])
def server(request, runs):
    with BackgroundServer(load_predictor(str(runs[request.param]), device="cpu"), request.param, api_key=KEY) as s:
        yield s


def wait_for_card(browser, name: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def finished(driver):
        for card in driver.find_elements(By.CSS_SELECTOR, "article.card"):
            if card.find_element(By.TAG_NAME, "h2").text == name and card.get_attribute("data-state") in ("done", "error"):
                return card
        return False

    return WebDriverWait(browser, 60).until(finished)


def test_the_page_shows_the_drawn_prediction_and_its_numbers(browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    photo = tmp_path / "photo.png"
    Image.new("RGB", (80, 60), (200, 40, 40)).save(photo)
    expected = predict(server.url, [(photo.name, photo.read_bytes())], headers={"X-API-Key": KEY}).json()[0]

    browser.get(server.url + "/")
    browser.find_element(By.ID, "api-key").send_keys(KEY, Keys.TAB)  # the server asks for one
    browser.find_element(By.ID, "files").send_keys(str(photo))
    card = wait_for_card(browser, photo.name)
    assert card.get_attribute("data-state") == "done", card.text
    img = card.find_element(By.CSS_SELECTOR, "img.drawn")
    assert browser.execute_script("return arguments[0].naturalWidth", img) == 80  # the original, drawn on
    numbers = card.find_element(By.CLASS_NAME, "numbers").text
    shown = str(expected["label"]) if "label" in expected else str(expected["box"][0])
    assert shown in numbers, numbers
    assert server.app.title.split(": ")[1] in browser.find_element(By.ID, "model-name").text

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    browser.find_element(By.ID, "files").send_keys(str(bad))
    card = wait_for_card(browser, bad.name)
    assert card.get_attribute("data-state") == "error"
    assert "not an image" in card.find_element(By.CLASS_NAME, "error").text
