use super::*;

fn check(text: &str) -> Vec<(usize, String)> {
    check_source(Path::new("bins/berth-x/src/run.rs"), text)
        .into_iter()
        .map(|v| (v.line, v.message))
        .collect()
}

fn lines(text: &str) -> Vec<usize> {
    check(text).into_iter().map(|(line, _)| line).collect()
}

#[test]
fn wiring_passes() {
    let text = r#"
use berth_core::engine::{ApplyOptions, Engine, RetryPolicy};
use berth_core::plan::{NodeRules, Plan};
use berth_runtime::{process, Process};

async fn run(process: Process) {
    let engine = Engine::new(providers, ApplyOptions::default());
    let outcome = Outcome::retry(); // berth_runtime's, not the engine's
    process.metrics.with_registry(|r| r.sub_registry_with_prefix("berth_x"));
    let planned = self.plan_count; // a field, not a call
}
"#;
    assert_eq!(check(text), Vec::<(usize, String)>::new());
}

#[test]
fn planners_are_refused_imported_or_by_path() {
    let text = r#"
use berth_core::plan::{plan_membership, NodeRules};
use berth_core::{
    domain::Node,
    plan::desire_targets,
};

fn pass() {
    let plan = berth_core::plan::plan_address(&desired, &observed);
}
"#;
    assert_eq!(lines(text), [2, 3, 9]);
    assert!(check(text)[0].1.contains("`plan_membership`"));
}

#[test]
fn the_engines_retry_and_waiters_are_refused() {
    let text = r#"
use berth_core::engine::{retry, wait_for_targets, Status, WaitFor};

async fn step() {
    let r = berth_core::engine::wait_dns_sync(&zones, &change).await;
}
"#;
    let found = check(text);
    let messages: Vec<&str> = found.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(lines(text), [2, 2, 5], "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("`retry`")));
    assert!(messages.iter().any(|m| m.contains("`wait_for_targets`")));
    assert!(messages.iter().any(|m| m.contains("`wait_dns_sync`")));
}

#[test]
fn servers_registries_subscribers_and_signals_are_refused() {
    let text = r#"
use tokio::net::TcpListener;
fn f() {
    let registry = Registry::with_prefix("berth_x");
    let other = prometheus_client::registry::Registry::default();
    tracing_subscriber::fmt().init();
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
    let mut term = tokio::signal::unix::signal(SignalKind::terminate())?;
}
"#;
    assert_eq!(lines(text), [2, 4, 5, 6, 7, 7, 8]);
}

#[test]
fn comments_tests_and_longer_names_are_not_code() {
    let text = r#"
//! Serves nothing: the TcpListener is berth-runtime's.
/* Registry::default() was here
   and tracing_subscriber too */
fn f() {
    let my_TcpListener_count = 1; // TcpListener
    let x = MyTcpListener::new();
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;
}
"#;
    assert_eq!(check(text), Vec::<(usize, String)>::new());
    let test_file = check_source(
        Path::new("bins/berth-x/src/runner/tests.rs"),
        "use tokio::net::TcpListener;",
    );
    assert!(test_file.is_empty());
}

#[test]
fn a_documented_allowance_exempts_its_line_and_the_next_only() {
    let text = r#"
fn serve() {
    // layering: allow(http-server): the provisioner's API is its product.
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?; // layering: allow(http-server): same
    let other = tokio::net::TcpListener::bind(other).await?;
    let registry = Registry::default(); // layering: allow(http-server): wrong kind
}
"#;
    assert_eq!(lines(text), [6, 7]);
}
