//! `berth-sidecar iam-policy [FLAGS]`: prints the least-privilege IAM policy for the
//! target groups these (usual) flags name. Region and account come from `AWS_REGION`
//! and `AWS_ACCOUNT_ID` (`*` in the ARNs when unset).

use std::ffi::OsString;
use std::process::ExitCode;

use berth_aws::iam::{modes, Scope};

use crate::args::{self, Parsed};

/// The subcommand's name, as the first argument.
pub(crate) const SUBCOMMAND: &str = "iam-policy";

/// Whether `argv` (program name first) asks for the policy.
pub(crate) fn requested(argv: &[OsString]) -> bool {
    argv.get(1).is_some_and(|arg| arg == SUBCOMMAND)
}

/// Prints the policy for `argv` without its `iam-policy` word.
pub(crate) fn main(mut argv: Vec<OsString>) -> ExitCode {
    argv.remove(1);
    // The target id plays no part in the policy; the pod has none here.
    match args::parse(argv, Some("0.0.0.0".to_owned())) {
        Ok(Parsed::Run(config)) => {
            let scope = Scope::from_lookup(|name| std::env::var(name).ok());
            print!("{}", modes::sidecar(&scope, &config.groups).to_json());
            ExitCode::SUCCESS
        }
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(line) => {
            eprintln!("{line}");
            ExitCode::from(berth_runtime::ExitStatus::USAGE.code())
        }
    }
}
