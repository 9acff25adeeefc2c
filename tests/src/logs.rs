//! Reading the daemons' logs in tests: offsets, matching lines, waiting for one.

use std::time::Duration;

use dsdn_daemon::localnet::Node;

use crate::eventually;

/// The logs of `nodes`, for failure messages.
pub fn logs(nodes: &[&Node]) -> String {
    nodes
        .iter()
        .map(|n| format!("--- {} ---\n{}", n.name(), n.log_tail(40)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Removes ANSI colour sequences (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The size of `node`'s log in bytes: an offset for [`log_lines_since`].
pub fn log_offset(node: &Node) -> usize {
    std::fs::metadata(node.log_path()).map_or(0, |m| m.len() as usize)
}

/// The lines of `node`'s log after byte `offset`, without colour codes.
pub fn log_lines_since(node: &Node, offset: usize) -> Vec<String> {
    let bytes = std::fs::read(node.log_path()).unwrap_or_default();
    let tail = bytes.get(offset..).unwrap_or_default();
    String::from_utf8_lossy(tail)
        .lines()
        .map(strip_ansi)
        .collect()
}

/// Lines of `node`'s log after `offset` logged at `level` (`ERROR`, `WARN`, `INFO`; `None`:
/// any) that contain `needle` (case-insensitive).
pub fn log_matches(node: &Node, offset: usize, level: Option<&str>, needle: &str) -> Vec<String> {
    let needle = needle.to_lowercase();
    log_lines_since(node, offset)
        .into_iter()
        .filter(|l| level.is_none_or(|lv| l.split_whitespace().nth(1) == Some(lv)))
        .filter(|l| l.to_lowercase().contains(&needle))
        .collect()
}

/// Waits until [`log_matches`] finds a line; returns it.
///
/// # Errors
/// When `timeout` passes first; the error quotes the log's tail.
pub async fn wait_log(
    node: &Node,
    offset: usize,
    level: Option<&str>,
    needle: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let what = format!(
        "a {} log line containing {needle:?} on {}",
        level.unwrap_or("any"),
        node.name()
    );
    eventually(timeout, &what, || async {
        log_matches(node, offset, level, needle).into_iter().next()
    })
    .await
}
