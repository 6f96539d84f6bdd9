#!/usr/bin/env python3
"""Kiln's web UI in a real browser: Debian's Chromium, headless, driven by Playwright.

Called by the region's integration tests (ui_browser.rs: an in-process region; e2e_ui.rs: the lab's
all-in-one with a real VM). Every check is on what the page really shows; screenshots of each page
go to --shots. Exits non-zero with the reason on the first failure.

  browser.py fast --url URL --token ADMIN_TOKEN --shots DIR
  browser.py lab  --url URL --machine SYSTEM_ID --shots DIR
"""
import argparse
import json
import os
import re
import sys
import time

from playwright.sync_api import expect, sync_playwright

CHROMIUM = os.environ.get("KILN_CHROMIUM", "/usr/bin/chromium")
# As root Chromium needs --no-sandbox; the rest keep it off this machine's closed network.
ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


class Run:
    def __init__(self, pw, args):
        self.args = args
        self.url = args.url.rstrip("/")
        self.shots = args.shots
        os.makedirs(self.shots, exist_ok=True)
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        self.errors = []
        self.api = None
        if getattr(args, "token", None):
            self.api = pw.request.new_context(base_url=self.url,
                                              extra_http_headers={"Authorization": "Bearer " + args.token})

    def page(self, viewport=DESKTOP):
        ctx = self.browser.new_context(viewport=viewport)
        page = ctx.new_page()
        page.set_default_timeout(15000)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        return page

    def shot(self, page, name):
        page.screenshot(path=os.path.join(self.shots, name + ".png"), full_page=True)

    def call(self, method, path, body=None):
        r = self.api.fetch(path, method=method, data=json.dumps(body) if body is not None else None,
                           headers={"Content-Type": "application/json"} if body is not None else {})
        if not r.ok:
            fail(f"{method} {path}: {r.status} {r.text()}")
        return r.json() if r.text() else None

    def login(self, page, user, password):
        page.goto(self.url + "/")
        expect(page).to_have_url(re.compile(r"/login\?next="))
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(r"/machines$"))
        expect(page.locator("#live-state")).to_have_text("live")

    def mark(self, page):
        """A mark on the window: still there later means the page never reloaded."""
        page.evaluate("window.__kilnNoReload = 'yes'")

    def unreloaded(self, page, what):
        if page.evaluate("window.__kilnNoReload") != "yes":
            fail(f"the page reloaded while waiting for {what}")

    def check_js(self):
        if self.errors:
            fail("JavaScript errors: " + "; ".join(self.errors))


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def row_status(page, hostname):
    return page.locator("tr", has=page.get_by_role("link", name=hostname, exact=True)).locator(".col-status")


