//! The web console in a real headless browser: Debian's Chromium, driven by
//! `playwright-core` (`tests/peers/console/check.mjs`), against the real
//! daemon with tokens set, a relay (aiosmtpd) and a campaign sending while
//! the browser looks. Every view loads with no console error, no page
//! error and no failed request, and shows the figures the API gives: the
//! campaigns (a page at a time), a campaign's figures, counts and
//! declaration, the connectors' health and the channels' current rate, the
//! plan chart (scale, time ticks in the channel's zone, legend, tooltips,
//! the plan's allocations in its bars at a day and at 90 days, every bar
//! visible), the blacklist search a page at a time; an API error shows in
//! the page with the problem's detail and field, and a missing or
//! too-weak token asks for one.

#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use sluice_e2e::{Response, SmtpPeer, must_reach_end, peers, request};

const ADMIN: &str = "console-admin-token";
const CRM: &str = "console-crm-token";
const ZONE: &str = "Europe/Berlin";
/// Participants of the campaign that runs while the browser looks: at 2
/// messages a second it sends for longer than the test lasts.
const RUNNING: u64 = 200;

fn call(
    api: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth));
    }
    let body = body.map(Value::to_string).unwrap_or_default();
    request(method, api, path, &headers, body.as_bytes())
}

fn ok(api: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let r = call(api, Some(ADMIN), method, path, body);
    assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.text());
    if r.text().is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

/// The problem `method path` answers, as the console's first error line
/// shows it: `STATUS TITLE: DETAIL`.
fn refusal(
    api: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    status: u16,
) -> (String, Value) {
    let r = call(api, token, method, path, None);
    assert_eq!(r.status, status, "{method} {path}: {}", r.text());
    let p = r.json();
    let line = format!(
        "{status} {}: {}",
        p["title"].as_str().unwrap(),
        p["detail"].as_str().unwrap()
    );
    (line, p)
}

/// The start of the hour `h` hours from now.
fn hour(h: i64) -> jiff::Timestamp {
    let now = jiff::Timestamp::now().as_second();
    jiff::Timestamp::from_second(now - now % 3600 + h * 3600).unwrap()
}

fn participants(prefix: &str, n: u64) -> Value {
    (0..n)
        .map(|i| json!({"customer": format!("{prefix}{i}"), "address": format!("{prefix}{i}@example.org")}))
        .collect()
}

