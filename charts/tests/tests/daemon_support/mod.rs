//! What the daemon chart's run tests share: the daemon's command line as a pod of a
//! rendered workload runs it.
#![allow(dead_code, unreachable_pub)]

use berth_charts::pod::{self, Pod};
use berth_charts::render::release;
use berth_daemon::cli::Cli;
use clap::{CommandFactory as _, Parser as _};
use serde_json::Value;

/// The chart.
pub const CHART: &str = "berth-daemon";
/// The node the pod runs on (`spec.nodeName`).
pub const NODE: &str = "node-1";

/// The daemon's command line as a pod of `workload` (on [`NODE`], in the release
/// namespace) runs it: the rendered arguments, and each variable as its flag.
pub fn daemon_cli(workload: &Value) -> Cli {
    let (name, namespace) = release(CHART);
    let pod = Pod {
        name: format!("{name}-0"),
        namespace: namespace.to_owned(),
        node_name: NODE.to_owned(),
    };
    let command = Cli::command();
    let line = pod::command_line(workload, CHART, &pod, |variable| {
        command
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == variable))
            .and_then(|a| a.get_long())
            .map(str::to_owned)
    });
    Cli::try_parse_from(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}