def fast(r):
    a = r.args
    page = r.page()
    # Login: a wrong password is said on the form; the right one lands on the list.
    page.goto(r.url + "/machines")
    r.shot(page, "login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
    expect(page.get_by_label("Username")).to_have_value("admin")
    page.get_by_label("Password").fill("admin-password")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/machines$"))
    expect(page.locator("#live-state")).to_have_text("live")
    # The header: user, role.
    expect(page.locator("header .user")).to_have_text("admin")
    expect(page.locator("header .role")).to_have_text("admin")
    # Keyboard: the first Tab reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    if page.evaluate("document.activeElement.className") != "skip":
        fail("the first Tab does not reach the skip link")
    r.shot(page, "machines")

    # Filter: MAAS-style terms, shareable in the URL.
    page.get_by_label("Search machines").fill("hostname:node-*")
    page.get_by_label("Search machines").press("Enter")
    expect(page).to_have_url(re.compile(r"q=hostname%3Anode-(\*|%2A)"))
    expect(page.locator("table.machines tbody tr")).to_have_count(2)
    expect(page.get_by_role("link", name="node-a", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="other", exact=True)).to_have_count(0)
    r.shot(page, "machines-filtered")

    # Live list: a change made elsewhere (the API) shows without a reload, within a second or so.
    r.mark(page)
    ids = {m["hostname"]: m["system_id"] for m in r.call("GET", "/api/v1/machines")["items"]}
    t0 = time.time()
    r.call("POST", f"/api/v1/machines/{ids['node-b']}/mark-broken", {"comment": "browser test"})
    expect(row_status(page, "node-b")).to_have_text("Broken", timeout=5000)
    took = time.time() - t0
    r.unreloaded(page, "the list to update")
    print(f"list updated {took:.2f} s after the API call")
    if took > 2.5:
        fail(f"the list took {took:.2f} s to show the change")

    # A lost connection: the test harness stops the region, marks node-b fixed in the database
    # while it is down, and starts it again on the same port. The page says it is reconnecting,
    # then (a new "hello") refetches and shows what it missed.
    restart = os.path.join(r.shots, "restart-region")
    open(restart, "w").close()
    expect(page.locator("#live-state")).to_have_text("reconnecting…", timeout=20000)
    for _ in range(300):
        if not os.path.exists(restart):
            break
        time.sleep(0.1)
    else:
        fail("the harness did not restart the region")
    expect(row_status(page, "node-b")).to_have_text("Broken")
    expect(page.locator("#live-state")).to_have_text("live", timeout=20000)
    expect(row_status(page, "node-b")).not_to_have_text("Broken", timeout=5000)
    r.unreloaded(page, "the list to catch up after a reconnect")

    # Bulk: tag the two machines; a result per machine.
    page.on("dialog", lambda d: d.accept())
    page.get_by_label("Select node-a").check()
    page.get_by_label("Select node-b").check()
    expect(page.locator("#selected-count")).to_have_text("2 selected")
    page.get_by_label("Action").select_option("tag")
    page.get_by_label("Tag", exact=True).fill("rack-b")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.results tbody tr")).to_have_count(2)
    expect(page.locator("table.results")).to_contain_text("tagged rack-b")
    expect(page.locator("main").get_by_role("status")).to_contain_text("2 done, 0 refused")
    r.shot(page, "bulk-results")
    page.goto(r.url + "/machines?q=tag%3Arack-b")
    expect(page.locator("table.machines tbody tr")).to_have_count(2)

    # A machine: power settings through the driver's schema, the secret write-only.
    page.get_by_role("link", name="node-a", exact=True).click()
    expect(page.locator("#m-title")).to_contain_text("node-a")
    page.get_by_label("Driver").select_option("ipmi")
    expect(page.locator('fieldset[data-for="manual"]')).to_be_hidden()
    page.locator("#p-ipmi-power_address").fill("10.9.9.9")
    page.locator("#p-ipmi-power_user").fill("root")
    page.locator("#p-ipmi-power_pass").fill("Br0wser-S3cret")
    page.get_by_role("button", name="Save power settings").click()
    expect(page.locator(".notice")).to_have_text("Power settings saved.")
    expect(page.locator("#p-ipmi-power_pass")).to_have_value("")
    expect(page.locator("#p-ipmi-power_pass")).to_have_attribute("placeholder", "stored; leave blank to keep")
    if "Br0wser-S3cret" in page.content():
        fail("the BMC password is echoed in the page")
    m = r.call("GET", f"/api/v1/machines/{ids['node-a']}")
    if "Br0wser-S3cret" in json.dumps(m) or m["power_parameters"].get("power_address") != "10.9.9.9":
        fail(f"power settings not saved as they should be: {m['power_parameters']}")
    # A wrong value: the error in words beside the field, nothing else changed.
    page.locator("#p-ipmi-power_port").fill("six-two-three")
    page.get_by_role("button", name="Save power settings").click()
    expect(page.locator("#p-ipmi-power_port")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#p-ipmi-power_port + .error, #p-ipmi-power_port ~ .error")).to_be_visible()
    r.shot(page, "machine-power-error")

    # Live detail: commission it from its page (manual power), then the status moves by itself.
    page.goto(r.url + f"/machines/{ids['other']}")
    page.get_by_role("button", name="Commission").click()
    expect(page.locator("#m-status")).to_have_text("Commissioning")
    r.mark(page)
    t0 = time.time()
    r.call("POST", f"/api/v1/machines/{ids['other']}/abort", {"comment": "browser test"})
    expect(page.locator("#m-status")).not_to_have_text("Commissioning", timeout=5000)
    r.unreloaded(page, "the status to change")
    expect(page.locator("#m-timeline")).to_contain_text("browser test")
    print(f"detail updated {time.time() - t0:.2f} s after the API call")
    r.shot(page, "machine")

    # Upload an image file: the browser computes its sha256 (the region checks it), with progress.
    page.goto(r.url + "/images")
    page.get_by_label("Release", exact=True).fill("uitest")
    page.get_by_label("Kind", exact=True).select_option("ephemeral")
    data = bytes((i * 7 + 3) % 251 for i in range(3 * 1024 * 1024 + 17))
    page.get_by_label("File", exact=True).set_input_files({"name": "vmlinuz", "mimeType": "application/octet-stream", "buffer": data})
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#u-status")).to_contain_text("uploaded and verified", timeout=30000)
    expect(page.locator("main table")).to_contain_text("debian/uitest", timeout=10000)
    expect(page.locator("main table")).to_contain_text("3.0 MiB")
    import hashlib
    want = hashlib.sha256(data).hexdigest()
    got = [f["sha256"] for res in r.call("GET", "/api/v1/boot-resources") if res["release"] == "uitest" for f in res["files"]]
    if got != [want]:
        fail(f"the uploaded file's sha256 is {got}, not {want}")

    # DNS: a record through the form; a CNAME where a machine is named is refused beside the field.
    page.goto(r.url + "/dns")
    expect(page.locator("#dns-domains")).to_contain_text("kiln")
    page.get_by_label("Name", exact=True).fill("www.kiln")
    page.get_by_label("Type", exact=True).select_option("CNAME")
    page.get_by_label("Data", exact=True).fill("node-a.kiln")
    page.get_by_role("button", name="Add record").click()
    expect(page.locator(".notice")).to_have_text("CNAME record www.kiln added.")
    expect(page.locator("#dns-records")).to_contain_text("node-a.kiln")
    page.get_by_label("Name", exact=True).fill("node-a.kiln")
    page.get_by_label("Type", exact=True).select_option("CNAME")
    page.get_by_label("Data", exact=True).fill("www.kiln")
    page.get_by_role("button", name="Add record").click()
    expect(page.locator("#r-name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#r-name + .error")).to_contain_text("CNAME")
    expect(page.locator("#r-data")).to_have_value("www.kiln")
    r.shot(page, "dns-error")
    # A domain through the DNS page, then node-a named in it from its own page.
    page.get_by_label("Domain", exact=True).fill("lab")
    page.get_by_role("button", name="Add domain").click()
    expect(page.locator(".notice")).to_have_text("Domain lab added.")
    page.goto(r.url + f"/machines/{ids['node-a']}")
    page.get_by_label("DNS domain").select_option("lab")
    page.get_by_role("button", name="Save name").click()
    expect(page.locator(".notice")).to_have_text("Name saved: node-a.lab.")
    expect(page.locator("#m-summary")).to_contain_text("node-a.lab")
    if r.call("GET", f"/api/v1/machines/{ids['node-a']}").get("domain") != "lab":
        fail("the machine's domain was not saved")

    # Every other page renders; screenshots of each.
    for path, name in [("/images", "images"), ("/subnets", "subnets"), ("/racks", "racks"),
                       ("/events", "events"), ("/dns", "dns"), ("/users", "users"), ("/keys", "keys"), ("/settings", "settings")]:
        page.goto(r.url + path)
        expect(page.locator("main h1")).to_be_visible()
        r.shot(page, name)
    # A user for the next part, through the Users page.
    page.goto(r.url + "/users")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill("bob-password-1")
    page.get_by_role("button", name="Add user").click()
    expect(page.locator(".notice")).to_have_text("User bob added.")
    page.get_by_label("Username").fill("x")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Add user").click()
    expect(page.locator("main .error").first).to_be_visible()

    # On a phone: readable, no horizontal scroll of the page itself.
    phone = r.page(PHONE)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(r.url + "/machines")
    expect(phone.get_by_role("link", name="node-a", exact=True)).to_be_visible()
    if phone.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1"):
        fail("the machine list scrolls sideways on a phone")
    r.shot(phone, "machines-phone")

    # Log out: back to the login page; the list needs a login again.
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(r.url + "/machines")
    expect(page).to_have_url(re.compile(r"/login\?next="))

    # A user who is not admin does not see another user's machine.
    bob = r.page()
    r.login(bob, "bob", "bob-password-1")
    expect(bob.locator("header .role")).to_have_text("user")
    expect(bob.get_by_role("link", name="admins-box", exact=True)).to_have_count(0)
    bob.goto(r.url + f"/machines/{ids['admins-box']}")
    expect(bob.locator("main h1")).to_have_text("Not found")
    bob.goto(r.url + "/machines")
    expect(bob.get_by_role("link", name="node-a", exact=True)).to_be_visible()
    r.shot(bob, "machines-as-user")
    r.check_js()


def lab(r):
    """The lab: a real VM commissions while its page is open; the page follows without a reload."""
    a = r.args
    page = r.page()
    r.login(page, "admin", a.password)
    page.goto(r.url + f"/machines/{a.machine}")
    expect(page.locator("#m-status")).to_have_text(re.compile("New|Ready"))
    page.get_by_role("button", name="Commission").click()
    expect(page.locator("#m-status")).to_have_text("Commissioning")
    expect(page.locator("#deploy-title")).to_have_count(0)
    r.mark(page)
    t0 = time.time()
    # Under TCG a commissioning takes minutes; every step shows as it happens.
    expect(page.locator("#m-timeline")).to_contain_text("booted", timeout=a.timeout * 1000)
    r.shot(page, "lab-machine-commissioning")
    expect(page.locator("#m-status")).to_have_text("Ready", timeout=a.timeout * 1000)
    r.unreloaded(page, "Ready")
    print(f"Ready {time.time() - t0:.0f} s after Commission, without a reload")
    expect(page.locator("#deploy-title")).to_be_visible(timeout=10000)
    r.unreloaded(page, "the deploy form")
    expect(page.locator("#m-hardware")).to_contain_text("Disks")
    expect(page.locator("#m-scripts details").first).to_be_visible()
    r.shot(page, "lab-machine")
    page.goto(r.url + "/machines")
    expect(row_status(page, a.hostname)).to_have_text("Ready")
    r.shot(page, "lab-machines")
    # The rack has every file of the images: the Images page says so per rack.
    page.goto(r.url + "/images")
    expect(page.locator(".sync").first).to_have_text("synced")
    r.shot(page, "lab-images")

    # Deploy it from its page; the installer's steps stream in as they happen, then Deployed.
    page.goto(r.url + f"/machines/{a.machine}")
    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.locator("#m-status")).to_have_text("Deploying")
    r.mark(page)
    t0 = time.time()
    expect(page.locator("#m-install ol.log")).to_contain_text("installer: up", timeout=a.timeout * 1000)
    print(f"installer's first step on the page {time.time() - t0:.0f} s after Deploy")
    expect(page.locator("#m-install ol.log")).to_contain_text("fetched and verified", timeout=a.timeout * 1000)
    r.shot(page, "lab-machine-deploying")
    expect(page.locator("#m-status")).to_have_text("Deployed", timeout=a.timeout * 1000)
    r.unreloaded(page, "Deployed")
    print(f"Deployed {time.time() - t0:.0f} s after Deploy, without a reload")
    r.shot(page, "lab-machine-deployed")
    r.check_js()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["fast", "lab"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--shots", required=True)
    ap.add_argument("--token")
    ap.add_argument("--password", default="admin-password")
    ap.add_argument("--machine")
    ap.add_argument("--hostname")
    ap.add_argument("--timeout", type=int, default=900)
    args = ap.parse_args()
    with sync_playwright() as pw:
        r = Run(pw, args)
        try:
            {"fast": fast, "lab": lab}[args.scenario](r)
        except AssertionError as e:
            fail(str(e))
        finally:
            r.browser.close()
    print("OK")


if __name__ == "__main__":
    main()
