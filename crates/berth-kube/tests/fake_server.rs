//! berth-kube against FakeApiServer: a real kube::Client doing real list/watch,
//! Lease elections between two candidates, concurrent ownership writers, Events.

use std::sync::Arc;
use std::time::Duration;

use berth_core::domain::{Owner, Target, TargetGroupArn};
use berth_core::provider::TargetOwnership;
use berth_kube::events::{EventRecorder, EventType};
use berth_kube::fake::{ready_node, FakeApiServer};
use berth_kube::leader::{LeaderElector, LeaseConfig};
use berth_kube::ownership::ConfigMapOwnership;
use berth_kube::watch::{watch_nodes, Labels, NodeChange, NodeScope};
use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;

type Changes = BoxStream<'static, Result<NodeChange, berth_kube::Error>>;

async fn next(changes: &mut Changes) -> NodeChange {
    tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .expect("a node change within 10 s")
        .expect("the stream does not end")
        .expect("no watch error")
}

fn server() -> FakeApiServer {
    FakeApiServer::start().expect("start the fake API server")
}

#[tokio::test]
async fn cluster_scope_lists_then_streams_changes() {
    let api = server();
    api.add_node(ready_node("n-1", "i-01", &[("pool", "a")]));
    api.add_node(ready_node("n-2", "i-02", &[]));
    let (cache, mut changes) = watch_nodes(api.client(), NodeScope::All, Labels::All);

    let NodeChange::Synced(nodes) = next(&mut changes).await else {
        panic!("the first change is the initial listing")
    };
    let mut names: Vec<_> = nodes.iter().map(|n| n.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["n-1", "n-2"]);
    assert_eq!(
        nodes[0].instance_id.as_ref().map(|i| i.as_str().to_owned()),
        Some("i-01".to_owned())
    );
    cache.wait_until_ready().await.unwrap();
    assert_eq!(cache.nodes().len(), 2);

    api.add_node(ready_node("n-3", "i-03", &[]));
    let NodeChange::Applied(n3) = next(&mut changes).await else {
        panic!("n-3 is applied")
    };
    assert_eq!(n3.name, "n-3");
    assert!(n3.ready);

    let mut cordoned = api.node("n-1").unwrap();
    cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
    api.update_node(cordoned);
    let NodeChange::Applied(n1) = next(&mut changes).await else {
        panic!("n-1 is applied")
    };
    assert!(n1.unschedulable);
    assert_eq!(n1.label("pool"), Some("a"));
    assert!(cache.get("n-1").unwrap().unschedulable);

    assert!(api.delete_node("n-2"));
    let NodeChange::Deleted(n2) = next(&mut changes).await else {
        panic!("n-2 is deleted")
    };
    assert_eq!(n2.name, "n-2");
    assert!(cache.get("n-2").is_none());
    assert_eq!(cache.nodes().len(), 2);
}

#[tokio::test]
async fn a_large_listing_arrives_in_pages_and_the_cache_keeps_only_the_labels_asked_for() {
    let api = server();
    for i in 0..1203 {
        api.add_node(ready_node(
            &format!("n-{i:04}"),
            &format!("i-{i:04}"),
            &[("pool", "a"), ("kubernetes.io/hostname", "h")],
        ));
    }
    let keep = Labels::Only(["pool".to_owned(), "absent".to_owned()].into());
    let (cache, mut changes) = watch_nodes(api.client(), NodeScope::All, keep);
    let NodeChange::Synced(nodes) = next(&mut changes).await else {
        panic!("the first change is the initial listing")
    };
    assert_eq!(nodes.len(), 1203);
    let lists: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /api/v1/nodes?") && !r.contains("watch=true"))
        .collect();
    assert_eq!(lists.len(), 13, "pages of 100: {lists:?}");
    assert!(lists.iter().all(|r| r.contains("limit=100")), "{lists:?}");
    assert!(
        lists[1..].iter().all(|r| r.contains("continue=")),
        "{lists:?}"
    );

    // A change after the listing still arrives, and the cache holds only the labels
    // asked for.
    api.add_node(ready_node("n-new", "i-new", &[]));
    let NodeChange::Applied(added) = next(&mut changes).await else {
        panic!("n-new is applied")
    };
    assert_eq!(added.name, "n-new");
    let cached = cache.get("n-0007").expect("cached");
    assert_eq!(
        cached.labels,
        [("pool".to_owned(), "a".to_owned())].into(),
        "only the labels asked for"
    );
    assert!(cached.ready);
    let all = cache.nodes();
    assert_eq!(all.len(), 1204);
    assert!(all.windows(2).all(|w| w[0].name < w[1].name), "by name");
}