/// `n` as the console writes it: `10,000,000`.
fn commas(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A campaign view's declaration as the console's campaign page lists it:
/// dotted names, lists joined with `, `.
fn flatten(value: &Value, name: &str, out: &mut BTreeMap<String, String>) {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    match value {
        Value::Object(fields) => {
            for (k, v) in fields {
                let name = if name.is_empty() {
                    k.clone()
                } else {
                    format!("{name}.{k}")
                };
                flatten(v, &name, out);
            }
        }
        Value::Array(items) => {
            let joined: Vec<String> = items.iter().map(text).collect();
            out.insert(name.to_owned(), joined.join(", "));
        }
        v => {
            out.insert(name.to_owned(), text(v));
        }
    }
}

/// The rows the check read under a table: (data-key, cells).
fn rows(value: &Value) -> Vec<(String, Vec<String>)> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("rows: {value}"))
        .iter()
        .map(|r| {
            let cells = r["cells"].as_array().unwrap();
            (
                r["key"].as_str().unwrap_or_default().to_owned(),
                cells
                    .iter()
                    .map(|c| c.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn keyed(value: &Value) -> BTreeMap<String, String> {
    rows(value)
        .into_iter()
        .map(|(k, cells)| (k, cells[1].clone()))
        .collect()
}

fn or_dash(v: &Value) -> String {
    v.as_str().unwrap_or("—").to_owned()
}

#[test]
fn the_console_shows_what_the_api_says_in_a_real_browser() {
    let began = Instant::now();
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let relay = SmtpPeer::start(&end, dir.path());
    let daemon = sluice_e2e::Daemon::start_with_env(
        dir.path(),
        &format!(
            "[[email.relays]]\nname = \"main\"\nhost = \"127.0.0.1\"\nport = {}\n",
            relay.port
        ),
        &[("SLUICE_API_TOKENS", &format!("admin:{ADMIN},crm:{CRM}"))],
    );
    let api = daemon.api.as_str();
    let limits = json!({"rate_per_sec": 2, "tz": ZONE});
    ok(api, "PUT", "/v1/channels/email/limits", Some(&limits));
    let content = json!({"email": {"from": "Offers <o@telco.test>", "subject": "Hi {{customer}}",
        "text": "Offer <b>for</b> {{customer}}\nsecond line"}});

    // Sent and finished; its name and content are HTML the page must show
    // as text.
    let sent = json!({"channel": "email", "name": "Spring <i>offer</i> & co", "segment": "gold",
        "priority": 3, "content": content,
        "window": {"start": hour(-1).to_string(), "end": hour(48).to_string(), "tz": ZONE,
                   "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "hours": ["00:00-24:00"]}});
    ok(api, "PUT", "/v1/campaigns/sent", Some(&sent));
    ok(
        api,
        "POST",
        "/v1/campaigns/sent/participants",
        Some(&participants("ann", 2)),
    );
    ok(api, "POST", "/v1/campaigns/sent/start", None);
    let started = Instant::now();
    while ok(api, "GET", "/v1/campaigns/sent", None)["state"] != "finished" {
        assert!(started.elapsed() < Duration::from_secs(20), "not sent");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Sending while the browser looks.
    let slow = json!({"channel": "email", "name": "slow", "content": content});
    ok(api, "PUT", "/v1/campaigns/slow", Some(&slow));
    ok(
        api,
        "POST",
        "/v1/campaigns/slow/participants",
        Some(&participants("s", RUNNING)),
    );
    ok(api, "POST", "/v1/campaigns/slow/start", None);
    // Planned over 80 days: bars over most of a 90-day horizon. It ends
    // first, so the plan gives it every hour of its window ahead of the
    // running campaign: it starts two hour boundaries away, never while
    // the test runs, or the running campaign would stop at the boundary.
    let planned = json!({"channel": "email", "name": "planned", "expected_participants": 10_000_000,
        "window": {"start": hour(2).to_string(), "end": hour(80 * 24).to_string(), "tz": ZONE,
                   "hours": ["00:00-24:00"]}, "content": content});
    ok(api, "PUT", "/v1/campaigns/planned", Some(&planned));
    let stopped = json!({"channel": "email", "name": "stopped", "content": content});
    ok(api, "PUT", "/v1/campaigns/stopped", Some(&stopped));
    ok(
        api,
        "POST",
        "/v1/campaigns/stopped/participants",
        Some(&participants("cat", 1)),
    );
    ok(api, "POST", "/v1/campaigns/stopped/cancel", None);
    let entries = json!([
        "kim@example.org",
        "kimberly@example.org",
        "zoe@example.org",
        "c-kim"
    ]);
    ok(api, "PUT", "/v1/blacklist/email", Some(&entries));
    ok(api, "POST", "/v1/channels/email/plan", None);

    // The refusals the console must show as the API words them.
    let (start_refused, _) = refusal(api, Some(ADMIN), "POST", "/v1/campaigns/stopped/start", 409);
    let (limit_refused, limit_problem) =
        refusal(api, Some(ADMIN), "GET", "/v1/campaigns?limit=5000", 422);
    assert_eq!(limit_problem["field"], "limit");
    let (no_token, _) = refusal(api, None, "GET", "/v1/channels", 401);
    let (crm_refused, _) = refusal(api, Some(CRM), "GET", "/v1/channels", 403);

    // The running campaign has a pace before the browser looks.
    let started = Instant::now();
    while ok(api, "GET", "/v1/campaigns/slow", None)["progress"]["rate_per_sec"].is_null() {
        assert!(started.elapsed() < Duration::from_secs(20), "no pace");
        std::thread::sleep(Duration::from_millis(250));
    }

    let looked = jiff::Timestamp::now();
    let before = ok(api, "GET", "/v1/campaigns?limit=100", None);
    let channels = ok(api, "GET", "/v1/channels", None);
    let args = json!({"base": format!("http://{api}"), "admin": ADMIN, "crm": CRM,
        "campaign": "sent", "running": "slow", "cancelled": "stopped", "search": "kim"});
    let out = peers::node_with_playwright(&end)
        .arg(args.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let after = ok(api, "GET", "/v1/campaigns?limit=100", None);
    assert_eq!(
        ok(api, "GET", "/v1/channels", None),
        channels,
        "health held still"
    );

    // No error anywhere but the refusals the last views provoke, each the
    // browser's note of the answer's status.
    for (phase, problems) in seen["problems"].as_object().unwrap() {
        let expected = match phase.as_str() {
            "bad action" => "409",
            "bad limit" => "422",
            "no token" => "401",
            "crm token" => "403",
            _ => panic!("{phase}: {problems:#}"),
        };
        for p in problems.as_array().unwrap() {
            let p = p.as_str().unwrap();
            assert!(
                p.starts_with("console: Failed to load resource") && p.contains(expected),
                "{phase}: {p}"
            );
        }
    }
    assert!(
        seen["url_after_token"]
            .as_str()
            .unwrap()
            .ends_with("/console#/campaigns"),
        "the token leaves the address bar: {}",
        seen["url_after_token"]
    );

    // The campaigns as the API lists them, newest first, with their
    // figures; the running one's between the API's before and after.
    assert_eq!(
        seen["campaign_headers"],
        json!([
            "campaign",
            "name",
            "channel",
            "state",
            "participants",
            "done",
            "pending",
            "rate/s",
            "ETA"
        ])
    );
    let listed = |page: &Value| -> Vec<Value> { page["campaigns"].as_array().unwrap().clone() };
    let (before, after) = (listed(&before), listed(&after));
    let shown = rows(&seen["campaigns"]);
    let ids: Vec<&str> = before.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        shown.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ids,
        "{shown:?}"
    );
    assert_eq!(ids, ["stopped", "planned", "slow", "sent"]);
    for ((_, cells), (c, later)) in shown.iter().zip(before.iter().zip(&after)) {
        let id = c["id"].as_str().unwrap();
        let p = &c["progress"];
        let fixed = [&c["id"], &c["name"], &c["channel"], &c["state"]]
            .map(|v| v.as_str().unwrap().to_owned());
        assert_eq!(cells[..4], fixed, "{id}");
        assert_eq!(cells[4], c["participants"].to_string(), "{id}");
        if id == "slow" {
            let done: u64 = cells[5].parse().unwrap();
            let (from, to) = (
                p["done"].as_u64().unwrap(),
                later["progress"]["done"].as_u64().unwrap(),
            );
            assert!(
                from <= done && done <= to,
                "done {done}, the API {from}..{to}"
            );
            assert!(from < to, "it sent while the browser looked: {from}..{to}");
            assert_eq!(cells[6], (RUNNING - done).to_string(), "pending");
            let rate: f64 = cells[7].parse().unwrap();
            assert!(rate > 0.0 && rate <= 4.0, "rate {rate}");
            let eta: jiff::Timestamp = cells[8].parse().unwrap();
            assert!(
                eta > looked && eta < looked + jiff::SignedDuration::from_secs(600),
                "ETA {eta}"
            );
        } else {
            assert_eq!(c, later, "{id} held still");
            let figures = [
                p["done"].to_string(),
                p["pending"].to_string(),
                or_dash(&p["rate_per_sec"]),
                or_dash(&p["eta"]),
            ];
            assert_eq!(cells[5..], figures, "{id}");
        }
    }

    // A page at a time, as the API pages them.
    let mut pages = Vec::new();
    let mut path = "/v1/campaigns?limit=2".to_owned();
    loop {
        let page = ok(api, "GET", &path, None);
        pages.push(
            listed(&page)
                .iter()
                .map(|c| c["id"].clone())
                .collect::<Vec<_>>(),
        );
        match page["next"].as_u64() {
            Some(next) => path = format!("/v1/campaigns?limit=2&before={next}"),
            None => break,
        }
    }
    assert_eq!(pages.len(), 2);
    assert_eq!(seen["pages"], json!(pages));
    assert_eq!(seen["newer_hidden_on_first"], true);
    assert_eq!(seen["back_to_first"], json!(pages[0]));

    // One campaign: its figures, counts per outcome and declaration.
    let view = ok(api, "GET", "/v1/campaigns/sent", None);
    let page = &seen["campaign"];
    assert_eq!(
        page["title"],
        format!("Campaign sent: {}", view["name"].as_str().unwrap())
    );
    let p = &view["progress"];
    let figures: BTreeMap<String, String> = [
        ("state", view["state"].as_str().unwrap().to_owned()),
        ("participants", view["participants"].to_string()),
        ("uploading", view["uploading"].to_string()),
        ("done", p["done"].to_string()),
        ("pending", p["pending"].to_string()),
        ("rate/s", or_dash(&p["rate_per_sec"])),
        ("ETA", or_dash(&p["eta"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(keyed(&page["figures"]), figures);
    let counts: BTreeMap<String, String> = view["counts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    assert_eq!(keyed(&page["counts"]), counts);
    assert_eq!(counts["submitted"], "2", "{counts:?}");
    let mut declared = view.clone();
    for k in [
        "id",
        "state",
        "participants",
        "uploading",
        "counts",
        "progress",
    ] {
        declared.as_object_mut().unwrap().remove(k);
    }
    let mut declaration = BTreeMap::new();
    flatten(&declared, "", &mut declaration);
    assert_eq!(keyed(&page["declaration"]), declaration);
    assert_eq!(
        declaration["content.email.text"],
        "Offer <b>for</b> {{customer}}\nsecond line"
    );
    assert_eq!(declaration["window.hours"], "00:00-24:00");

    // Every connector's health as the API gives it, and each channel's
    // current rate: the running campaign's on e-mail, none on SMS.
    let shown = &seen["channels"];
    let api_channels = channels["channels"].as_array().unwrap();
    let names: Vec<&Value> = api_channels.iter().map(|c| &c["channel"]).collect();
    assert_eq!(shown["names"], json!(names));
    let mut connectors = Vec::new();
    for ch in api_channels {
        for k in ch["connectors"].as_array().unwrap() {
            let binds = match (k["binds_up"].as_u64(), k["binds"].as_u64()) {
                (Some(up), Some(all)) => format!("{up}/{all}"),
                _ => "—".to_owned(),
            };
            let cells = vec![
                k["name"].as_str().unwrap().to_owned(),
                k["kind"].as_str().unwrap().to_owned(),
                k["address"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
                binds,
                or_dash(&k["last_error"]),
                or_dash(&k["last_error_at"]),
            ];
            connectors.push((
                format!(
                    "{}/{}",
                    ch["channel"].as_str().unwrap(),
                    k["name"].as_str().unwrap()
                ),
                cells,
            ));
        }
    }
    assert_eq!(rows(&shown["connectors"]), connectors);
    let relay_address = format!("127.0.0.1:{}", relay.port);
    assert_eq!(
        connectors[0].1[..4],
        ["main", "smtp_relay", relay_address.as_str(), "up"]
    );
    let empty = api_channels
        .iter()
        .filter(|c| c["connectors"].as_array().unwrap().is_empty())
        .count();
    assert_eq!(shown["without_connectors"], empty);
    for r in shown["rates"].as_array().unwrap() {
        let rate: f64 = r["rate"].as_str().unwrap().parse().unwrap();
        let text = r["text"].as_str().unwrap();
        assert!(
            text.starts_with(&format!(
                "current rate {} messages/s",
                r["rate"].as_str().unwrap()
            )),
            "{text}"
        );
        if r["channel"] == "email" {
            assert!(
                rate > 0.0 && rate <= 4.0 && text.contains("1 running campaign (slow "),
                "{text}"
            );
        } else {
            assert_eq!(rate, 0.0, "{text}");
        }
    }

    // The plan chart, as recomputed from the page, at a day and 90 days.
    let plan = ok(api, "GET", "/v1/channels/email/plan", None);
    let hours = plan["hours"].as_array().unwrap();
    let first: jiff::Timestamp = hours[0]["hour"].as_str().unwrap().parse().unwrap();
    let berlin = jiff::tz::TimeZone::get(ZONE).unwrap();
    let local = |t: jiff::Timestamp| {
        t.to_zoned(berlin.clone())
            .strftime("%-d %b %H:%M")
            .to_string()
    };
    for (days, per) in [(1_i64, 1_i64), (90, 24)] {
        let chart = &seen[format!("plan_{days}")];
        assert_eq!(chart["y_unit"], "messages/hour", "{chart}");
        let ticks: Vec<u64> = chart["y_ticks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().replace(',', "").parse().unwrap())
            .collect();
        assert!(ticks.len() >= 3 && ticks[0] == 0, "a scale: {ticks:?}");
        assert!(
            ticks.windows(2).all(|w| w[1] - w[0] == ticks[1]),
            "even steps: {ticks:?}"
        );
        assert_eq!(chart["time_zone"], format!("times in {ZONE}"));
        let x: Vec<(String, jiff::Timestamp)> = chart["x_ticks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["text"].as_str().unwrap().to_owned(),
                    t["at"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        assert!(x.len() >= 4, "time ticks: {x:?}");
        assert_eq!(x[0].1, first, "from the plan's first hour");
        for (text, at) in &x {
            assert_eq!(*text, local(*at), "labelled in {ZONE}");
        }
        let spanned = x.last().unwrap().1.duration_since(first).as_hours();
        assert!(
            spanned * 4 >= days * 24 * 3,
            "ticks over the horizon: {x:?}"
        );
        assert_eq!(chart["capacity"], true);

        // The legend: capacity, then each campaign with what it plans.
        let legend = chart["legend"].as_array().unwrap();
        assert!(
            legend[0]["text"].as_str().unwrap().starts_with("capacity"),
            "{legend:?}"
        );
        let planned_ids: Vec<&String> = plan["campaigns"].as_object().unwrap().keys().collect();
        assert_eq!(legend.len(), planned_ids.len() + 1, "{legend:?}");
        for (id, c) in plan["campaigns"].as_object().unwrap() {
            let li = legend
                .iter()
                .find(|l| l["campaign"] == id.as_str())
                .unwrap();
            let start = format!("{id}: {} planned", commas(c["planned"].as_u64().unwrap()));
            assert!(
                li["text"].as_str().unwrap().starts_with(&start),
                "{li} / {start}"
            );
        }

        // The bars: the plan's allocations within the horizon, bar by
        // bar, each visible, each with its tooltip.
        let mut expected: BTreeMap<(String, jiff::Timestamp), u64> = BTreeMap::new();
        for h in hours {
            let at: jiff::Timestamp = h["hour"].as_str().unwrap().parse().unwrap();
            let offset = at.duration_since(first).as_hours();
            if offset >= days * 24 {
                continue;
            }
            let bar = first + jiff::SignedDuration::from_hours(offset - offset % per);
            for (id, n) in h["allocated"].as_object().unwrap() {
                *expected.entry((id.clone(), bar)).or_default() += n.as_u64().unwrap();
            }
        }
        expected.retain(|_, n| *n > 0);
        let mut drawn = BTreeMap::new();
        for bar in chart["bars"].as_array().unwrap() {
            let id = bar["campaign"].as_str().unwrap().to_owned();
            let at: jiff::Timestamp = bar["at"].as_str().unwrap().parse().unwrap();
            let n = bar["messages"].as_u64().unwrap();
            assert!(
                bar["width"].as_f64().unwrap() >= 1.0 && bar["height"].as_f64().unwrap() >= 1.0,
                "visible at {days} days: {bar}"
            );
            let title = bar["title"].as_str().unwrap();
            assert!(
                title.starts_with(&format!("{id}: {} messages", commas(n)))
                    && title.contains(&format!("{} to ", local(at)))
                    && title.contains(&format!("({ZONE})")),
                "{title}"
            );
            assert!(drawn.insert((id, at), n).is_none(), "one bar each: {bar}");
        }
        assert_eq!(drawn, expected, "the plan's allocations at {days} days");
        let planned_bars = drawn.keys().filter(|(id, _)| id == "planned").count();
        assert!(
            planned_bars >= if days == 1 { 20 } else { 50 },
            "{planned_bars} bars at {days} days"
        );
        assert!(
            drawn.keys().any(|(id, _)| id == "slow"),
            "the running campaign is planned"
        );
    }

    // Blacklist search, a page of one at a time: what the API finds.
    let found = ok(api, "GET", "/v1/blacklist/email?q=kim&limit=1000", None);
    let hits: Vec<(String, Vec<String>)> = found["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let entry = e["entry"].as_str().unwrap().to_owned();
            (
                entry.clone(),
                vec![entry, e["why"].as_str().unwrap().to_owned()],
            )
        })
        .collect();
    assert_eq!(hits.len(), 3, "{found}");
    assert_eq!(rows(&seen["blacklist"]), hits);
    assert_eq!(seen["blacklist_pages"], 3);

    // Errors show in the page as the API words them.
    let error = seen["bad_action"].as_str().unwrap();
    assert!(
        error.starts_with(&start_refused),
        "{error} / {start_refused}"
    );
    assert!(
        error.ends_with("(POST /v1/campaigns/stopped/start)"),
        "{error}"
    );
    let error = seen["bad_limit"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("{limit_refused}\nfield: limit\n")),
        "{error} / {limit_refused}"
    );
    let without = &seen["without_token"];
    assert!(
        without["error"].as_str().unwrap().starts_with(&no_token),
        "{without} / {no_token}"
    );
    assert_eq!(without["login_shown"], true);
    let weak = &seen["crm_token"];
    assert!(
        weak["error"].as_str().unwrap().starts_with(&crm_refused),
        "{weak} / {crm_refused}"
    );
    assert_eq!(weak["login_shown"], true);
    assert_eq!(
        seen["crm_campaigns"],
        json!(ids),
        "a crm token shows the campaigns"
    );

    let states: BTreeSet<&str> = after.iter().map(|c| c["state"].as_str().unwrap()).collect();
    assert!(
        states.contains("running"),
        "still sending at the end: {states:?}"
    );
    eprintln!("console check took {:?}", began.elapsed());
    end.reached();
}
