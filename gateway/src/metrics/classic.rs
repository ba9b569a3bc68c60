//! The Prometheus text format (0.0.4) of the OpenMetrics exposition that
//! `prometheus-client` writes, for scrapers that do not ask for OpenMetrics
//! (`curl`, older servers, `promtool check metrics`). The two differ only in
//! names and markers: a counter family is named with its `_total` and an
//! info family with its `_info` (as a gauge), `# UNIT` lines and `# EOF` do
//! not exist, and `unknown` is `untyped`. Samples are the same lines.

use std::{collections::HashMap, fmt::Write};

/// `openmetrics` in the classic text format.
pub fn to_classic(openmetrics: &str) -> String {
    let mut renamed: HashMap<&str, String> = HashMap::new();
    for line in openmetrics.lines() {
        if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|t| t.split_once(' ')) {
            match kind {
                "counter" => renamed.insert(name, format!("{name}_total")),
                "info" => renamed.insert(name, format!("{name}_info")),
                _ => None,
            };
        }
    }
    let classic_name = |name: &str| renamed.get(name).map_or(name, String::as_str).to_owned();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        // Writing into a String cannot fail.
        if let Some((name, help)) = line.strip_prefix("# HELP ").and_then(|h| h.split_once(' ')) {
            let _ = writeln!(out, "# HELP {} {help}", classic_name(name));
        } else if let Some((name, kind)) =
            line.strip_prefix("# TYPE ").and_then(|t| t.split_once(' '))
        {
            let kind = match kind {
                "info" => "gauge",
                "unknown" => "untyped",
                other => other,
            };
            let _ = writeln!(out, "# TYPE {} {kind}", classic_name(name));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_infos_are_named_as_their_samples_and_markers_go() {
        let openmetrics = "# HELP sluice_messages Messages.\n\
            # TYPE sluice_messages counter\n\
            sluice_messages_total{channel=\"sms\"} 3\n\
            # HELP sluice_wait_seconds Wait.\n\
            # TYPE sluice_wait_seconds gauge\n\
            # UNIT sluice_wait_seconds seconds\n\
            sluice_wait_seconds 0.5\n\
            # HELP sluice_build Build.\n\
            # TYPE sluice_build info\n\
            sluice_build_info{version=\"1\"} 1\n\
            # EOF\n";
        assert_eq!(
            to_classic(openmetrics),
            "# HELP sluice_messages_total Messages.\n\
             # TYPE sluice_messages_total counter\n\
             sluice_messages_total{channel=\"sms\"} 3\n\
             # HELP sluice_wait_seconds Wait.\n\
             # TYPE sluice_wait_seconds gauge\n\
             sluice_wait_seconds 0.5\n\
             # HELP sluice_build_info Build.\n\
             # TYPE sluice_build_info gauge\n\
             sluice_build_info{version=\"1\"} 1\n"
        );
    }
}
