// The browser test of Wharf's web page: Debian's chromium driven by playwright-core, axe-core
// on every page. Run by the interop suite's flow 10 (tests/interop/main.rs), which starts the
// registry with users and rules, pushes the article's artifacts and a hostile one, then runs:
//
//   node tests/web/browser.mjs   (WHARF_URL, WHARF_SCREENSHOTS, WHARF_CHROMIUM in the environment)
//
// Exits non-zero with what failed. Screenshots of each page go to WHARF_SCREENSHOTS.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const base = process.env.WHARF_URL;
const shots = process.env.WHARF_SCREENSHOTS;
fs.mkdirSync(shots, { recursive: true });

const failures = [];
function expect(condition, what) {
  if (!condition) failures.push(what);
}

const browser = await chromium.launch({
  executablePath: process.env.WHARF_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
// A hostile manifest must not run anything: no dialog, no global it would set.
let dialogs = 0;
page.on("dialog", async (d) => { dialogs += 1; await d.dismiss(); });
const consoleErrors = [];
page.on("pageerror", (e) => consoleErrors.push(String(e)));

/** Opens `url`, checks it is under 100 KB and answers `status`, runs axe, takes a screenshot. */
async function visit(url, name, status = 200) {
  const response = await page.goto(base + url);
  const body = await response.body();
  expect(response.status() === status, `${url}: status ${response.status()}, expected ${status}`);
  expect(body.length < 100 * 1024, `${url}: ${body.length} bytes, over 100 KB`);
  const csp = response.headers()["content-security-policy"] || "";
  expect(csp.includes("script-src 'self'") && !csp.includes("unsafe-inline"), `${url}: CSP ${csp}`);
  await axe(url);
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  return page;
}

async function axe(url) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  for (const v of result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")) {
    failures.push(`${url}: accessibility (${v.impact}) ${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  }
}

async function text() {
  return page.locator("main").innerText();
}

async function login(user, password) {
  await page.goto(`${base}/login`);
  await page.getByLabel("User name").fill(user);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForLoadState();
  expect((await page.locator("header").innerText()).includes(`Signed in as ${user}`), `logged in as ${user}`);
}

async function logout() {
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForLoadState();
  expect(await page.getByRole("link", { name: "Log in" }).isVisible(), "logged out: the Log in link is back");
}

// 1. Anonymous: the repositories anonymous may pull, nothing else.
await visit("/", "repositories");
let main = await text();
expect(main.includes("public/helloworld"), "the repositories page lists public/helloworld");
expect(!main.includes("team/"), "anonymous visitors do not see team/ repositories");

// 2. The wasm-to-oci artifact: its overview and the module's exports.
await visit("/repositories/public/helloworld/-/artifacts/v1", "wasm-to-oci");
main = await text();
expect(main.includes("wasm-to-oci") && main.includes("F1"), "wasm-to-oci overview");
expect(main.includes("WASM"), "Harbor's view: WASM");
expect(main.includes("_start (func)"), "the module's exports");
expect(main.includes("wasi_snapshot_preview1::fd_write"), "the module's imports");

// 3. A hostile manifest shows its strings as text, and nothing runs.
await visit("/repositories/public/hostile/-/artifacts/v1", "hostile");
main = await text();
expect(main.includes("<script>window.__pwned=1</script>"), "the <script> annotation is shown as text");
expect(main.includes('"><img src=x onerror=window.__pwned=1>'), "the <img onerror> annotation is shown as text");
expect(main.includes("javascript:window.__pwned=1"), "the javascript: URL is shown as text");
expect(await page.locator("main a[href^='javascript:']").count() === 0, "no javascript: link");
expect(await page.evaluate(() => window.__pwned === undefined), "no injected script ran");

// 4. bob (a reader of team/**) logs in: the buildah image and the component.
await login("bob", "bob-pw");
await visit("/", "repositories-bob");
expect((await text()).includes("team/hello"), "bob sees team/hello");
await visit("/repositories/team/hello/-/artifacts/v1", "buildah-image");
main = await text();
expect(main.includes("run.oci.handler") && main.includes("compat-annotated"), "the buildah image's annotation and layout");
expect(main.includes("COPY") && main.includes("helloworld.wasm"), "the build history lines");
expect(!main.includes("Delete the tag"), "bob is offered no delete");
await visit("/repositories/team/component/-/artifacts/1.0.0", "component");
main = await text();
expect(main.includes("WIT world") && main.includes("world root") && main.includes("wasi:cli/environment@0.2.0"), "the component's WIT world");
await page.emulateMedia({ colorScheme: "dark" });
await page.screenshot({ path: path.join(shots, "component-dark.png"), fullPage: true });
await page.emulateMedia({ colorScheme: "light" });

// 5. bob may not delete: the confirmation is refused, and so is a forged POST with his token.
await visit("/repositories/team/hello/-/delete?target=v1", "delete-refused", 403);
const csrf = await page.locator("input[name=csrf]").first().inputValue();
const forged = await page.request.post(`${base}/repositories/team/hello/-/delete`, {
  form: { csrf, target: "v1" },
  maxRedirects: 0,
});
expect(forged.status() === 403, `bob's delete POST answered ${forged.status()}, expected 403`);
const noToken = await page.request.post(`${base}/repositories/team/hello/-/delete`, {
  form: { target: "v1" },
  maxRedirects: 0,
});
expect(noToken.status() === 403, `a delete without the form's token answered ${noToken.status()}, expected 403`);
await logout();

// 6. alice may: she deletes the tag through the page.
await login("alice", "alice-pw");
await visit("/repositories/team/hello/-/artifacts/v1", "buildah-image-alice");
await page.getByRole("link", { name: "Delete the tag v1" }).click();
await page.waitForLoadState();
await axe("delete confirmation");
await page.screenshot({ path: path.join(shots, "delete-confirm.png"), fullPage: true });
await page.getByRole("button", { name: /Delete the tag/ }).click();
await page.waitForLoadState();
expect(page.url().endsWith("/repositories/team/hello"), `after the delete: ${page.url()}`);
expect(!(await page.locator("#artifacts").innerText()).includes("v1"), "the tag v1 is gone from the listing");
await logout();

// 7. Wasm packages (admin may read pkgs/): the WIT package with its WIT text, the component's
// dependency as a link to the package page, which lists the version and what uses it.
await login("admin", "admin-pw");
await visit("/repositories/pkgs/acme/greeter/-/artifacts/0.1.0", "wit-package");
main = await text();
expect(main.includes("The WIT package"), "a WIT package is shown as one");
expect(main.includes("package acme:greeter@0.1.0;") && main.includes("greet: func(name: string) -> string;"), "its WIT text");
await visit("/repositories/pkgs/acme/app/-/artifacts/1.0.0", "package-component");
main = await text();
expect(main.includes("Packages it uses"), "the component lists the packages it uses");
await page.getByRole("link", { name: "acme:greeter@0.1.0" }).click();
await page.waitForLoadState();
expect(page.url().endsWith("/packages/acme:greeter"), `the dependency links to the package page: ${page.url()}`);
await axe("package page");
await page.screenshot({ path: path.join(shots, "package.png"), fullPage: true });
main = await text();
expect(main.includes("Package acme:greeter") && main.includes("0.1.0") && main.includes("WIT package"), "the package's versions");
expect(main.includes("acme:app"), "the package page says what uses it");

// 8. The admin makes a robot through the page (its secret shown once, in a form field),
// then disables it; the tokens page is one click away.
await visit("/robots", "robots");
await page.getByLabel("Name").fill("web-ci");
await page.getByLabel("Repositories").fill("team/hello");
await page.getByLabel("push").check();
await page.getByRole("button", { name: "Make the robot" }).click();
await page.waitForLoadState();
await axe("robot made");
await page.screenshot({ path: path.join(shots, "robot-made.png"), fullPage: true });
const secret = await page.getByLabel("Secret").inputValue();
expect(/^wharf_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/.test(secret), `the robot's secret: ${secret}`);
main = await text();
expect(main.includes("robot$web-ci") && main.includes("pull, push on team/hello"), "the robot is listed with its grants");
await page.getByRole("button", { name: "Disable" }).click();
await page.waitForLoadState();
expect((await page.locator("#credentials").innerText()).includes("disabled"), "the robot shows disabled");
await page.getByRole("link", { name: "Access tokens" }).click();
await page.waitForLoadState();
await axe("tokens page");
expect((await text()).includes("Your access tokens"), `the tokens page: ${page.url()}`);
await logout();

expect(dialogs === 0, `${dialogs} dialog(s) opened`);
expect(consoleErrors.length === 0, `page errors: ${consoleErrors.join("; ")}`);
await browser.close();
if (failures.length > 0) {
  console.error(failures.map((f) => `FAILED: ${f}`).join("\n"));
  process.exit(1);
}
console.log(`web page checks passed; screenshots in ${shots}`);
