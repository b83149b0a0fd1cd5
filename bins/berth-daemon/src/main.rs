//! berth-daemon: see the library crate for what it does.

use std::process::ExitCode;

use berth_runtime::process::{self, Options};

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if berth_daemon::iam_policy::requested(&argv) {
        return berth_daemon::iam_policy::main(argv);
    }
    let cli: berth_daemon::cli::Cli = match process::parse() {
        Ok(cli) => cli,
        // --help and --version exit 0; usage errors exit 2.
        Err(status) => return status.into(),
    };
    // The seed's DEBUG turns into the log level, so the flags are resolved first.
    let log = cli.log_args();
    // One thread: a pass is short CPU work between AWS and Kubernetes round trips, and
    // every worker thread of a multi-threaded runtime gets its own malloc arena,
    // which at 5,000 nodes held ~20 MiB of freed memory (docs/benchmarks.md).
    let options = Options::new("daemon").current_thread();
    process::start(options, &log, |process| {
        berth_daemon::wiring::run(cli, process)
    })
}
