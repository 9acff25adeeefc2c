//! `dsdn-agent`: the operator tool for `dsdnd` (status, peers, DA events) and the launcher
//! of local devnets of real daemons. Run `dsdn-agent --help`.

#[path = "../agent/mod.rs"]
mod agent;

fn main() -> std::process::ExitCode {
    agent::main()
}