#[tokio::test]
async fn node_scope_sees_only_its_node_via_a_field_selector() {
    let api = server();
    api.add_node(ready_node("n-1", "i-01", &[]));
    api.add_node(ready_node("n-2", "i-02", &[]));
    let (cache, mut changes) =
        watch_nodes(api.client(), NodeScope::Named("n-1".into()), Labels::All);
    let NodeChange::Synced(nodes) = next(&mut changes).await else {
        panic!("initial listing first")
    };
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].name, "n-1");

    // A change to another node is not seen; the next change is n-1's.
    api.update_node(ready_node("n-2", "i-02", &[("x", "y")]));
    api.update_node(ready_node("n-1", "i-01", &[("x", "y")]));
    let NodeChange::Applied(n) = next(&mut changes).await else {
        panic!("n-1 applied")
    };
    assert_eq!((n.name.as_str(), n.label("x")), ("n-1", Some("y")));
    assert_eq!(cache.nodes().len(), 1);
    let node_requests: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /api/v1/nodes?"))
        .collect();
    assert!(
        node_requests.len() >= 2,
        "a list and a watch: {node_requests:?}"
    );
    assert!(
        node_requests
            .iter()
            .all(|r| r.contains("fieldSelector=metadata.name%3Dn-1")),
        "every list/watch carried the field selector: {:?}",
        api.requests()
    );
}

#[tokio::test]
async fn a_dropped_watch_resumes_without_losing_changes() {
    let api = server();
    api.add_node(ready_node("n-1", "i-01", &[]));
    let (_cache, mut changes) = watch_nodes(api.client(), NodeScope::All, Labels::All);
    assert!(matches!(next(&mut changes).await, NodeChange::Synced(_)));
    // Poll the stream while waiting: the watch request is made when it is polled.
    let opened = tokio::select! {
        opened = api.wait_for_watches(1) => opened,
        change = changes.next() => panic!("unexpected change {change:?}"),
    };
    assert!(opened, "the watch opened: {:?}", api.requests());
    api.close_watches();
    api.add_node(ready_node("n-2", "i-02", &[]));
    let change = next(&mut changes).await;
    assert!(
        matches!(&change, NodeChange::Applied(n) if n.name == "n-2"),
        "resumed from the last resourceVersion, no re-list: {change:?}"
    );
    let lists = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/nodes?") && !r.contains("watch=true"))
        .count();
    assert_eq!(lists, 1, "{:?}", api.requests());
    let watches = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/nodes?") && r.contains("watch=true"))
        .count();
    assert_eq!(
        watches,
        2,
        "the closed watch was re-opened: {:?}",
        api.requests()
    );
}

fn candidate(api: &FakeApiServer, identity: &str) -> Arc<LeaderElector> {
    let mut config = LeaseConfig::new("kube-system", "berth-daemon", identity);
    config.lease_duration = Duration::from_secs(1);
    config.renew_deadline = Duration::from_millis(700);
    config.retry_period = Duration::from_millis(100);
    Arc::new(LeaderElector::new(api.client(), config))
}

#[tokio::test]
async fn one_leader_at_a_time_and_a_release_hands_over() {
    let api = server();
    let a = candidate(&api, "pod-a");
    let b = candidate(&api, "pod-b");
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    // a keeps renewing; b never gets it while a lives.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(a.try_acquire_or_renew().await.unwrap());
        assert!(!b.try_acquire_or_renew().await.unwrap());
    }
    a.release().await.unwrap();
    assert!(!a.is_leader());
    assert!(b.try_acquire_or_renew().await.unwrap());
    let lease: Lease = api.get(Some("kube-system"), "berth-daemon").unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("pod-b"));
    assert_eq!(spec.lease_transitions, Some(1));
}

