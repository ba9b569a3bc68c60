//! Each command: its API calls and how its answer is printed (a table, or
//! the JSON with `--json`).

use std::{process::ExitCode, time::Duration};

use serde_json::{Value, json};

use crate::{
    BlacklistCommand, CampaignCommand, Command, ConnectorCommand, PlanCommand, UnmatchedCommand,
    client::{CallError, Client, encode},
    table::{Table, cell},
    upload,
};

/// How long `events --follow` waits before asking again when there was
/// nothing new.
const FOLLOW_PAUSE: Duration = Duration::from_secs(1);

pub async fn run(client: &Client, command: Command, json: bool) -> Result<ExitCode, CallError> {
    let shown = match command {
        Command::Campaigns { command } => campaigns(client, command).await?,
        Command::Upload {
            campaign,
            file,
            skip_bad,
            format,
        } => {
            let format = format.unwrap_or_else(|| upload::Format::of(&file));
            let (stored, summary) =
                upload::upload(client, &campaign, &file, format, skip_bad).await?;
            let answer = summary.to_json(stored);
            print(json, &answer, |_| upload_text(stored, &summary));
            // A file refused whole is a failure; skipped lines are not.
            return Ok(if stored {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Blacklist { command } => blacklist(client, command).await?,
        Command::Channels => Shown::new(client.get("/v1/channels").await?, channels_table),
        Command::Connector { command } => {
            let (channel, name, action) = match command {
                ConnectorCommand::Stop { channel, name } => (channel, name, "stop"),
                ConnectorCommand::Start { channel, name } => (channel, name, "start"),
            };
            let path = format!(
                "/v1/channels/{}/connectors/{}/{action}",
                encode(&channel),
                encode(&name)
            );
            let answer = client.post(&path, None).await?;
            let one = json!({"channels": [{"channel": channel, "connectors": [answer]}]});
            print(json, &answer, |_| channels_table(&one));
            return Ok(ExitCode::SUCCESS);
        }
        Command::Plan {
            command: PlanCommand::Show { channel },
        } => Shown::new(
            client
                .get(&format!("/v1/channels/{}/plan", encode(&channel)))
                .await?,
            plan_table,
        ),
        Command::Unmatched { command } => unmatched(client, command).await?,
        Command::Events {
            after,
            limit,
            follow,
        } => return events(client, after, limit, follow, json).await,
        Command::Completions { .. } | Command::Man => unreachable!("answered without the API"),
    };
    print(json, &shown.answer, shown.text);
    Ok(ExitCode::SUCCESS)
}

/// An answer and how it reads as text.
struct Shown {
    answer: Value,
    text: fn(&Value) -> String,
}

impl Shown {
    fn new(answer: Value, text: fn(&Value) -> String) -> Self {
        Self { answer, text }
    }
}

fn print(json: bool, answer: &Value, text: impl FnOnce(&Value) -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(answer).unwrap_or_default()
        );
    } else {
        print!("{}", text(answer));
    }
}

async fn campaigns(client: &Client, command: CampaignCommand) -> Result<Shown, CallError> {
    let (id, action) = match command {
        CampaignCommand::List {
            state,
            channel,
            limit,
            before,
        } => {
            let mut query = format!("?limit={limit}");
            let before = before.map(|n| n.to_string());
            for (key, value) in [("state", state), ("channel", channel), ("before", before)] {
                if let Some(value) = value {
                    query.push_str(&format!("&{key}={}", encode(&value)));
                }
            }
            let answer = client.get(&format!("/v1/campaigns{query}")).await?;
            return Ok(Shown::new(answer, campaigns_table));
        }
        CampaignCommand::Show { id } => {
            let answer = client
                .get(&format!("/v1/campaigns/{}", encode(&id)))
                .await?;
            return Ok(Shown::new(answer, campaign_text));
        }
        CampaignCommand::Start { id } => (id, "start"),
        CampaignCommand::Pause { id } => (id, "pause"),
        CampaignCommand::Resume { id } => (id, "resume"),
        CampaignCommand::Cancel { id } => (id, "cancel"),
        CampaignCommand::Delete { id } => {
            client
                .delete(&format!("/v1/campaigns/{}", encode(&id)))
                .await?;
            return Ok(Shown::new(json!({"deleted": id}), |a| {
                format!("deleted {}\n", cell(&a["deleted"]))
            }));
        }
    };
    let path = format!("/v1/campaigns/{}/{action}", encode(&id));
    Ok(Shown::new(client.post(&path, None).await?, campaign_text))
}

async fn blacklist(client: &Client, command: BlacklistCommand) -> Result<Shown, CallError> {
    match command {
        BlacklistCommand::Add { channel, entries } => {
            let path = format!("/v1/blacklist/{}", encode(&channel));
            let answer = client.put_json(&path, &json!(entries)).await?;
            Ok(Shown::new(answer, |a| {
                format!("added {}\n", cell(&a["added"]))
            }))
        }
        BlacklistCommand::Remove { channel, entry } => {
            let path = format!("/v1/blacklist/{}/{}", encode(&channel), encode(&entry));
            client.delete(&path).await?;
            Ok(Shown::new(json!({"removed": entry}), |a| {
                format!("removed {}\n", cell(&a["removed"]))
            }))
        }
        BlacklistCommand::List {
            channel,
            search,
            why,
            limit,
            after,
        } => {
            let mut query = format!("?limit={limit}");
            for (key, value) in [("q", search), ("why", why), ("after", after)] {
                if let Some(value) = value {
                    query.push_str(&format!("&{key}={}", encode(&value)));
                }
            }
            let path = format!("/v1/blacklist/{}{query}", encode(&channel));
            Ok(Shown::new(client.get(&path).await?, |a| {
                let mut table = Table::new(&["ENTRY", "WHY"]);
                for e in list(&a["entries"]) {
                    table.row(vec![cell(&e["entry"]), cell(&e["why"])]);
                }
                let mut text = table.render();
                if let Some(next) = a["next"].as_str() {
                    text.push_str(&format!("(more: --after '{next}')\n"));
                }
                text
            }))
        }
    }
}

async fn unmatched(client: &Client, command: UnmatchedCommand) -> Result<Shown, CallError> {
    let (kind, limit, before, text): (_, _, _, fn(&Value) -> String) = match command {
        UnmatchedCommand::Bounces { limit, before } => ("bounces", limit, before, bounces_text),
        UnmatchedCommand::Receipts { limit, before } => ("receipts", limit, before, receipts_table),
    };
    let mut query = format!("?limit={limit}");
    if let Some(before) = before {
        query.push_str(&format!("&before={before}"));
    }
    let answer = client.get(&format!("/v1/{kind}/unmatched{query}")).await?;
    Ok(Shown::new(answer, text))
}

/// Each returned mail kept, whole, under its number.
fn bounces_text(page: &Value) -> String {
    let mut text = String::new();
    for item in list(&page["items"]) {
        let message = item["message"].as_str().unwrap_or_default();
        text.push_str(&format!(
            "== {} ==\n{}\n",
            cell(&item["n"]),
            message.trim_end()
        ));
    }
    text + &kept_footer(page)
}

fn receipts_table(page: &Value) -> String {
    let mut table = Table::new(&["N", "KEPT_AT", "SMSC", "ID", "STAT", "ERROR"]);
    for item in list(&page["items"]) {
        let r = &item["receipt"];
        table.row(vec![
            cell(&item["n"]),
            cell(&r["kept_at"]),
            cell(&r["smsc"]),
            cell(&r["id"]),
            cell(&r["stat"]),
            cell(&r["error"]),
        ]);
    }
    table.render() + &kept_footer(page)
}

/// How many were kept, and the next page's option while older items are
/// still held.
fn kept_footer(page: &Value) -> String {
    let number = |v: &Value| v.as_u64().unwrap_or(0);
    let oldest_held = number(&page["kept"]).saturating_sub(number(&page["capacity"]));
    let last = list(&page["items"]).last().map(|i| number(&i["n"]));
    match last {
        Some(n) if n > oldest_held => {
            format!("({} kept; more: --before {n})\n", cell(&page["kept"]))
        }
        _ => format!("({} kept)\n", cell(&page["kept"])),
    }
}

/// Pages of the feed from `after`; with `follow`, forever.
async fn events(
    client: &Client,
    mut after: u64,
    limit: u32,
    follow: bool,
    json: bool,
) -> Result<ExitCode, CallError> {
    let mut header = !json;
    loop {
        let page = client
            .get(&format!("/v1/events?after={after}&limit={limit}"))
            .await?;
        let events = list(&page["events"]);
        for event in events {
            if json {
                println!("{event}");
            } else {
                let mut table =
                    Table::new(&["CURSOR", "AT", "TYPE", "CAMPAIGN", "CUSTOMER", "DETAIL"]);
                table.row(event_row(event));
                let text = table.render();
                // The header once; each fact as it comes.
                let mut lines = text.lines();
                let head = lines.next().unwrap_or_default();
                if std::mem::take(&mut header) {
                    println!("{head}");
                }
                for line in lines {
                    println!("{line}");
                }
            }
        }
        after = page["next"].as_u64().unwrap_or(after);
        if events.is_empty() {
            if !follow {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(FOLLOW_PAUSE).await;
        }
    }
}

fn event_row(event: &Value) -> Vec<String> {
    let mut detail = event.as_object().cloned().unwrap_or_default();
    for key in ["cursor", "at", "type", "campaign", "customer"] {
        detail.remove(key);
    }
    vec![
        cell(&event["cursor"]),
        cell(&event["at"]),
        cell(&event["type"]),
        cell(&event["campaign"]),
        cell(&event["customer"]),
        if detail.is_empty() {
            String::new()
        } else {
            Value::Object(detail).to_string()
        },
    ]
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

fn campaigns_table(answer: &Value) -> String {
    let mut table = Table::new(&[
        "ID",
        "STATE",
        "CHANNEL",
        "PARTICIPANTS",
        "PENDING",
        "ETA",
        "NAME",
    ]);
    for c in list(&answer["campaigns"]) {
        table.row(vec![
            cell(&c["id"]),
            cell(&c["state"]),
            cell(&c["channel"]),
            cell(&c["participants"]),
            cell(&c["progress"]["pending"]),
            cell(&c["progress"]["eta"]),
            cell(&c["name"]),
        ]);
    }
    let mut text = table.render();
    if let Some(next) = answer["next"].as_u64() {
        text.push_str(&format!("(more: --before {next})\n"));
    }
    text
}

fn campaign_text(c: &Value) -> String {
    let progress = &c["progress"];
    let mut text = format!(
        "id: {}\nname: {}\nchannel: {}\nstate: {}\nparticipants: {} ({} uploading)\n\
         done: {}  pending: {}  rate: {}/s  eta: {}\n",
        cell(&c["id"]),
        cell(&c["name"]),
        cell(&c["channel"]),
        cell(&c["state"]),
        cell(&c["participants"]),
        cell(&c["uploading"]),
        cell(&progress["done"]),
        cell(&progress["pending"]),
        progress["rate_per_sec"]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.1}")),
        cell(&progress["eta"]),
    );
    let mut counts = Table::new(&["OUTCOME", "COUNT"]);
    for (outcome, n) in c["counts"].as_object().into_iter().flatten() {
        counts.row(vec![outcome.clone(), cell(n)]);
    }
    text.push_str(&counts.render());
    text
}

fn channels_table(answer: &Value) -> String {
    let mut table = Table::new(&[
        "CHANNEL",
        "KIND",
        "NAME",
        "ADDRESS",
        "STATE",
        "BINDS",
        "LAST ERROR",
    ]);
    for channel in list(&answer["channels"]) {
        for c in list(&channel["connectors"]) {
            let binds = match (c["binds_up"].as_u64(), c["binds"].as_u64()) {
                (Some(up), Some(all)) => format!("{up}/{all}"),
                _ => "-".to_owned(),
            };
            let last_error = match (c["last_error"].as_str(), c["last_error_at"].as_str()) {
                (Some(e), Some(at)) => format!("{at} {e}"),
                _ => "-".to_owned(),
            };
            table.row(vec![
                cell(&channel["channel"]),
                cell(&c["kind"]),
                cell(&c["name"]),
                cell(&c["address"]),
                cell(&c["state"]),
                binds,
                last_error,
            ]);
        }
    }
    table.render()
}

fn plan_table(plan: &Value) -> String {
    let mut campaigns = Table::new(&["CAMPAIGN", "PLANNED", "FINISH", "FEASIBLE", "SHORTFALL"]);
    for (id, c) in plan["campaigns"].as_object().into_iter().flatten() {
        campaigns.row(vec![
            id.clone(),
            cell(&c["planned"]),
            cell(&c["finish"]),
            cell(&c["feasible"]),
            cell(&c["shortfall"]),
        ]);
    }
    let mut hours = Table::new(&["HOUR (UTC)", "CAPACITY", "ALLOCATED"]);
    for h in list(&plan["hours"]) {
        let allocated: Vec<String> = h["allocated"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(id, n)| format!("{id}={}", cell(n)))
            .collect();
        hours.row(vec![
            cell(&h["hour"]),
            cell(&h["capacity"]),
            allocated.join(" "),
        ]);
    }
    format!("{}\n{}", campaigns.render(), hours.render())
}

fn upload_text(stored: bool, summary: &upload::Summary) -> String {
    let mut text = String::new();
    for (line, error) in &summary.rejected {
        text.push_str(&format!("line {line}: {error}\n"));
    }
    let unlisted = summary
        .rejected_total
        .saturating_sub(summary.rejected.len() as u64);
    if unlisted > 0 {
        text.push_str(&format!("(and {unlisted} more refused lines not listed)\n"));
    }
    if stored {
        text.push_str(&format!(
            "accepted {}, duplicates {}, rejected {}\n",
            summary.accepted, summary.duplicates, summary.rejected_total
        ));
    } else {
        text.push_str(&format!(
            "nothing uploaded: {} bad lines; fix them, or pass --skip-bad to upload the {} good ones\n",
            summary.rejected_total,
            summary.accepted + summary.duplicates
        ));
    }
    text
}
