//! IP target GC with a stale pod watch: the daemon's controller (embedded, cluster mode,
//! `--gc-ip-targets` with a short grace) over berth-core's in-memory target groups and
//! berth-kube's fake API server. Once the pod list is in, pod lists and watches are
//! refused: a pod created afterwards, whose sidecar recorded its IP, is missing from
//! the cache. GC must ask the API server before removing anything: the live pod's
//! target stays for many graces; deleted, it is collected.

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth_core::domain::{
    InstallationId, Mode as OwnerMode, Owner, Registration, Target, TargetType,
};
use berth_core::memory::MemoryTargetGroups;
use berth_core::plan::PodIdentity;
use berth_core::provider::{TargetGroups as _, TargetOwnership as _};
use berth_daemon::cli::Mode;
use berth_daemon::gc::GcSettings;
use berth_daemon::run::{self, Dependencies, Settings};
use berth_daemon::static_config::StaticConfig;
use berth_kube::fake::{FakeApiServer, Fault};
use berth_kube::sidecar_records::{record_name, record_store};
use berth_runtime::Process;
use common::until;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};

const GRACE: Duration = Duration::from_millis(500);

fn gc_passes(process: &Process) -> u64 {
    process
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("berth_daemon_ip_target_gc_passes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_the_watch_missed_keeps_its_target_until_the_api_server_says_it_is_gone() {
    let api = FakeApiServer::start().unwrap();
    let client = api.client();
    let groups = Arc::new(MemoryTargetGroups::default());
    let web = groups.add_group("web", TargetType::Ip, Some(80)).arn;

    let mut settings = Settings::new(Mode::Cluster, StaticConfig::default());
    let mut gc = GcSettings::new(&InstallationId::default(), GRACE);
    gc.interval = Duration::from_millis(100);
    settings.gc = Some(gc);
    let dependencies = Dependencies {
        ownership: run::config_map_ownership(&client, &settings),
        client: client.clone(),
        target_groups: groups.clone(),
        node_configurations: None,
        spot_notice: None,
    };
    let process = Arc::new(Process::detached("daemon"));
    let daemon = tokio::spawn({
        let process = process.clone();
        async move { run::run(dependencies, settings, &process).await }
    });
    until("a first GC pass", || gc_passes(&process) > 0).await;

    // From now on the pod watch sees nothing: its list and watch are refused.
    api.inject(Fault::new("GET", "/api/v1/pods").status(503));
    api.close_watches();

    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "late", "namespace": "shop"},
        "status": {"phase": "Running", "podIP": "10.0.4.1"},
    }))
    .unwrap();
    api.put(&pod);
    let uid = api
        .get::<Pod>(Some("shop"), "late")
        .and_then(|p| p.metadata.uid)
        .unwrap();
    let identity = PodIdentity {
        namespace: "shop".into(),
        name: "late".into(),
        uid: uid.clone(),
    };
    let target = Target::new("10.0.4.1", 80);
    let owner = Owner::for_installation(&InstallationId::default(), OwnerMode::Sidecar);
    record_store(client.clone(), &identity, owner)
        .claim(&web, std::slice::from_ref(&target))
        .await
        .unwrap();
    groups
        .register(&web, &[Registration::from(target.clone())])
        .await
        .unwrap();

    // Many graces and passes later, the live pod's target is still there.
    let passes = gc_passes(&process);
    until("ten more GC passes", || gc_passes(&process) >= passes + 10).await;
    tokio::time::sleep(GRACE * 2).await;
    assert!(
        groups
            .members(&web)
            .get(&target)
            .is_some_and(|s| !s.is_draining()),
        "a running pod's target was removed on a stale cache"
    );
    assert!(api
        .get::<ConfigMap>(Some("shop"), &record_name(&uid))
        .is_some());

    // Gone for real (the cache still cannot tell): collected.
    assert!(api.delete::<Pod>(Some("shop"), "late"));
    until("the gone pod's target deregistered", || {
        groups
            .members(&web)
            .get(&target)
            .is_none_or(|s| s.is_draining())
    })
    .await;
    until("its record deleted", || {
        api.get::<ConfigMap>(Some("shop"), &record_name(&uid))
            .is_none()
    })
    .await;

    process.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), daemon)
        .await
        .expect("the daemon stops")
        .expect("the daemon's task")
        .expect("the daemon ran");
}
