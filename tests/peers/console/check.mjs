// Drives sluice's web console in Debian's Chromium (playwright-core, no
// downloaded browser) and prints, as one JSON object, what each view
// showed and, by view, every console error, page error and failed
// request:
//
//   node check.mjs '{"base": URL, "admin": TOKEN, "crm": TOKEN,
//                    "campaign": ID, "running": ID, "cancelled": ID,
//                    "search": TEXT}'
//
// tests/tests/console.rs compares it with what the API says. With
// CONSOLE_SCREENSHOTS=DIR set, each view is also saved as DIR/VIEW.png.
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { chromium } from "playwright-core";

const { base, admin, crm, campaign, running, cancelled, search } = JSON.parse(process.argv[2]);

/** `chromium` as PATH finds it (Debian's package). */
function onPath(program) {
  for (const dir of (process.env.PATH || "").split(delimiter)) {
    try {
      accessSync(join(dir, program), constants.X_OK);
      return join(dir, program);
    } catch { /* not here */ }
  }
  throw new Error(`no ${program} on PATH`);
}

const browser = await chromium.launch({
  executablePath: onPath("chromium"),
  args: ["--no-sandbox", "--disable-gpu"],
});
const out = { problems: {} };
let phase = "load";
const note = what => (out.problems[phase] ||= []).push(what);
/** Per page: requests not yet answered, answers refused (4xx/5xx), and the
 * browser's console reports of those refusals. */
