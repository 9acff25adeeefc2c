//! The light client's code order (issue 16 §4, §6: a light client within 20 MiB).
//!
//! Most of a joined light client's RSS is code: file-backed pages of `dsdn-agent`'s `.text`.
//! The kernel maps code 64 KiB at a time around each page fault (fault-around), and the
//! ~4 MiB of functions a light client runs lie scattered over a 32 MiB `.text`, so nearly
//! every 64 KiB window of the libp2p stack ends up resident (16.5 MiB). Linking those
//! functions next to each other (lld's `--symbol-ordering-file`, as Chromium and Firefox do
//! with their order files) keeps the resident code close to what runs.
//!
//! This module finds them: [`executed_addresses`] reads a valgrind callgrind profile
//! (`--dump-instr=yes`) of the light client, [`text_symbols`] the binary's function symbols,
//! and [`executed_functions`] the functions that ran, by address. `dsdn-light-order` writes
//! them to [`ORDER_FILE`], which `daemon/build.rs` hands to the linker of `dsdn-agent`.
//! The names carry Rust's symbol hashes, which change with `Cargo.lock`, the toolchain and
//! the build command; [`coverage`] tells how many of them a binary still has (the scale
//! benchmark prints it beside the light client's RSS).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use object::{Object, ObjectSymbol, SymbolKind};

/// The order file, relative to the repository root.
pub const ORDER_FILE: &str = "daemon/light-client.order";

/// [`ORDER_FILE`] in this checkout.
pub fn order_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(ORDER_FILE)
}

/// One line on how much of [`ORDER_FILE`] `agent` (a `dsdn-agent` binary) still defines,
/// e.g. `code order: 5012 of 5012 functions of daemon/light-client.order`, with a hint to
/// regenerate it when fewer than 90 % are found.
pub fn coverage_line(agent: &Path) -> String {
    match coverage(agent, &order_file()) {
        Ok((found, listed)) if found * 10 >= listed * 9 => {
            format!("code order: {found} of {listed} functions of {ORDER_FILE}")
        }
        Ok((found, listed)) => format!(
            "code order: only {found} of {listed} functions of {ORDER_FILE} in {} (built by \
             another command, Cargo.lock or toolchain than the order: regenerate it with \
             dsdn-light-order)",
            agent.display()
        ),
        Err(e) => format!("code order: unknown ({e:#})"),
    }
}

/// A function symbol of a binary: its mangled name, address and size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSymbol {
    /// Start address (the ELF symbol value).
    pub address: u64,
    /// Size in bytes (0 when the symbol table does not say).
    pub size: u64,
    /// The mangled name, as the linker sees it.
    pub name: String,
}

/// The instruction addresses executed in the object whose file name is `object_name` (e.g.
/// `dsdn-agent`), from the text of a callgrind profile written with `--dump-instr=yes`.
///
/// Positions are absolute (`0x…`) or relative to the last cost line's (`+N`, `-N`, `*`); the
/// target of a `calls=`/`jump=`/`jcnd=` line and the call site on the line after it are
/// relative to it too but do not move it (callgrind's `dump.c`). Call targets are not
/// collected: the callee's own cost lines name the instructions it ran.
///
/// # Errors
/// A position that is not a number.
pub fn executed_addresses(profile: &str, object_name: &str) -> anyhow::Result<BTreeSet<u64>> {
    let mut names: std::collections::HashMap<String, String> = Default::default();
    let mut in_object = false;
    let mut last: u64 = 0;
    let mut skip_next = false;
    let mut out = BTreeSet::new();
    for (n, line) in profile.lines().enumerate() {
        // Object names are compressed: `(id) name` the first time, in an `ob=` or a `cob=`
        // line, then `(id)` alone.
        let (object_line, rest) = match (line.strip_prefix("ob="), line.strip_prefix("cob=")) {
            (Some(rest), _) => (true, Some(rest)),
            (None, Some(rest)) => (false, Some(rest)),
            (None, None) => (false, None),
        };
        if let Some(rest) = rest {
            let id = match rest.split_once(' ') {
                Some((id, name)) => {
                    names.insert(id.to_owned(), name.to_owned());
                    id
                }
                None => rest,
            };
            if object_line {
                in_object = names
                    .get(id)
                    .and_then(|name| Path::new(name).file_name())
                    .is_some_and(|f| f == object_name);
            }
            continue;
        }
        if line.starts_with("calls=") || line.starts_with("jump=") || line.starts_with("jcnd=") {
            skip_next = true;
            continue;
        }
        let Some(token) = line.split_whitespace().next() else {
            continue;
        };
        let first = token.as_bytes()[0];
        if !(first.is_ascii_digit() || first == b'+' || first == b'-' || first == b'*') {
            continue;
        }
        let bad = || format!("line {}: bad position {token:?}", n + 1);
        let address = if let Some(hex) = token.strip_prefix("0x") {
            u64::from_str_radix(hex, 16).with_context(bad)?
        } else if token == "*" {
            last
        } else if let Some(d) = token.strip_prefix('+') {
            last.wrapping_add(d.parse::<u64>().with_context(bad)?)
        } else if let Some(d) = token.strip_prefix('-') {
            last.wrapping_sub(d.parse::<u64>().with_context(bad)?)
        } else {
            token.parse::<u64>().with_context(bad)?
        };
        if skip_next {
            skip_next = false;
            continue;
        }
        last = address;
        if in_object {
            out.insert(address);
        }
    }
    Ok(out)
}