#[tokio::test]
async fn a_crashed_leader_is_replaced_after_the_lease_expires() {
    let api = server();
    let a = candidate(&api, "pod-a");
    let b = candidate(&api, "pod-b");
    let mut b_changes = b.subscribe();
    assert!(a.try_acquire_or_renew().await.unwrap());
    drop(a); // crashed: no release, no renewal

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let b = b.clone();
        tokio::spawn(async move {
            b.run(async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let started = std::time::Instant::now();
    tokio::time::timeout(
        Duration::from_secs(5),
        b_changes.wait_for(|leading| *leading),
    )
    .await
    .expect("b leads within 5 s")
    .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "b waited out the 1 s lease ({:?})",
        started.elapsed()
    );
    let _ = stop.send(());
    runner.await.unwrap();
    // run() releases on shutdown.
    assert!(!b.is_leader());
    let lease: Lease = api.get(Some("kube-system"), "berth-daemon").unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity, None);
}

#[tokio::test]
async fn concurrent_ownership_writers_never_lose_claims_and_restart_remembers() {
    let api = server();
    let owner = Owner::new("berth/test/daemon").unwrap();
    let group = TargetGroupArn::new(
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/1a2b",
    )
    .unwrap();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let ownership = ConfigMapOwnership::new(api.client(), "berth", owner.clone());
            let group = group.clone();
            tokio::spawn(async move {
                ownership
                    .claim(&group, &[Target::new(format!("i-{i:02}"), 80)])
                    .await
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap().unwrap();
    }
    // A new instance (a restart, a new leader) reads the same ownership.
    let restarted = ConfigMapOwnership::new(api.client(), "berth", owner.clone());
    let owned = restarted.owned().await.unwrap();
    assert_eq!(owned[&group].len(), 8);
    restarted
        .release(&group, &[Target::new("i-03", 80)])
        .await
        .unwrap();
    let owned = restarted.owned().await.unwrap();
    assert_eq!(owned[&group].len(), 7);
    assert!(!owned[&group].contains(&Target::new("i-03", 80)));

    // Another owner sees nothing of ours.
    let other = ConfigMapOwnership::new(api.client(), "berth", Owner::new("someone/else").unwrap());
    assert!(other.owned().await.unwrap().is_empty());
}

#[tokio::test]
async fn records_of_an_adopted_earlier_owner_are_read_as_ours_and_moved_under_the_new_owner() {
    use berth_kube::ownership::OWNER_ANNOTATION;
    use k8s_openapi::api::core::v1::ConfigMap;

    let api = server();
    let old = Owner::new("berth-daemon/prod").unwrap();
    let new = Owner::new("berth/default/daemon").unwrap();
    let web = TargetGroupArn::new(
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/1a2b",
    )
    .unwrap();
    let api_group = TargetGroupArn::new(
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/api/3c4d",
    )
    .unwrap();
    let t = |i: u32| Target::new(format!("i-{i:02}"), 80);

    // Per-owner ConfigMaps (cluster mode): the old release recorded two groups.
    let before = ConfigMapOwnership::new(api.client(), "berth", old.clone());
    before.claim(&web, &[t(1), t(2)]).await.unwrap();
    before.claim(&api_group, &[t(3)]).await.unwrap();
    let old_name = ConfigMapOwnership::config_map_name(&old);
    let new_name = ConfigMapOwnership::config_map_name(&new);

    // Without adoption the new owner sees nothing: an upgrade would orphan them.
    let plain = ConfigMapOwnership::new(api.client(), "berth", new.clone());
    assert!(plain.owned().await.unwrap().is_empty());

    // Adopting: read as ours at once (a read writes nothing)...
    let after = ConfigMapOwnership::new(api.client(), "berth", new.clone()).adopting([old.clone()]);
    let owned = after.owned().await.unwrap();
    assert_eq!(owned[&web], [t(1), t(2)].into());
    assert_eq!(owned[&api_group], [t(3)].into());
    assert!(api.get::<ConfigMap>(Some("berth"), &new_name).is_none());
    // ...and moved under the new owner by the next write, the old ConfigMap retired.
    after.release(&web, &[t(2)]).await.unwrap();
    assert!(api.get::<ConfigMap>(Some("berth"), &old_name).is_none());
    let moved: ConfigMap = api.get(Some("berth"), &new_name).unwrap();
    assert_eq!(
        moved.metadata.annotations.unwrap()[OWNER_ANNOTATION],
        new.as_str()
    );
    let owned = plain.owned().await.unwrap();
    assert_eq!(owned[&web], [t(1)].into());
    assert_eq!(owned[&api_group], [t(3)].into());
    assert!(!after.adopt().await.unwrap(), "nothing left to adopt");

    // One ConfigMap of a fixed name (node mode): the annotation is rewritten by adopt().
    let before = ConfigMapOwnership::with_name(api.client(), "berth", "node-a", old.clone());
    before.claim(&web, &[t(7)]).await.unwrap();
    let refused = ConfigMapOwnership::with_name(api.client(), "berth", "node-a", new.clone());
    assert!(refused.owned().await.is_err(), "another owner's ConfigMap");
    let after = ConfigMapOwnership::with_name(api.client(), "berth", "node-a", new.clone())
        .adopting([old.clone()]);
    assert_eq!(after.owned().await.unwrap()[&web], [t(7)].into());
    assert!(after.adopt().await.unwrap());
    assert_eq!(refused.owned().await.unwrap()[&web], [t(7)].into());
    assert!(
        before.owned().await.is_err(),
        "the old owner no longer holds it"
    );
}

#[tokio::test]
async fn events_land_on_the_server() {
    let api = server();
    let recorder = EventRecorder::new(api.client(), "berth-daemon", None);
    recorder
        .publish(
            "n-1",
            EventType::Normal,
            "Registered",
            "RegisterTargets",
            "registered i-01:80 in web",
        )
        .await
        .unwrap();
    let events = api.events();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.reason.as_deref(), Some("Registered"));
    assert_eq!(event.note.as_deref(), Some("registered i-01:80 in web"));
    assert_eq!(
        event.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("n-1")
    );
}

#[tokio::test]
async fn repeated_events_fold_into_a_series() {
    let api = server();
    let recorder = EventRecorder::new(api.client(), "berth-daemon", None);
    for _ in 0..3 {
        recorder
            .publish(
                "n-1",
                EventType::Warning,
                "NoConfiguration",
                "Skip",
                "no label",
            )
            .await
            .unwrap();
    }
    let events = api.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].series.as_ref().map(|s| s.count), Some(3));
}

