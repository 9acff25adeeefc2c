//! Plain-text tables for humans.

/// Columns separated by two spaces, each as wide as its widest cell; no trailing spaces.
pub(crate) fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(width) => *width = (*width).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Terminal width the tables fit by default (issue 15 §6).
pub(crate) const TABLE_WIDTH: usize = 80;

/// As [`render_table`], but at most `width` columns wide when that can be done by folding
/// the columns `fold`: the widest of them is narrowed first, none below its longest word
/// (text between `,` or spaces) or its header, and their cells are wrapped onto
/// continuation lines whose other columns are blank. A table that fits is exactly
/// [`render_table`]'s; one that cannot fit is folded as far as the words allow.
pub(crate) fn render_table_fit(
    headers: &[&str],
    rows: &[Vec<String>],
    width: usize,
    fold: &[usize],
) -> String {
    let cols = headers.len();
    let cells = |i: usize| rows.iter().filter_map(move |r| r.get(i));
    let mut widths: Vec<usize> = (0..cols)
        .map(|i| {
            cells(i)
                .map(|c| c.chars().count())
                .chain(std::iter::once(headers[i].chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
    if total(&widths) <= width {
        return render_table(headers, rows);
    }
    let fold: Vec<usize> = fold.iter().copied().filter(|i| *i < cols).collect();
    let floor: Vec<usize> = (0..cols)
        .map(|i| {
            cells(i)
                .flat_map(|c| c.split_inclusive([',', ' ']))
                .map(|w| w.trim_end().chars().count())
                .chain(std::iter::once(headers[i].chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    while total(&widths) > width {
        let Some(&i) = fold
            .iter()
            .filter(|i| widths[**i] > floor[**i])
            .max_by_key(|i| widths[**i])
        else {
            break;
        };
        widths[i] -= 1;
    }
    let mut out_rows: Vec<Vec<String>> = Vec::new();
    for row in rows {
        let wrapped: Vec<Vec<String>> = (0..cols)
            .map(|i| {
                let cell = row.get(i).cloned().unwrap_or_default();
                if fold.contains(&i) {
                    wrap(&cell, widths[i])
                } else {
                    vec![cell]
                }
            })
            .collect();
        let lines = wrapped.iter().map(Vec::len).max().unwrap_or(1);
        for l in 0..lines {
            out_rows.push(
                wrapped
                    .iter()
                    .map(|pieces| pieces.get(l).cloned().unwrap_or_default())
                    .collect(),
            );
        }
    }
    render_table(headers, &out_rows)
}

/// `text` in pieces of at most `width` characters, broken after the last `,` or space that
/// fits, else hard.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while chars.len() - start > width {
        let window = &chars[start..start + width];
        let cut = window
            .iter()
            .rposition(|c| *c == ',' || *c == ' ')
            .map_or(width, |i| i + 1);
        out.push(
            chars[start..start + cut]
                .iter()
                .collect::<String>()
                .trim_end()
                .to_owned(),
        );
        start += cut;
        while chars.get(start) == Some(&' ') {
            start += 1;
        }
    }
    if start < chars.len() || out.is_empty() {
        out.push(chars[start..].iter().collect());
    }
    out
}

/// A byte count for tables: `512B`, `1.5K`, `12.0M`, `3.2G` (powers of 1024).
pub(crate) fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

/// `key  value` lines with the values aligned.
pub(crate) fn render_kv(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let pad = width - k.chars().count();
        let line = format!("{k}{}  {v}", " ".repeat(pad));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A PeerId shortened for tables: `12D3…` and its last 8 characters.
pub(crate) fn short_id(id: &str) -> String {
    let n = id.chars().count();
    if n <= 14 {
        return id.to_owned();
    }
    let head: String = id.chars().take(4).collect();
    let tail: String = id.chars().skip(n - 8).collect();
    format!("{head}…{tail}")
}

/// The first 12 characters of a hex digest.
pub(crate) fn short_hex(hex: &str) -> String {
    hex.chars().take(12).collect()
}

/// `42s`, `5m 03s`, `1h 02m 03s`, `3d 04h 05m`.
pub(crate) fn format_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}h {m:02}m")
    } else if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// `2024-03-01 12:00:00 UTC` for UNIX seconds (proleptic Gregorian calendar).
pub(crate) fn format_unix_utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `yes` / `no`.
pub(crate) fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_aligned_without_trailing_spaces() {
        let t = render_table(
            &["NAME", "PEERS", "ROOT"],
            &[
                vec!["bootstrap".into(), "5".into(), "abc".into()],
                vec!["storage-10".into(), "12".into(), "".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME        PEERS  ROOT\n\
             bootstrap   5      abc\n\
             storage-10  12\n"
        );
    }

    #[test]
    fn table_counts_characters_not_bytes() {
        let t = render_table(&["ID", "X"], &[vec!["12D3…abcdefgh".into(), "1".into()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0].find('X'), Some("12D3…abcdefgh  ".chars().count()));
    }

    #[test]
    fn fit_folds_one_column_to_the_width() {
        let rows = vec![
            vec![
                "a".to_owned(),
                "storage,storage-dc,coordinator,validator,bootstrap".to_owned(),
                "x".to_owned(),
            ],
            vec!["b".to_owned(), "chain".to_owned(), "y".to_owned()],
        ];
        let t = render_table_fit(&["ID", "SERVICES", "END"], &rows, 30, &[1]);
        for line in t.lines() {
            assert!(line.chars().count() <= 30, "{t}");
        }
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>()[0], "a");
        assert!(lines[1].ends_with(" x"), "{t}");
        assert!(lines[2].starts_with("   "), "{t}");
        // Every service is still there, in order.
        let joined: String = t
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with('b'))
            .map(|l| {
                l.split_whitespace()
                    .nth(if l.starts_with('a') { 1 } else { 0 })
                    .unwrap_or("")
            })
            .collect();
        assert_eq!(joined, "storage,storage-dc,coordinator,validator,bootstrap");
        // A table that fits is render_table's.
        assert_eq!(
            render_table_fit(&["ID"], &[vec!["a".to_owned()]], 80, &[0]),
            render_table(&["ID"], &[vec!["a".to_owned()]])
        );
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(format_bytes(512), "512B");
        assert_eq!(format_bytes(1536), "1.5K");
        assert_eq!(format_bytes(5 * 1024 * 1024), "5.0M");
    }

    #[test]
    fn kv_is_aligned() {
        let t = render_kv(&[("mode", "storage".into()), ("peer id", "12D3".into())]);
        assert_eq!(t, "mode     storage\npeer id  12D3\n");
    }

    #[test]
    fn ids_and_durations() {
        assert_eq!(
            short_id("12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"),
            "12D3…kSCVe2Xo"
        );
        assert_eq!(short_id("short"), "short");
        assert_eq!(short_hex(&"ab".repeat(32)), "abababababab");
        assert_eq!(format_duration(42), "42s");
        assert_eq!(format_duration(303), "5m 03s");
        assert_eq!(format_duration(3723), "1h 02m 03s");
        assert_eq!(
            format_duration(3 * 86_400 + 4 * 3600 + 5 * 60),
            "3d 04h 05m"
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(format_unix_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_unix_utc(1_709_294_400), "2024-03-01 12:00:00 UTC");
        assert_eq!(format_unix_utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
    }
}
