//! IP target GC end to end (issue #14, "Sidecars that die without saying goodbye"):
//! four compiled sidecars register their pod IPs (recording each registration in
//! their pod's ConfigMap on berth-kube's fake API server); the daemon's cluster-mode
//! controller runs with `--gc-ip-targets` (embedded through `berth_daemon::run::run`,
//! over real ELBv2 calls to moto). Two sidecars are SIGKILLed and their pods deleted:
//! after the grace their IPs leave the group and their records are gone; the other two
//! stay, and so does a target berth never registered. The survivors then stop with
//! SIGTERM and delete their own records.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use berth_aws::elbv2::ElbTargetGroups;
use berth_aws::CallCounter;
use berth_core::domain::InstallationId;
use berth_daemon::cli::Mode;
use berth_daemon::gc::GcSettings;
use berth_daemon::run::{self, Dependencies, Settings};
use berth_daemon::static_config::StaticConfig;
use berth_kube::fake::FakeApiServer;
use berth_kube::sidecar_records::{record_name, POD_UID_ANNOTATION, RECORD_LABEL};
use berth_runtime::Process;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use support::{eventually, Sidecar, Stage};

const NAMESPACE: &str = "shop";
const FOREIGN: &str = "10.0.9.9:80";
const GRACE: Duration = Duration::from_secs(2);

/// A running pod with this IP; returns its UID (the fake API server assigns it).
fn add_pod(kube: &FakeApiServer, name: &str, ip: &str) -> String {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "app", "image": "app"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }))
    .expect("a Pod");
    kube.put(&pod);
    kube.get::<Pod>(Some(NAMESPACE), name)
        .and_then(|p| p.metadata.uid)
        .expect("a UID")
}