async fn registered(recorder: &EventRecorder, node: &str) {
    recorder
        .publish(
            node,
            EventType::Normal,
            "Registered",
            "RegisterTargets",
            "in web",
        )
        .await
        .expect("publish");
}

fn events_about(api: &FakeApiServer, node: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
    api.events()
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(node))
        .collect()
}

#[tokio::test]
async fn the_recorder_keeps_one_entry_per_series_and_a_repeat_of_a_deleted_event_starts_anew() {
    let api = server();
    let recorder = EventRecorder::new(api.client(), "berth-daemon", Some("pod-a".into()));
    for node in ["n-1", "n-2", "n-1"] {
        registered(&recorder, node).await;
    }
    assert_eq!(recorder.recent(), 2, "one entry per series, not per Event");
    assert_eq!(api.events().len(), 2);
    let first = events_about(&api, "n-1").remove(0);
    assert_eq!(first.series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(first.reporting_controller.as_deref(), Some("berth-daemon"));
    assert_eq!(first.reporting_instance.as_deref(), Some("pod-a"));
    assert_eq!(first.note.as_deref(), Some("in web"));

    // The API server drops Events after their TTL: a repeat then starts a new one.
    let first_name = first.metadata.name.clone().expect("a name");
    assert!(api.delete::<k8s_openapi::api::events::v1::Event>(Some("default"), &first_name));
    registered(&recorder, "n-1").await;
    let again = events_about(&api, "n-1");
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0].series.is_none(), "{again:?}");
    assert_ne!(again[0].metadata.name.as_deref(), Some(first_name.as_str()));
    registered(&recorder, "n-1").await;
    assert_eq!(
        events_about(&api, "n-1")[0]
            .series
            .as_ref()
            .map(|s| s.count),
        Some(2),
        "the new Event is the one repeats fold into"
    );
}

#[tokio::test]
async fn the_written_kubeconfig_reaches_the_server() {
    let api = server();
    api.add_node(ready_node("n-1", "i-01", &[]));
    let path =
        std::env::temp_dir().join(format!("berth-kube-test-{}.kubeconfig", std::process::id()));
    api.write_kubeconfig(&path).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
    let list = nodes.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());
}

#[tokio::test]
async fn selectors_are_honoured_or_refused_never_ignored() {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, ListParams};

    let api = server();
    api.add_node(ready_node("n-1", "i-01", &[("pool", "a")]));
    api.add_node(ready_node("n-2", "i-02", &[("pool", "b")]));
    api.add_node(ready_node("n-3", "i-03", &[]));
    let nodes: Api<Node> = Api::all(api.client());
    let names = |list: kube::core::ObjectList<Node>| {
        list.items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect::<Vec<_>>()
    };
    let by = |labels: &'static str| {
        let nodes = nodes.clone();
        async move { nodes.list(&ListParams::default().labels(labels)).await }
    };
    assert_eq!(names(by("pool=a").await.unwrap()), ["n-1"]);
    assert_eq!(names(by("pool!=a").await.unwrap()), ["n-2", "n-3"]);
    assert_eq!(names(by("pool").await.unwrap()), ["n-1", "n-2"]);
    assert_eq!(names(by("!pool").await.unwrap()), ["n-3"]);
    let err = by("pool in (a,b)").await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 400),
        "{err}"
    );
    let err = nodes
        .list(&ListParams::default().fields("spec.unschedulable=true"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 400),
        "{err}"
    );
}

