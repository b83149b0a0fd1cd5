//! berth-daemon: see the library crate for what it does.

use std::process::ExitCode;

use berth_runtime::process::{self, Options};

fn main() -> ExitCode {
    let cli: berth_daemon::cli::Cli = match process::parse() {
        Ok(cli) => cli,
        // --help and --version exit 0; usage errors exit 2.
        Err(status) => return status.into(),
    };
    // The seed's DEBUG turns into the log level, so the flags are resolved first.
    let log = cli.log_args();
    process::start(Options::new("daemon"), &log, |process| {
        berth_daemon::wiring::run(cli, process)
    })
}
