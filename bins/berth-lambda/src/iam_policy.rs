//! `berth-lambda iam-policy`: prints the function's least-privilege IAM policy for the
//! configuration in the environment (the same `BERTH_*` variables the function reads),
//! with ARNs in `AWS_REGION` and `AWS_ACCOUNT_ID` (`*` when unset).

use std::process::ExitCode;

use berth_aws::iam::{modes, Scope};

use crate::config::Config;

/// The subcommand's name, as the first argument.
pub(crate) const SUBCOMMAND: &str = "iam-policy";

const USAGE: &str = "\
berth-lambda: AWS Lambda on EC2 state-change events (configured by BERTH_* environment
variables: see docs/lambda.md).

Usage: berth-lambda                 run as the function (in the Lambda runtime)
       berth-lambda iam-policy      print the least-privilege IAM policy for the BERTH_*
                                    configuration in the environment (ARNs in AWS_REGION
                                    and AWS_ACCOUNT_ID, `*` when unset)
       berth-lambda --version | --help";

/// What the command line asks for, if anything other than running the function.
pub(crate) fn command(args: &[String]) -> Option<ExitCode> {
    match args.first().map(String::as_str) {
        None => None,
        Some(SUBCOMMAND) if args.len() == 1 => Some(print_policy()),
        Some("--version" | "-V") => {
            println!("berth-lambda {}", berth_runtime::LONG_VERSION);
            Some(ExitCode::SUCCESS)
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            Some(ExitCode::SUCCESS)
        }
        Some(_) => {
            eprintln!("{USAGE}");
            Some(ExitCode::from(2))
        }
    }
}

fn print_policy() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("berth-lambda iam-policy: {e}");
            return ExitCode::from(2);
        }
    };
    let scope = Scope::from_lookup(|name| std::env::var(name).ok());
    let resources = modes::LambdaResources {
        pool: &config.settings.pool,
        zone_id: &config.settings.zone_id,
        table: &config.table,
    };
    print!("{}", modes::lambda(&scope, resources).to_json());
    ExitCode::SUCCESS
}