const traffic = new Map();
const watch = page => {
  const seen = { open: 0, refused: 0, reported: 0 };
  traffic.set(page, seen);
  page.setDefaultTimeout(15000);
  page.on("console", m => {
    if (m.type() !== "error") return;
    if (m.text().startsWith("Failed to load resource")) seen.reported += 1;
    note(`console: ${m.text()}`);
  });
  page.on("pageerror", e => note(`page: ${e.message}`));
  page.on("request", () => { seen.open += 1; });
  page.on("response", r => { if (r.status() >= 400) seen.refused += 1; });
  page.on("requestfinished", () => { seen.open -= 1; });
  page.on("requestfailed", r => {
    seen.open -= 1;
    note(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  return page;
};

/** Waits until every request `on` made is answered and the browser has
 * reported each refusal, so that a view's late refusals (one view may make
 * several requests) are noted under the phase that provoked them. */
async function settled(on = page) {
  const seen = traffic.get(on);
  const until = Date.now() + 15000;
  while (seen.open > 0 || seen.reported < seen.refused) {
    if (Date.now() > until) throw new Error(`requests unsettled: ${JSON.stringify(seen)}`);
    await new Promise(r => setTimeout(r, 20));
  }
}
const page = watch(await browser.newPage());

/** The rows of the table under `selector`: data-key and each cell's text. */
const rows = (selector, on = page) => on.$$eval(`${selector} tbody tr`, trs =>
  trs.map(tr => ({ key: tr.dataset.key, cells: [...tr.cells].map(c => c.textContent) })));

/** Goes to the console's page `hash` and waits until the view is its. */
async function show(hash, on = page) {
  await on.evaluate(h => { location.hash = h; }, hash);
  await on.waitForSelector(`#view[data-route="${hash}"]`, { state: "attached" });
}

/** Saves the page as `name`.png when CONSOLE_SCREENSHOTS names a directory. */
const snap = async (name, on = page) => {
  const dir = process.env.CONSOLE_SCREENSHOTS;
  if (dir) await on.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
};

const errorShown = async (on = page) => {
  await on.waitForSelector("#error:not([hidden])");
  return on.textContent("#error");
};

try {
  phase = "campaigns";
  await page.goto(`${base}/console#token=${encodeURIComponent(admin)}`);
  await page.waitForSelector('#view[data-route="#/campaigns"] #campaigns tbody tr');
  out.url_after_token = page.url();
  // The running campaign shows its pace once the API has one.
  await page.waitForFunction(id => {
    const tr = document.querySelector(`#campaigns tr[data-key="${id}"]`);
    return tr && tr.cells[7].textContent !== "—";
  }, running);
  out.campaigns = await rows("#campaigns");
  out.campaign_headers = await page.$$eval("#campaigns thead th", ths => ths.map(th => th.textContent));
  await snap("campaigns");

  phase = "paging";
  await show("#/campaigns?limit=2");
  await page.waitForSelector("#campaigns tbody tr");
  out.pages = [];
  for (let n = 1; n <= 10; n++) {
    await page.waitForFunction(n => document.getElementById("page").textContent === `page ${n}`, n);
    out.pages.push((await rows("#campaigns")).map(r => r.key));
    if (n === 1) out.newer_hidden_on_first = await page.isHidden("#newer");
    if (await page.isHidden("#older")) break;
    await page.click("#older");
  }
  while (await page.isVisible("#newer")) {
    const at = await page.textContent("#page");
    await page.click("#newer");
    await page.waitForFunction(at => document.getElementById("page").textContent !== at, at);
  }
  out.back_to_first = (await rows("#campaigns")).map(r => r.key);

  phase = "campaign";
  await show(`#/campaigns/${encodeURIComponent(campaign)}`);
  await page.waitForSelector("#figures tbody tr");
  out.campaign = {
    title: await page.textContent("main h1"),
    figures: await rows("#figures"),
    counts: await rows("#counts"),
    declaration: await rows("#declaration"),
  };
  await snap("campaign");

  phase = "channels";
  await show("#/channels");
  await page.waitForSelector("#channels h2");
  out.channels = {
    names: await page.$$eval("#channels h2", hs => hs.map(x => x.textContent)),
    connectors: await rows("#channels"),
    rates: await page.$$eval("[data-role=rate]", ps =>
      ps.map(p => ({ channel: p.dataset.channel, rate: p.dataset.rate, text: p.textContent }))),
    without_connectors: await page.$$eval("[data-role=no-connectors]", ps => ps.length),
  };
  await snap("channels");

  phase = "plan";
  await show("#/plan/email");
  await page.waitForSelector("#chart[data-source=stored] svg");
  await page.click("#recompute");
  await page.waitForSelector("#chart[data-source=computed] svg");
  for (const days of ["1", "90"]) {
    await page.selectOption("#horizon", days);
    await page.waitForSelector(`#chart svg[data-days="${days}"]`);
    out[`plan_${days}`] = await page.$eval("#chart", chart => ({
      y_ticks: [...chart.querySelectorAll("[data-role=y-tick]")].map(t => t.textContent),
      y_unit: chart.querySelector("[data-role=y-unit]")?.textContent,
      x_ticks: [...chart.querySelectorAll("[data-role=x-tick]")].map(t => ({ text: t.textContent, at: t.dataset.at })),
      time_zone: chart.querySelector("[data-role=time-zone]")?.textContent,
      legend: [...chart.querySelectorAll("[data-role=legend] li")].map(li => ({
        campaign: li.dataset.campaign ?? null, text: li.textContent,
      })),
      bars: [...chart.querySelectorAll("rect[data-campaign]")].map(r => ({
        campaign: r.dataset.campaign,
        at: r.dataset.at,
        messages: Number(r.dataset.messages),
        width: r.getBoundingClientRect().width,
        height: r.getBoundingClientRect().height,
        title: r.querySelector("title")?.textContent,
      })),
      capacity: !!chart.querySelector("polyline[data-role=capacity]"),
      span: chart.querySelector("[data-role=plan-span]")?.textContent,
    }));
    await snap(`plan-${days}`);
  }

  phase = "blacklist";
  await show("#/blacklist/email?limit=1");
  await page.waitForSelector("#entries tbody tr");
  await page.fill("#q", search);
  await page.click("main form button[type=submit]");
  await page.waitForSelector(`#entries[data-q="${search}"] tbody tr`);
  out.blacklist_pages = 1;
  while (await page.isVisible("#more") && out.blacklist_pages < 10) {
    const before = (await rows("#entries")).length;
    await page.click("#more");
    await page.waitForFunction(n => document.querySelectorAll("#entries tbody tr").length > n, before);
    out.blacklist_pages += 1;
  }
  out.blacklist = await rows("#entries");
  await snap("blacklist");

  phase = "bad action";
  await show(`#/campaigns/${encodeURIComponent(cancelled)}`);
  await page.waitForSelector("#figures tbody tr");
  await page.click("button[data-action=start]");
  out.bad_action = await errorShown();
  await settled();
  await snap("bad-action");

  phase = "bad limit";
  await show("#/campaigns?limit=5000");
  out.bad_limit = await errorShown();
  await settled();

  phase = "no token";
  const fresh = watch(await browser.newPage());
  await fresh.goto(`${base}/console#/channels`);
  out.without_token = { error: await errorShown(fresh), login_shown: await fresh.isVisible("#login") };
  await settled(fresh);
  await snap("no-token", fresh);

  phase = "crm token";
  await fresh.fill("#token", crm);
  await fresh.click("#login button[type=submit]");
  await fresh.waitForFunction(() => document.getElementById("error").textContent.startsWith("403 "));
  out.crm_token = {
    error: await fresh.textContent("#error"),
    login_shown: await fresh.isVisible("#login"),
  };
  await settled(fresh);
  phase = "crm campaigns";
  await show("#/campaigns", fresh);
  await fresh.waitForSelector("#campaigns tbody tr");
  out.crm_campaigns = (await rows("#campaigns", fresh)).map(r => r.key);
} catch (e) {
  note(`check: ${e.message}`);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
