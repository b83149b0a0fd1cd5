//! charts/berth-daemon's RBAC is enough for the daemon, proven by running it. For each
//! example values file (`ci/*-values.yaml`) the chart is rendered with a real helm, and
//! each workload it renders runs as its pod would, against berth-kube's fake API
//! server: node and cluster mode as the daemon's real controller
//! (`berth_daemon::run::run`, with the settings `berth_daemon::wiring::settings` makes
//! of the rendered command line, the ownership ConfigMap adopted first as `wiring`
//! does) while a node is registered and cordoned; notice mode as
//! `berth_daemon::notice::run` while IMDS announces a spot interruption (until its taint
//! and the taint's Event are written). Every request
//! a run made must be allowed by the rules the chart binds to that workload's
//! ServiceAccount, and every rule must be used by a request or justified by
//! `unused_because` (a path the run does not take: an Event repeated, a dry run's
//! writes). Rules and requests are both read, never listed here: a rule another change
//! adds, or a request it makes, is checked as it lands.

mod daemon_support;

use std::sync::Arc;
use std::time::Duration;

use berth_aws::imds::Imds;
use berth_charts::pod;
use berth_charts::rbac;
use berth_charts::rbac::Grant;
use berth_charts::render::{examples, release, template, values_file};
use berth_core::domain::{Target, TargetType};
use berth_core::memory::{MemoryNodeConfigurations, MemoryTargetGroups};
use berth_core::provider::{NodeConfigurations, TargetOwnership as _};
use berth_core::workflow::node_targets::SPOT_INTERRUPTION_TAINT;
use berth_daemon::cli::{Cli, Mode};
use berth_daemon::notice::{self, NoticeSettings};
use berth_daemon::run::{self, Dependencies};
use berth_daemon::static_config::StaticConfig;
use berth_kube::fake::{ready_node, FakeApiServer, ResourceRequest};
use berth_runtime::Process;
use berth_testing::imds::{FakeImds, SPOT_ACTION_PATH};
use daemon_support::{daemon_cli, CHART, NODE};

const INSTANCE: &str = "i-0000000000000001";
/// The chart's rules name groups by ARN in an account the in-memory groups are not in;
/// RBAC does not depend on them, so the run uses rules of its own.
const RULES: &str =
    "rules:\n  - nodeSelector: {matchLabels: {role: web}}\n    targetGroups: [{name: web}]\n";
const WITHIN: Duration = Duration::from_secs(60);

