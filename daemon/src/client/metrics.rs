//! Reading values from the Prometheus / OpenMetrics text exposition of `/metrics`.

/// Reads one value from a Prometheus / OpenMetrics text exposition.
///
/// A sample matches when its metric name is `name`, `name` + `_total` (prometheus-client
/// appends `_total` to counters, so `bootstrap_dns_resolve_total` may be exposed as
/// `bootstrap_dns_resolve_total_total`), or `name` without a trailing `_total`; and when it
/// carries every `(label, value)` pair of `labels` (other labels are ignored). The values
/// of all matching samples are summed, so `metric_value(t, "x", &[])` on a labelled family
/// is the total over its label values. `None` when no sample matches.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let with_total = format!("{name}_total");
    let without_total = name.strip_suffix("_total");
    let mut sum = None;
    for line in text.lines() {
        let Some(sample) = parse_sample(line) else {
            continue;
        };
        let name_matches = sample.name == name
            || sample.name == with_total
            || without_total.is_some_and(|n| sample.name == n);
        if !name_matches {
            continue;
        }
        let labels_match = labels
            .iter()
            .all(|(k, v)| sample.labels.iter().any(|(sk, sv)| sk == k && sv == v));
        if labels_match {
            *sum.get_or_insert(0.0) += sample.value;
        }
    }
    sum
}

/// One sample line of a text exposition.
#[derive(Debug, PartialEq)]
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses `name{k="v",…} value [timestamp]`; `None` for comments, blank or broken lines.
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(after_brace)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    if name.is_empty() {
        return None;
    }
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Parses the label set after `{` up to and including the closing `}`; returns the labels
/// and the text after `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_owned();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((key, value));
        s = s[end + 1..].trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# HELP bootstrap_dns_resolve_total DNS seed resolutions attempted.
# TYPE bootstrap_dns_resolve_total counter
bootstrap_dns_resolve_total_total 3
# HELP bootstrap_dns_resolve_success DNS seed resolutions that returned addresses.
# TYPE bootstrap_dns_resolve_success counter
bootstrap_dns_resolve_success_total 2
# TYPE bootstrap_peer_handshake_failure counter
bootstrap_peer_handshake_failure_total{reason="network_mismatch"} 4
bootstrap_peer_handshake_failure_total{reason="version_mismatch",dir="in"} 1
bootstrap_peer_handshake_failure_total{reason="odd \"quoted\", value\\x"} 7
# TYPE bootstrap_active_peers gauge
bootstrap_active_peers 5
bootstrap_peers_dat_size{} 12.5 1700000000000
# TYPE bootstrap_fallback_triggered counter
bootstrap_fallback_triggered_total 0
# EOF
"#;

    #[test]
    fn reads_gauges_and_counters_with_suffix_tolerance() {
        assert_eq!(
            metric_value(SAMPLE, "bootstrap_active_peers", &[]),
            Some(5.0)
        );
        assert_eq!(
            metric_value(SAMPLE, "bootstrap_peers_dat_size", &[]),
            Some(12.5)
        );
        // Counter named `…_total` exposed as `…_total_total`.
        assert_eq!(
            metric_value(SAMPLE, "bootstrap_dns_resolve_total", &[]),
            Some(3.0)
        );
        // Counter asked by its family name or by its sample name.
        assert_eq!(
            metric_value(SAMPLE, "bootstrap_dns_resolve_success", &[]),
            Some(2.0)
        );
        assert_eq!(
            metric_value(SAMPLE, "bootstrap_dns_resolve_success_total", &[]),
            Some(2.0)
        );
        assert_eq!(
            metric_value(SAMPLE, "bootstrap_fallback_triggered", &[]),
            Some(0.0)
        );
    }

    #[test]
    fn label_matching_and_summing() {
        let name = "bootstrap_peer_handshake_failure";
        assert_eq!(
            metric_value(SAMPLE, name, &[("reason", "network_mismatch")]),
            Some(4.0)
        );
        assert_eq!(
            metric_value(SAMPLE, name, &[("reason", "version_mismatch")]),
            Some(1.0)
        );
        assert_eq!(
            metric_value(SAMPLE, name, &[("reason", "odd \"quoted\", value\\x")]),
            Some(7.0)
        );
        assert_eq!(metric_value(SAMPLE, name, &[]), Some(12.0));
        assert_eq!(metric_value(SAMPLE, name, &[("reason", "timeout")]), None);
    }

    #[test]
    fn absent_metric_and_no_prefix_confusion() {
        assert_eq!(
            metric_value(SAMPLE, "bootstrap_pex_requests_total", &[]),
            None
        );
        // `bootstrap_active` is a prefix of a real name but not a metric itself.
        assert_eq!(metric_value(SAMPLE, "bootstrap_active", &[]), None);
        assert_eq!(metric_value("", "x", &[]), None);
        assert_eq!(metric_value("garbage line\nx{unclosed 1", "x", &[]), None);
    }
}
