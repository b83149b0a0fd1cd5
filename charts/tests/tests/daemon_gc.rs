//! charts/berth-daemon with `gcIpTargets.enabled` (IP target GC of crashed sidecars):
//! cluster mode renders the flags and adds the RBAC the GC calls — proven by a run of
//! the daemon's controller with the rendered command line collecting a gone pod's
//! target, every request checked against the rendered rules; node mode ignores the
//! value.

mod daemon_support;

use std::sync::Arc;
use std::time::Duration;

use berth_charts::pod;
use berth_charts::rbac;
use berth_charts::render::{release, template, Rendered};
use berth_core::domain::{Mode as OwnerMode, Owner, Registration, Target, TargetType};
use berth_core::memory::{MemoryNodeConfigurations, MemoryTargetGroups};
use berth_core::plan::PodIdentity;
use berth_core::provider::{NodeConfigurations, TargetGroups as _, TargetOwnership as _};
use berth_daemon::cli::Cli;
use berth_daemon::run::{self, Dependencies};
use berth_daemon::static_config::StaticConfig;
use berth_kube::fake::FakeApiServer;
use berth_kube::sidecar_records::{record_name, record_store};
use berth_runtime::Process;
use clap::Parser as _;
use k8s_openapi::api::core::v1::{ConfigMap, Pod as K8sPod};
use serde_json::{json, Value};

const CHART: &str = "berth-daemon";
const WITHIN: Duration = Duration::from_secs(60);

fn args(rendered: &Rendered) -> Vec<String> {
    let workloads: Vec<&Value> = rendered
        .all("Deployment")
        .into_iter()
        .chain(rendered.all("DaemonSet"))
        .collect();
    workloads[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn gc_in_cluster_mode_renders_its_flags_and_rbac() {
    let rendered = template(
        CHART,
        "cluster",
        &["gcIpTargets.enabled=true", "gcIpTargets.grace=90s"],
    );
    let args = args(&rendered);
    let line = std::iter::once("berth-daemon".to_owned()).chain(args.iter().cloned());
    let cli = berth_daemon::cli::Cli::try_parse_from(line).unwrap();
    assert!(cli.gc_ip_targets, "{args:?}");
    assert_eq!(cli.gc_grace, std::time::Duration::from_secs(90));
    assert_eq!(cli.mode, berth_daemon::cli::Mode::Cluster);
    let cluster_roles = rendered.all("ClusterRole");
    assert_eq!(
        cluster_roles[0]["rules"],
        json!([
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "get", "update", "delete"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        ])
    );
}

#[test]
fn gc_is_off_by_default_and_in_node_mode() {
    for (values, set) in [
        ("cluster", &[][..]),
        ("node", &["gcIpTargets.enabled=true"][..]),
    ] {
        let rendered = template(CHART, values, set);
        assert!(
            !args(&rendered).iter().any(|a| a.starts_with("--gc-")),
            "{values}"
        );
        assert_eq!(
            rendered.all("ClusterRole")[0]["rules"],
            json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]}]),
            "{values}"
        );
    }
}

/// The daemon's command line as the rendered Deployment's pod runs it.
fn daemon_cli(rendered: &Rendered) -> Cli {
    daemon_support::daemon_cli(pod::workloads(rendered)[0])
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_rbac_allows_every_request_of_a_gc_run() {
    let rendered = template(
        CHART,
        "cluster",
        &["gcIpTargets.enabled=true", "gcIpTargets.grace=1s"],
    );
    let (_, namespace) = release(CHART);
    let service_account = pod::service_account(pod::workloads(&rendered)[0]);
    let grants = rbac::grants(&rendered, namespace, &service_account);
    let cli = daemon_cli(&rendered);
    let rules = StaticConfig::default();
    let mut settings = berth_daemon::wiring::settings(&cli, rules, None).unwrap();
    settings.gc.as_mut().expect("GC on").interval = Duration::from_millis(200);

    // A sidecar's record of a pod that is gone, and one of a pod that lives.
    let api = FakeApiServer::start().unwrap();
    let client = api.client();
    let groups = Arc::new(MemoryTargetGroups::default());
    let web = groups.add_group("web", TargetType::Ip, Some(80));
    let owner = Owner::for_installation(
        &cli.aws.installation_id.parse().unwrap(),
        OwnerMode::Sidecar,
    );
    for (name, ip) in [("gone", "10.0.3.1"), ("alive", "10.0.3.2")] {
        let pod = PodIdentity {
            namespace: "shop".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        };
        let target = Target::new(ip, 80);
        record_store(client.clone(), &pod, owner.clone())
            .claim(&web.arn, std::slice::from_ref(&target))
            .await
            .unwrap();
        groups
            .register(&web.arn, &[Registration::from(target)])
            .await
            .unwrap();
    }
    let alive: K8sPod = serde_json::from_value(json!({
        "metadata": {"name": "alive", "namespace": "shop"},
        "status": {"phase": "Running", "podIP": "10.0.3.2"},
    }))
    .unwrap();
    api.put(&alive);
    // The fake assigns UIDs: the live pod's record must carry the one it got.
    let uid = api
        .get::<K8sPod>(Some("shop"), "alive")
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let mut record: ConfigMap = api.get(Some("shop"), &record_name("uid-alive")).unwrap();
    record
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("berth.dev/pod-uid".into(), uid);
    api.put(&record);
    let before = api.resource_requests().len();

    let node_configurations = cli
        .cluster_id
        .is_some()
        .then(|| Arc::new(MemoryNodeConfigurations::default()) as Arc<dyn NodeConfigurations>);
    let dependencies = Dependencies {
        ownership: Arc::new(run::config_map_store(&client, &settings)),
        client,
        target_groups: groups.clone(),
        node_configurations,
        spot_notice: None,
    };
    let process = Arc::new(Process::detached("daemon"));
    let daemon = tokio::spawn({
        let process = process.clone();
        async move { run::run(dependencies, settings, &process).await }
    });
    let gone = Target::new("10.0.3.1", 80);
    until("the gone pod's target deregistered", || {
        groups
            .members(&web.arn)
            .get(&gone)
            .is_none_or(|s| s.is_draining())
    })
    .await;
    until("the gone pod's record deleted", || {
        api.get::<ConfigMap>(Some("shop"), &record_name("uid-gone"))
            .is_none()
    })
    .await;
    until("an Event on the gone pod", || {
        api.events()
            .iter()
            .any(|e| e.reason.as_deref() == Some("Deregistered"))
    })
    .await;
    process.shutdown.cancel();
    tokio::time::timeout(WITHIN, daemon)
        .await
        .expect("the daemon stops")
        .expect("the daemon's task")
        .expect("the daemon ran");
    assert!(
        groups
            .members(&web.arn)
            .get(&Target::new("10.0.3.2", 80))
            .is_some_and(|s| !s.is_draining()),
        "the live pod's target stays"
    );
    let requests = api.resource_requests().split_off(before);
    for verb in ["get", "list", "watch", "delete"] {
        assert!(
            requests.iter().any(|r| r.verb == verb),
            "the run made a {verb}: {requests:#?}"
        );
    }
    let denied = rbac::denied(&grants, &requests);
    assert!(
        denied.is_empty(),
        "the chart's RBAC refuses what the GC asked:\n  {}",
        denied
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}