/// The function symbols (`STT_FUNC`) of the ELF file at `binary`, sorted by address.
///
/// # Errors
/// When the file cannot be read or is no object file `object` can parse.
pub fn text_symbols(binary: &Path) -> anyhow::Result<Vec<TextSymbol>> {
    let data = std::fs::read(binary).with_context(|| format!("read {}", binary.display()))?;
    let file = object::File::parse(&*data)
        .map_err(|e| anyhow::anyhow!("parse {}: {e}", binary.display()))?;
    let mut out: Vec<TextSymbol> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.is_definition())
        .filter_map(|s| {
            Some(TextSymbol {
                address: s.address(),
                size: s.size(),
                name: s.name().ok()?.to_owned(),
            })
        })
        .filter(|s| !s.name.is_empty())
        .collect();
    out.sort_by_key(|s| s.address);
    Ok(out)
}

/// The symbols (sorted by address, as given) that contain at least one of `addresses`.
pub fn executed_functions<'a>(
    symbols: &'a [TextSymbol],
    addresses: &BTreeSet<u64>,
) -> Vec<&'a TextSymbol> {
    let mut out: Vec<&TextSymbol> = Vec::new();
    for &a in addresses {
        let i = symbols.partition_point(|s| s.address <= a);
        let Some(s) = i.checked_sub(1).map(|i| &symbols[i]) else {
            continue;
        };
        if a < s.address + s.size.max(1) && out.last().is_none_or(|l| l.address != s.address) {
            out.push(s);
        }
    }
    out
}

/// The names of an order file's text: one per line; blank lines and `#` comments skipped.
pub fn order_names(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// How many of the names in the order file at `order` the binary at `binary` defines:
/// (found, listed).
///
/// # Errors
/// When either file cannot be read or the binary cannot be parsed.
pub fn coverage(binary: &Path, order: &Path) -> anyhow::Result<(usize, usize)> {
    let text =
        std::fs::read_to_string(order).with_context(|| format!("read {}", order.display()))?;
    let names = order_names(&text);
    let defined: std::collections::HashSet<String> =
        text_symbols(binary)?.into_iter().map(|s| s.name).collect();
    let found = names.iter().filter(|n| defined.contains(**n)).count();
    Ok((found, names.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile in callgrind's compressed form: absolute and relative positions, calls
    /// whose target and call site must not move the last position, the agent's name given
    /// first on a `cob=` line and then by id only, and another object's lines.
    const PROFILE: &str = "\
version: 1
positions: instr
events: Ir

ob=(1) /usr/lib/libc.so.6
fl=(1) ???
fn=(1) memcpy
0x500 3
+4 1
cob=(2) /work/target/release/dsdn-agent
cfn=(2) main
calls=1 0x1000
+8 4

ob=(2)
fl=(2) ???
fn=(2) main
0x1000 2
+3 1
cob=(1)
cfn=(1)
calls=1 0x500
+2 7
+4 1
-9 1
* 2

ob=(1)
fn=(1)
0x9000 1

ob=(2)
fn=(3) other
0x2000 1
";

    #[test]
    fn callgrind_positions_are_decoded_and_call_lines_do_not_move_them() {
        let a = executed_addresses(PROFILE, "dsdn-agent").unwrap();
        // 0x1000, +3 → 0x1003; the call's target and call site (+2) leave it at 0x1003;
        // +4 → 0x1007; -9 → 0xffe; * → 0xffe; then 0x2000 under the id-only `ob=(2)`.
        let want: BTreeSet<u64> = [0x1000, 0x1003, 0x1007, 0xffe, 0x2000].into();
        assert_eq!(a, want);
        let libc = executed_addresses(PROFILE, "libc.so.6").unwrap();
        assert_eq!(libc, [0x500, 0x504, 0x9000].into());
    }

    #[test]
    fn a_malformed_position_is_an_error_naming_its_line() {
        let err = executed_addresses("ob=(1) /x/dsdn-agent\n0xzz 1\n", "dsdn-agent")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn addresses_map_to_the_functions_that_contain_them() {
        let sym = |address, size, name: &str| TextSymbol {
            address,
            size,
            name: name.to_owned(),
        };
        let symbols = vec![
            sym(0x100, 0x20, "a"),
            sym(0x120, 0x10, "b"),
            sym(0x200, 0x40, "c"),
        ];
        // 0x50 lies before every symbol, 0x130 in the gap after b.
        let addrs: BTreeSet<u64> = [0x50, 0x100, 0x11f, 0x130, 0x210, 0x23f].into();
        let names: Vec<&str> = executed_functions(&symbols, &addrs)
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["a", "c"]);
    }

    #[test]
    fn the_committed_order_file_lists_unique_mangled_names() {
        let text = std::fs::read_to_string(order_file()).unwrap();
        let names = order_names(&text);
        assert!(names.len() > 1000, "only {} names", names.len());
        let unique: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "duplicate names");
        for n in names {
            assert!(
                !n.contains(char::is_whitespace) && n.is_ascii(),
                "not a symbol name: {n:?}"
            );
        }
    }

    #[test]
    fn the_symbols_of_a_binary_are_read_and_covered() {
        // This test binary itself: its own functions are in its symbol table.
        let exe = std::env::current_exe().unwrap();
        let symbols = text_symbols(&exe).unwrap();
        assert!(symbols.windows(2).all(|w| w[0].address <= w[1].address));
        let mine = symbols
            .iter()
            .find(|s| {
                s.name
                    .contains("the_symbols_of_a_binary_are_read_and_covered")
            })
            .expect("this test's own symbol");
        let dir = tempfile::tempdir().unwrap();
        let order = dir.path().join("x.order");
        std::fs::write(
            &order,
            format!("# comment\n{}\nno_such_symbol\n", mine.name),
        )
        .unwrap();
        assert_eq!(coverage(&exe, &order).unwrap(), (1, 2));
    }
}
