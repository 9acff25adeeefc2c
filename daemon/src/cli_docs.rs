//! Shell completions and man pages generated from the binaries' clap definitions
//! (issue 15 §3): `dsdnd completions SHELL`, `dsdn-agent completions SHELL` print a
//! completion script; the hidden `man DIR` subcommands write one page per (sub)command,
//! e.g. `dsdn-agent.1`, `dsdn-agent-peers.1`, `dsdn-agent-peers-list.1`. The Debian
//! package's build (`scripts/package.sh`) calls both.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// The `completions` and hidden `man` subcommands, the same in both binaries: each binary's
/// `Command` enum flattens it (`#[command(flatten)] Docs(DocsCommand)`).
#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum DocsCommand {
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write the man pages to DIR (for packaging).
    #[command(hide = true)]
    Man {
        /// Directory the pages are written to (created if missing).
        dir: PathBuf,
    },
}

impl DocsCommand {
    /// Runs the subcommand for the binary whose clap definition is `cmd`: the completion
    /// script to stdout, or the man pages to the directory.
    ///
    /// # Errors
    /// The man pages cannot be written; the error names the directory.
    pub fn run(self, cmd: clap::Command) -> std::io::Result<()> {
        match self {
            // A reader that stops early (`| head`) is not an error.
            DocsCommand::Completions { shell } => {
                match write_completions(cmd, shell, &mut std::io::stdout()) {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                    other => other,
                }
            }
            DocsCommand::Man { dir } => write_man_pages(cmd, &dir).map(drop).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot write the man pages to {}: {e}", dir.display()),
                )
            }),
        }
    }
}

/// Prints the completion script of `cmd` for `shell` to `out`. The script is rendered into
/// memory first: clap_complete panics when its writer fails (`dsdnd completions bash |
/// head`), a write error here is returned instead.
///
/// # Errors
/// Writing to `out` failed.
pub fn write_completions(
    mut cmd: clap::Command,
    shell: Shell,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let name = cmd.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    out.write_all(&script)?;
    out.flush()
}

/// Renders the man page of `cmd` itself (section 1) to `out`.
///
/// # Errors
/// Writing to `out` failed.
pub fn write_man(cmd: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(cmd).render(out)
}

/// Writes the man pages of `cmd` and of every visible subcommand to `dir` (created if
/// missing); returns the files written, sorted.
///
/// # Errors
/// `dir` cannot be created or a page cannot be written.
pub fn write_man_pages(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(cmd, dir)?;
    let mut pages = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    pages.retain(|p| p.extension().is_some_and(|e| e == "1"));
    pages.sort();
    Ok(pages)
}

/// The names of `cmd`'s visible subcommands at every depth, as paths (`peers list`),
/// parents before children; `help` is left out.
pub fn subcommand_paths(cmd: &clap::Command) -> Vec<String> {
    fn walk(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let path = if prefix.is_empty() {
                sub.get_name().to_owned()
            } else {
                format!("{prefix} {}", sub.get_name())
            };
            out.push(path.clone());
            walk(sub, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(cmd, "", &mut out);
    out
}

/// Checks the generated documents of `cmd` (for the binaries' tests): every shell's
/// completion script and the man page are non-empty and name every visible subcommand,
/// and [`write_man_pages`] writes one page per (sub)command. Returns what is missing, one
/// line per problem.
pub fn check_documents(cmd: &clap::Command) -> Vec<String> {
    let mut problems = Vec::new();
    let paths = subcommand_paths(cmd);
    let leaf = |p: &str| p.rsplit(' ').next().unwrap_or(p).to_owned();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut out = Vec::new();
        if let Err(e) = write_completions(cmd.clone(), shell, &mut out) {
            problems.push(format!("{shell}: {e}"));
        }
        let text = String::from_utf8_lossy(&out);
        if text.trim().is_empty() {
            problems.push(format!("{shell}: empty completion script"));
        }
        for p in &paths {
            if !text.contains(&leaf(p)) {
                problems.push(format!("{shell}: no subcommand {p}"));
            }
        }
    }
    let mut man = Vec::new();
    if let Err(e) = write_man(cmd.clone(), &mut man) {
        problems.push(format!("man: {e}"));
    }
    let man = String::from_utf8_lossy(&man);
    if !man.contains(".TH") {
        problems.push("man: no .TH header".to_owned());
    }
    // Top-level subcommands are listed on the command's own page; deeper ones on their
    // parent's page, each of which is written by write_man_pages.
    for p in paths.iter().filter(|p| !p.contains(' ')) {
        if !man.contains(p.as_str()) {
            problems.push(format!("man: no subcommand {p}"));
        }
    }
    match tempfile::tempdir() {
        Ok(dir) => match write_man_pages(cmd.clone(), dir.path()) {
            Ok(pages) => {
                let name = cmd.get_name();
                let mut expected: Vec<PathBuf> = std::iter::once(name.to_owned())
                    .chain(
                        paths
                            .iter()
                            .map(|p| format!("{name}-{}", p.replace(' ', "-"))),
                    )
                    .map(|stem| dir.path().join(format!("{stem}.1")))
                    .collect();
                expected.sort();
                if pages != expected {
                    problems.push(format!("man pages: {pages:?}, expected {expected:?}"));
                }
            }
            Err(e) => problems.push(format!("man pages: {e}")),
        },
        Err(e) => problems.push(format!("temporary directory: {e}")),
    }
    problems
}
