"""Screenshots of the built documentation, to look at after a change.

Every top-level page of the built site (``docs/_build/html/*.html`` and the
gallery's index) drawn by headless Chromium at a desktop width (1280 px) and
a phone width (390 px), one PNG per page and width::

    sudo apt-get install -y chromium       # Debian's package
    sphinx-build -W -b html docs docs/_build/html
    python docs/screenshots.py docs/_build/html screenshots/

It also lists every resource a page loads from outside the built site (a
``src`` or stylesheet ``href`` starting with ``http``, ``https`` or ``//``):
a page that needs one is broken offline. The exit status is 1 when one is
found. The PNGs are for looking at, not for committing.
"""

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

WIDTHS = (1280, 390)
SKIPPED = {"genindex.html", "search.html", "py-modindex.html"}
_EXTERNAL = re.compile(
    r"<(?:script|img|iframe)[^>]*\ssrc=[\"']((?:https?:)?//[^\"']+)"
    r"|<link[^>]*\shref=[\"']((?:https?:)?//[^\"']+)[\"'][^>]*rel=[\"']?stylesheet"
    r"|<link[^>]*rel=[\"']?stylesheet[\"']?[^>]*\shref=[\"']((?:https?:)?//[^\"']+)",
    re.IGNORECASE)


def top_level_pages(site):
    """The site's top-level pages: its own ``*.html`` and the gallery's index."""
    pages = sorted(page for page in site.glob("*.html") if page.name not in SKIPPED)
    gallery = site / "auto_examples" / "index.html"
    return pages + ([gallery] if gallery.is_file() else [])


def external_resources(page):
    """The URLs of what ``page`` loads from outside the built site."""
    text = page.read_text(encoding="utf-8", errors="replace")
    return sorted({next(url for url in match.groups() if url)
                   for match in _EXTERNAL.finditer(text)})


def screenshot(browser, page, png, width, height):
    """One screenshot of ``page``, ``width`` px wide and ``height`` px tall, into ``png``."""
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--force-device-scale-factor=1", f"--window-size={width},{height}",
         f"--screenshot={png}", page.resolve().as_uri()],
        check=True, capture_output=True, timeout=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built HTML (docs/_build/html)")
    parser.add_argument("output", type=Path, help="folder for the PNGs (created)")
    parser.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS),
                        help="page widths in px (default: 1280 390; 1024 and 1440 check "
                             "the header)")
    parser.add_argument("--height", type=int, default=2400,
                        help="pixels drawn from the top of each page (default: 2400)")
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium",
                        help="the Chromium executable (default: chromium on the PATH)")
    args = parser.parse_args(argv)
    pages = top_level_pages(args.site)
    if not pages:
        parser.error(f"no HTML page in {args.site}: build the documentation first")
    args.output.mkdir(parents=True, exist_ok=True)
    found_external = False
    for page in pages:
        name = page.relative_to(args.site).as_posix().removesuffix(".html").replace("/", "-")
        for width in args.widths:
            png = args.output / f"{name}-{width}.png"
            screenshot(args.browser, page, png, width, args.height)
            print(png)
        for url in external_resources(page):
            found_external = True
            print(f"{page.relative_to(args.site)}: loads {url} from outside the site")
    # Every other page is checked for outside resources too (not drawn).
    for page in sorted(set(args.site.rglob("*.html")) - set(pages)):
        for url in external_resources(page):
            found_external = True
            print(f"{page.relative_to(args.site)}: loads {url} from outside the site")
    return 1 if found_external else 0


if __name__ == "__main__":
    sys.exit(main())