#[tokio::test]
async fn an_expired_watch_relists_and_the_listing_shows_missed_deletions() {
    let api = server();
    api.add_node(ready_node("n-1", "i-01", &[]));
    api.add_node(ready_node("n-2", "i-02", &[]));
    let (cache, mut changes) = watch_nodes(api.client(), NodeScope::All, Labels::All);
    assert!(matches!(next(&mut changes).await, NodeChange::Synced(n) if n.len() == 2));
    let opened = tokio::select! {
        opened = api.wait_for_watches(1) => opened,
        change = changes.next() => panic!("unexpected change {change:?}"),
    };
    assert!(opened);
    // The watch drops, n-1 goes away meanwhile, and the history is compacted.
    api.close_watches();
    assert!(api.delete_node("n-1"));
    api.compact();
    loop {
        match next_item(&mut changes).await {
            // The watcher reports the 410 and re-lists.
            Err(_) => continue,
            Ok(NodeChange::Synced(nodes)) => {
                let names: Vec<_> = nodes.iter().map(|n| n.name.as_str()).collect();
                assert_eq!(names, ["n-2"]);
                break;
            }
            Ok(other) => panic!("expected a fresh listing, got {other:?}"),
        }
    }
    assert!(cache.get("n-1").is_none());
}

async fn next_item(changes: &mut Changes) -> Result<NodeChange, berth_kube::Error> {
    tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .expect("a node change within 10 s")
        .expect("the stream does not end")
}

#[tokio::test]
async fn status_subresource_kinds_and_pod_logs_behave_as_a_real_api_server() {
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::{Pod, Secret};
    use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

    let api = server();
    let client = api.client();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "ns");
    let job: Job = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "run-1", "labels": {"app": "x"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    // Status writes go through /status and change nothing else.
    let patch = serde_json::json!({
        "metadata": {"labels": {"app": "changed"}},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]}
    });
    let written = jobs
        .patch_status("run-1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(written.metadata.labels.unwrap()["app"], "x");
    let conditions = written.status.unwrap().conditions.unwrap();
    assert_eq!(conditions[0].type_, "Complete");
    let mut replaced = jobs.get_status("run-1").await.unwrap();
    replaced.status.as_mut().unwrap().active = Some(0);
    let replaced = jobs
        .replace_status("run-1", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(replaced.status.unwrap().active, Some(0));

    // Stored objects carry apiVersion and kind, lists are typed, as Terraform's
    // unstructured client needs.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "ns");
    let mut secret = Secret::default();
    secret.metadata.name = Some("tfstate-default-x".into());
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let raw = client
        .request_text(
            http::Request::get("/api/v1/namespaces/ns/secrets")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(list["kind"], "SecretList");
    assert_eq!(list["items"][0]["kind"], "Secret");
    assert_eq!(list["items"][0]["apiVersion"], "v1");
    assert_eq!(
        secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // pods/<name>/log answers what the kubelet (the test) set.
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let mut pod = Pod::default();
    pod.metadata.name = Some("run-1-abcde".into());
    pods.create(&PostParams::default(), &pod).await.unwrap();
    api.set_pod_log("ns", "run-1-abcde", "Apply complete!\n");
    let log = pods.logs("run-1-abcde", &Default::default()).await.unwrap();
    assert_eq!(log, "Apply complete!\n");
    assert!(pods.logs("missing", &Default::default()).await.is_err());
}

#[tokio::test]
async fn requests_sent_to_a_clients_url_are_recorded_as_that_clients() {
    use kube::api::{Api, ListParams};
    let api = server();
    api.add_node(ready_node("n-1", "i-01", &[]));
    let config = kube::Config::new(api.url_as("runner").parse().unwrap());
    let runner = kube::Client::try_from(config).unwrap();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(runner);
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let _ = Api::<k8s_openapi::api::core::v1::Node>::all(api.client())
        .get("n-1")
        .await
        .unwrap();
    let of_runner: Vec<String> = api
        .resource_requests_of("runner")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(of_runner, ["list core/nodes (cluster-wide)"]);
    assert_eq!(
        api.resource_requests().len(),
        2,
        "both are served and recorded"
    );
}