/// How many reconcile passes the daemon's controller has run (`berth_reconcile_total`).
fn passes(process: &Process) -> u64 {
    process
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("berth_reconcile_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Polls `done` every 50 ms until it holds; panics after [`WITHIN`] with `what`.
async fn until(what: &str, api: &FakeApiServer, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WITHIN:?}; requests: {:#?}",
            api.requests()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the daemon's controller as `cli` configures it through registering [`NODE`]
/// (its target recorded by an earlier release's owner id: the record is adopted) and
/// cordoning it, then stops it; returns every request it made of the API server.
async fn requests_of_a_controller_run(cli: &Cli) -> Vec<ResourceRequest> {
    let rules = StaticConfig::parse("rules.yaml", RULES).unwrap();
    let settings = berth_daemon::wiring::settings(cli, rules, None).unwrap();
    let api = FakeApiServer::start().unwrap();
    let client = api.client();
    let groups = Arc::new(MemoryTargetGroups::default());
    let web = groups.add_group("web", TargetType::Instance, Some(30080));
    let target = Target::new(INSTANCE, 30080);
    for previous in &settings.previous_owners {
        // The record an earlier release made, where it made it.
        let mut earlier = settings.clone();
        earlier.owner = previous.clone();
        earlier.previous_owners.clear();
        run::config_map_store(&client, &earlier)
            .claim(&web.arn, std::slice::from_ref(&target))
            .await
            .unwrap();
    }
    api.add_node(ready_node(NODE, INSTANCE, &[("role", "web")]));
    let before = api.resource_requests().len();

    // As berth_daemon::wiring does before the loop.
    let ownership = Arc::new(run::config_map_store(&client, &settings));
    if !settings.dry_run() {
        ownership.adopt().await.unwrap();
    }
    let node_configurations = cli
        .cluster_id
        .is_some()
        .then(|| Arc::new(MemoryNodeConfigurations::default()) as Arc<dyn NodeConfigurations>);
    let dependencies = Dependencies {
        client,
        target_groups: groups.clone(),
        node_configurations,
        ownership,
        spot_notice: None,
    };
    let process = Arc::new(Process::detached("daemon"));
    let (dry_run, deregisters) = (settings.dry_run(), settings.node_rules.deregister_on_cordon);
    let daemon = tokio::spawn({
        let process = process.clone();
        async move { run::run(dependencies, settings, &process).await }
    });

    // Each step waits for a pass that saw it, and for its effect where the settings
    // allow one (a dry run changes nothing; a cordon may not deregister).
    until("a first pass", &api, || passes(&process) > 0).await;
    if !dry_run {
        until("the node's Registered Event", &api, || {
            api.events()
                .iter()
                .any(|e| e.reason.as_deref() == Some("Registered"))
        })
        .await;
    }
    let seen = passes(&process);
    let mut node = api.node(NODE).unwrap();
    node.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
    api.update_node(node);
    until("a pass after the cordon", &api, || passes(&process) > seen).await;
    if deregisters && !dry_run {
        until("the cordoned node's target draining", &api, || {
            groups
                .members(&web.arn)
                .get(&target)
                .is_some_and(|s| s.is_draining())
        })
        .await;
    }
    process.shutdown.cancel();
    let stopped = tokio::time::timeout(WITHIN, daemon)
        .await
        .expect("the daemon stops")
        .expect("the daemon's task");
    stopped.expect("the daemon ran without an error");
    let requests = api.resource_requests().split_off(before);
    assert!(
        requests
            .iter()
            .any(|r| r.verb == "watch" && r.resource == "nodes"),
        "the controller watched nodes: {requests:#?}"
    );
    requests
}

/// Runs notice mode as `cli` configures it while IMDS announces a spot interruption,
/// until its taint is on [`NODE`] (a dry run, which asks the API server nothing: until
/// IMDS was read), then stops it; returns every request it made of the API server.
async fn requests_of_a_notice_run(cli: &Cli) -> Vec<ResourceRequest> {
    let api = FakeApiServer::start().unwrap();
    api.add_node(ready_node(NODE, INSTANCE, &[]));
    let imds = FakeImds::start();
    imds.set_spot_action("terminate", "2026-11-27T20:00:00Z");
    // As berth_daemon::wiring does.
    let settings = NoticeSettings {
        node_name: cli.node_name.clone().unwrap_or_default(),
        every: cli.spot_poll,
        once: cli.once,
        dry_run: cli.dry_run,
        pod_name: cli.pod_name.clone(),
    };
    let dry_run = settings.dry_run;
    let process = Arc::new(Process::detached("daemon"));
    let daemon = tokio::spawn({
        let (process, client) = (process.clone(), api.client());
        let imds = Imds::with_endpoint(&imds.endpoint()).unwrap();
        async move { notice::run(client, imds, settings, &process).await }
    });
    if dry_run {
        until("IMDS read", &api, || imds.gets(SPOT_ACTION_PATH) > 0).await;
    } else {
        until("the spot interruption taint", &api, || {
            api.node(NODE)
                .and_then(|n| n.spec?.taints)
                .is_some_and(|t| t.iter().any(|t| t.key == SPOT_INTERRUPTION_TAINT))
        })
        .await;
        // And its Event on the Node, so that request is checked too.
        until("the taint's Event", &api, || !api.events().is_empty()).await;
    }
    process.shutdown.cancel();
    let stopped = tokio::time::timeout(WITHIN, daemon)
        .await
        .expect("notice mode stops")
        .expect("notice mode's task");
    if let Err(e) = stopped {
        panic!("notice mode failed: {e:?}");
    }
    api.resource_requests()
}

/// Why a run of `cli` did not use `grant`'s verbs, if the chart grants them for a path
/// this run does not take.
fn unused_because(cli: &Cli, grant: &Grant) -> Option<String> {
    let writes = ["create", "update", "patch", "delete"];
    let only = |verbs: &[&str]| grant.verbs.iter().all(|v| verbs.contains(&v.as_str()));
    let on = |resource: &str| grant.resources.iter().all(|r| r == resource);
    if cli.dry_run && (only(&writes) || on("leases")) {
        return Some("a dry run writes nothing and does not campaign for the Lease".into());
    }
    if on("events") && only(&["patch"]) {
        return Some(
            "a repeated Event is patched into a count; each Event here happens once".into(),
        );
    }
    if cli.mode == Mode::Node && on("configmaps") && only(&["create"]) {
        return Some(
            "node mode's ConfigMap is named by its node under every owner: the earlier \
             release's record created it, and this run adopts it in place"
                .into(),
        );
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_rbac_allows_every_request_the_daemon_makes() {
    let (_, namespace) = release(CHART);
    for values in examples(CHART) {
        let rendered = template(CHART, &values, &[]);
        let workloads = pod::workloads(&rendered);
        assert!(!workloads.is_empty(), "{values}: no workload rendered");
        for workload in workloads {
            let at = format!(
                "{} ({})",
                pod::label(workload),
                values_file(CHART, &values).display()
            );
            let cli = daemon_cli(workload);
            let service_account = pod::service_account(workload);
            let grants = rbac::grants(&rendered, namespace, &service_account);
            let requests = match cli.mode {
                Mode::Notice => requests_of_a_notice_run(&cli).await,
                Mode::Node | Mode::Cluster => requests_of_a_controller_run(&cli).await,
            };
            let account = format!("{namespace}/{service_account}");
            rbac::assert_least_privilege(&at, &account, &grants, &requests, |grant| {
                unused_because(&cli, grant)
            });
        }
    }
}