/// The UIDs of the pods whose sidecar records exist.
fn recorded_uids(kube: &FakeApiServer) -> BTreeSet<String> {
    kube.list::<ConfigMap>(Some(NAMESPACE))
        .into_iter()
        .filter(|m| {
            m.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(RECORD_LABEL.0))
                .is_some_and(|v| v == RECORD_LABEL.1)
        })
        .filter_map(|m| m.metadata.annotations?.get(POD_UID_ANNOTATION).cloned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_targets_of_killed_sidecars_whose_pods_are_gone_are_collected_and_nothing_else() {
    let stage = Stage::start().await;
    let endpoint = stage.moto.endpoint();
    let web = stage.groups.web.clone();
    let kube = FakeApiServer::start().expect("fake Kubernetes API server");
    let dir: PathBuf =
        std::env::temp_dir().join(format!("berth-sidecar-gc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).expect("kubeconfig");

    // Someone else's target in the same group: berth must never touch it.
    stage
        .groups
        .elb
        .register_targets()
        .target_group_arn(&web)
        .targets(TargetDescription::builder().id("10.0.9.9").port(80).build())
        .send()
        .await
        .expect("RegisterTargets");

    let mut sidecars = Vec::new();
    let mut uids = Vec::new();
    for i in 0..4 {
        let (name, ip) = (format!("web-{i}"), format!("10.0.3.{}", i + 1));
        let uid = add_pod(&kube, &name, &ip);
        let mut cmd = Sidecar::command(&endpoint);
        cmd.env("POD_IP", &ip)
            .env("POD_NAMESPACE", NAMESPACE)
            .env("POD_NAME", &name)
            .env("POD_UID", &uid)
            .env("KUBECONFIG", &kubeconfig)
            .args(["-target-group-name", "web", "-wait-in-service=false"]);
        sidecars.push(Sidecar::spawn(cmd));
        uids.push(uid);
    }
    for sidecar in &mut sidecars {
        sidecar.until_ready(Duration::from_secs(60)).await;
    }
    let all = set(&[
        "10.0.3.1:80",
        "10.0.3.2:80",
        "10.0.3.3:80",
        "10.0.3.4:80",
        FOREIGN,
    ]);
    assert_eq!(
        stage
            .groups
            .targets(&web)
            .await
            .into_iter()
            .collect::<BTreeSet<_>>(),
        all
    );
    assert_eq!(
        recorded_uids(&kube),
        uids.iter().cloned().collect(),
        "every sidecar recorded its registration with its pod's UID"
    );
    let record: ConfigMap = kube
        .get(Some(NAMESPACE), &record_name(&uids[0]))
        .expect("web-0's record");
    assert_eq!(
        record
            .data
            .unwrap_or_default()
            .values()
            .cloned()
            .collect::<Vec<_>>(),
        vec!["10.0.3.1:80".to_owned()]
    );

    // The daemon, cluster mode, GC on (short grace), no node rules at all.
    let mut settings = Settings::new(Mode::Cluster, StaticConfig::default());
    settings.namespace = "berth".into();
    let mut gc = GcSettings::new(&InstallationId::default(), GRACE);
    gc.interval = Duration::from_millis(500);
    gc.drain_bound = Duration::from_secs(30);
    settings.gc = Some(gc);
    let client = kube.client();
    let dependencies = Dependencies {
        ownership: run::config_map_ownership(&client, &settings),
        client,
        target_groups: Arc::new(ElbTargetGroups::new(
            &berth_testing::sdk_config(&endpoint),
            CallCounter::new(),
        )),
        node_configurations: None,
        spot_notice: None,
    };
    let process = Process::detached("daemon");
    let (shutdown, metrics) = (process.shutdown.clone(), process.metrics.clone());
    let daemon = tokio::spawn(async move { run::run(dependencies, settings, &process).await });

    // Nothing is collected while every pod lives.
    tokio::time::sleep(GRACE * 2).await;
    assert_eq!(
        stage
            .groups
            .targets(&web)
            .await
            .into_iter()
            .collect::<BTreeSet<_>>(),
        all,
        "live pods' targets are never collected"
    );

    // Two sidecars die without deregistering; their pods go.
    for (i, sidecar) in sidecars[..2].iter_mut().enumerate() {
        sidecar.kill_hard();
        let _ = sidecar.wait(Duration::from_secs(10)).await;
        assert!(kube.delete::<Pod>(Some(NAMESPACE), &format!("web-{i}")));
    }
    assert!(
        stage
            .groups
            .targets(&web)
            .await
            .contains(&"10.0.3.1:80".to_owned()),
        "SIGKILL left the IP registered"
    );
    let survivors = set(&["10.0.3.3:80", "10.0.3.4:80", FOREIGN]);
    eventually(
        "the gone pods' IPs leave the group",
        Duration::from_secs(60),
        async || {
            stage
                .groups
                .targets(&web)
                .await
                .into_iter()
                .collect::<BTreeSet<_>>()
                == survivors
        },
    )
    .await;
    eventually(
        "the gone pods' records are deleted",
        Duration::from_secs(30),
        async || recorded_uids(&kube) == uids[2..].iter().cloned().collect(),
    )
    .await;

    // Events and metrics follow a pass's actions (they are published from its report,
    // after the records are deleted), so they are waited for, not read at once.
    let deregistered_events = || -> BTreeSet<String> {
        kube.events()
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("Deregistered"))
            .filter_map(|e| e.regarding?.name)
            .collect()
    };
    let gc_line = r#"berth_daemon_ip_target_gc_actions_total{action="deregister",result="ok"} 2"#;
    eventually(
        "an Event on each gone pod, and the GC metric counts both",
        Duration::from_secs(30),
        async || {
            deregistered_events() == set(&["web-0", "web-1"]) && metrics.render().contains(gc_line)
        },
    )
    .await;

    // The survivors stop cleanly: they deregister and delete their own records.
    for sidecar in &mut sidecars[2..] {
        sidecar.terminate();
        assert!(
            sidecar.wait(Duration::from_secs(60)).await.success(),
            "{}",
            sidecar.stderr()
        );
    }
    assert_eq!(
        stage
            .groups
            .targets(&web)
            .await
            .into_iter()
            .collect::<BTreeSet<_>>(),
        set(&[FOREIGN])
    );
    assert!(
        recorded_uids(&kube).is_empty(),
        "records left: {:?}",
        recorded_uids(&kube)
    );

    shutdown.cancel();
    daemon
        .await
        .expect("the daemon task")
        .expect("the daemon ran");
    let _ = std::fs::remove_dir_all(&dir);
}
