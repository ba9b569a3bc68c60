// Drives sluice's web console in Debian's Chromium (playwright-core, no
// downloaded browser) and prints, as one JSON object, what each view
// showed and every console error, page error and failed request, by view:
//
//   node check.mjs BASE_URL TOKEN CAMPAIGN CANCELLED SEARCH
//
// tests/tests/console.rs compares it with what the API says.
import { chromium } from "playwright-core";

const [base, token, campaign, cancelled, search] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
const out = { problems: {} };
let phase = "load";
const page = await browser.newPage();
const note = what => (out.problems[phase] ||= []).push(what);
page.on("console", m => { if (m.type() === "error") note(`console: ${m.text()}`); });
page.on("pageerror", e => note(`page: ${e.message}`));
page.on("requestfailed", r => note(`request failed: ${r.url()}`));

const rows = selector => page.$$eval(`${selector} tbody tr`, trs =>
  trs.map(tr => ({ key: tr.dataset.key, cells: [...tr.cells].map(c => c.textContent) })));

try {
  phase = "campaigns";
  await page.goto(`${base}/console#token=${encodeURIComponent(token)}`);
  await page.waitForSelector("#campaigns tbody tr");
  out.campaigns = await rows("#campaigns");
  out.url_after_token = page.url();

  phase = "campaign";
  await page.goto(`${base}/console#/campaigns/${encodeURIComponent(campaign)}`);
  await page.waitForSelector("#campaign tbody tr");
  out.campaign = await rows("#campaign table:first-of-type");
  out.counts = await rows("#campaign h2 + table");

  phase = "channels";
  await page.goto(`${base}/console#/channels`);
  await page.waitForSelector("#channels tbody tr");
  out.connectors = await rows("#channels");
  out.rates = await page.$$eval("[data-role=rate]", ps => ps.map(p => ({ channel: p.dataset.channel, text: p.textContent })));

  for (const days of ["1", "90"]) {
    phase = `plan ${days}`;
    await page.goto(`${base}/console#/plan/email`);
    await page.waitForSelector("#chart svg");
    await page.selectOption("main form select", days);
    await page.waitForSelector("#chart svg");
    out[`plan_${days}`] = await page.$eval("#chart", chart => ({
      y_ticks: [...chart.querySelectorAll("[data-role=y-tick]")].map(t => t.textContent),
      y_unit: chart.querySelector("[data-role=y-unit]")?.textContent,
      x_ticks: [...chart.querySelectorAll("[data-role=x-tick]")].map(t => t.textContent),
      time_zone: chart.querySelector("[data-role=time-zone]")?.textContent,
      legend: [...chart.querySelectorAll("[data-role=legend] li")].map(li => li.textContent),
      bars: [...chart.querySelectorAll("rect[data-campaign]")].map(r => ({
        campaign: r.dataset.campaign,
        width: r.getBBox().width,
        height: r.getBBox().height,
        title: r.querySelector("title")?.textContent,
      })),
      capacity: !!chart.querySelector("[data-role=capacity]"),
    }));
  }

  phase = "blacklist";
  await page.goto(`${base}/console#/blacklist/email`);
  await page.waitForSelector("#entries table");
  await page.fill("#q", search);
  await page.click("main form button[type=submit]");
  await page.waitForFunction(s => [...document.querySelectorAll("#entries tbody tr")]
    .every(tr => tr.cells[0].textContent.includes(s)), search);
  out.blacklist = await rows("#entries");

  phase = "bad action";
  await page.goto(`${base}/console#/campaigns/${encodeURIComponent(cancelled)}`);
  await page.waitForSelector("#campaign tbody tr");
  await page.click("button[data-action=start]");
  await page.waitForSelector("#error:not([hidden])");
  out.error_shown = await page.textContent("#error");

  phase = "no token";
  const fresh = await browser.newPage();
  fresh.on("pageerror", e => note(`page: ${e.message}`));
  await fresh.goto(`${base}/console#/channels`);
  await fresh.waitForSelector("#error:not([hidden])");
  out.without_token = {
    error: await fresh.textContent("#error"),
    login_shown: await fresh.isVisible("#login"),
  };
} catch (e) {
  note(`check: ${e.message}`);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
