//! Exact request contracts with the API server, over `tower_test::mock::pair`:
//! Lease acquire/renew/takeover/release, the Event POST, ConfigMap compare-and-swap.

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth_core::domain::{Owner, Target, TargetGroupArn};
use berth_core::provider::TargetOwnership;
use berth_kube::events::{EventRecorder, EventType};
use berth_kube::leader::{LeaderElector, LeaseConfig};
use berth_kube::ownership::{encode_group, ConfigMapOwnership, OWNER_ANNOTATION};
use common::{expect, mock_client, status};
use serde_json::{json, Value};

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/berth-daemon";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";

fn lease(holder: Option<&str>, rv: &str, duration: i32, transitions: i32) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "berth-daemon", "namespace": "kube-system", "resourceVersion": rv},
        "spec": {
            "holderIdentity": holder, "leaseDurationSeconds": duration,
            "acquireTime": "2024-05-01T10:00:00.000000Z", "renewTime": "2024-05-01T10:00:00.000000Z",
            "leaseTransitions": transitions
        }
    })
}

fn elector(client: kube::Client) -> Arc<LeaderElector> {
    Arc::new(LeaderElector::new(
        client,
        LeaseConfig::new("kube-system", "berth-daemon", "pod-a"),
    ))
}

/// Runs one round in the background, so the test can answer its requests.
fn round(e: &Arc<LeaderElector>) -> tokio::task::JoinHandle<Result<bool, berth_kube::Error>> {
    let e = e.clone();
    tokio::spawn(async move { e.try_acquire_or_renew().await })
}

#[tokio::test]
async fn acquires_a_missing_lease_by_creating_it() {
    let (client, mut api) = mock_client();
    let e = elector(client);
    let mut changes = e.subscribe();
    let task = round(&e);
    expect(&mut api, "GET", LEASE, 404, status(404, "NotFound")).await;
    let created = expect(
        &mut api,
        "POST",
        LEASES,
        201,
        lease(Some("pod-a"), "1", 15, 0),
    )
    .await;
    assert!(task.await.unwrap().unwrap());
    let spec = &created.body["spec"];
    assert_eq!(created.body["metadata"]["name"], "berth-daemon");
    assert_eq!(spec["holderIdentity"], "pod-a");
    assert_eq!(spec["leaseDurationSeconds"], 15);
    assert_eq!(spec["leaseTransitions"], 0);
    assert!(spec["renewTime"].is_string() && spec["acquireTime"].is_string());
    assert!(e.is_leader());
    assert!(changes.has_changed().unwrap());
    assert!(*changes.borrow_and_update());
}

#[tokio::test]
async fn renews_its_own_lease_carrying_the_resource_version_it_read() {
    let (client, mut api) = mock_client();
    let e = elector(client);
    let task = round(&e);
    expect(
        &mut api,
        "GET",
        LEASE,
        200,
        lease(Some("pod-a"), "7", 15, 3),
    )
    .await;
    let put = expect(
        &mut api,
        "PUT",
        LEASE,
        200,
        lease(Some("pod-a"), "8", 15, 3),
    )
    .await;
    assert!(task.await.unwrap().unwrap());
    assert_eq!(put.body["metadata"]["resourceVersion"], "7");
    assert_eq!(put.body["spec"]["holderIdentity"], "pod-a");
    assert_eq!(
        put.body["spec"]["leaseTransitions"], 3,
        "a renewal is no transition"
    );
    assert_ne!(put.body["spec"]["renewTime"], "2024-05-01T10:00:00.000000Z");
    assert_eq!(
        put.body["spec"]["acquireTime"], "2024-05-01T10:00:00.000000Z",
        "acquireTime is kept on renewal"
    );
}

#[tokio::test]
async fn waits_out_a_live_holder_then_takes_over_after_expiry() {
    let (client, mut api) = mock_client();
    let e = elector(client);

    // Held by pod-b: no write, not leader.
    let task = round(&e);
    expect(&mut api, "GET", LEASE, 200, lease(Some("pod-b"), "9", 1, 4)).await;
    assert!(!task.await.unwrap().unwrap());

    // pod-b renews (new resourceVersion): the expiry clock restarts.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let task = round(&e);
    expect(
        &mut api,
        "GET",
        LEASE,
        200,
        lease(Some("pod-b"), "10", 1, 4),
    )
    .await;
    assert!(!task.await.unwrap().unwrap());

    // Unchanged for longer than its 1 s duration: take it over, CAS on "10".
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let task = round(&e);
    expect(
        &mut api,
        "GET",
        LEASE,
        200,
        lease(Some("pod-b"), "10", 1, 4),
    )
    .await;
    let put = expect(
        &mut api,
        "PUT",
        LEASE,
        200,
        lease(Some("pod-a"), "11", 15, 5),
    )
    .await;
    assert!(task.await.unwrap().unwrap());
    assert_eq!(put.body["metadata"]["resourceVersion"], "10");
    assert_eq!(put.body["spec"]["holderIdentity"], "pod-a");
    assert_eq!(put.body["spec"]["leaseTransitions"], 5);
    assert_eq!(put.body["spec"]["leaseDurationSeconds"], 15);
    assert!(e.is_leader());
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once_and_lost_races_are_not_leadership() {
    let (client, mut api) = mock_client();
    let e = elector(client);

    // Released (holder cleared): no need to wait. But another candidate wins the CAS.
    let task = round(&e);
    expect(&mut api, "GET", LEASE, 200, lease(None, "3", 1, 1)).await;
    expect(&mut api, "PUT", LEASE, 409, status(409, "Conflict")).await;
    assert!(!task.await.unwrap().unwrap());
    assert!(!e.is_leader());

    // Creation race: someone created it between our GET and POST.
    let task = round(&e);
    expect(&mut api, "GET", LEASE, 404, status(404, "NotFound")).await;
    expect(&mut api, "POST", LEASES, 409, status(409, "AlreadyExists")).await;
    assert!(!task.await.unwrap().unwrap());
}

#[tokio::test]
async fn release_clears_the_holder_and_steps_down() {
    let (client, mut api) = mock_client();
    let e = elector(client);
    let mut changes = e.subscribe();
    let task = round(&e);
    expect(
        &mut api,
        "GET",
        LEASE,
        200,
        lease(Some("pod-a"), "7", 15, 0),
    )
    .await;
    expect(
        &mut api,
        "PUT",
        LEASE,
        200,
        lease(Some("pod-a"), "8", 15, 0),
    )
    .await;
    assert!(task.await.unwrap().unwrap());
    changes.borrow_and_update();

    let task = {
        let e = e.clone();
        tokio::spawn(async move { e.release().await })
    };
    expect(
        &mut api,
        "GET",
        LEASE,
        200,
        lease(Some("pod-a"), "8", 15, 0),
    )
    .await;
    let put = expect(&mut api, "PUT", LEASE, 200, lease(None, "9", 1, 0)).await;
    task.await.unwrap().unwrap();
    assert!(put.body["spec"]["holderIdentity"].is_null());
    assert_eq!(put.body["spec"]["leaseDurationSeconds"], 1);
    assert_eq!(put.body["metadata"]["resourceVersion"], "8");
    assert!(!e.is_leader());
    assert!(changes.has_changed().unwrap() && !*changes.borrow());
}

// Paused time: the elector's clock (tokio's) moves only with the sleeps, so the first
// failed renewal is within the 300 ms deadline however loaded the machine is.
#[tokio::test(start_paused = true)]
async fn api_errors_keep_leadership_until_the_renew_deadline() {
    let (client, mut api) = mock_client();
    let mut config = LeaseConfig::new("kube-system", "berth-daemon", "pod-a");
    config.renew_deadline = Duration::from_millis(300);
    let e = Arc::new(LeaderElector::new(client, config));
    let task = round(&e);
    expect(
        &mut api,
        "GET",
        LEASE,
        200,
        lease(Some("pod-a"), "7", 15, 0),
    )
    .await;
    expect(
        &mut api,
        "PUT",
        LEASE,
        200,
        lease(Some("pod-a"), "8", 15, 0),
    )
    .await;
    assert!(task.await.unwrap().unwrap());

    let task = round(&e);
    expect(&mut api, "GET", LEASE, 500, status(500, "InternalError")).await;
    let err = task.await.unwrap().unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        e.is_leader(),
        "one failed renewal within the deadline keeps leadership"
    );

    tokio::time::sleep(Duration::from_millis(350)).await;
    let task = round(&e);
    expect(&mut api, "GET", LEASE, 500, status(500, "InternalError")).await;
    assert!(task.await.unwrap().is_err());
    assert!(
        !e.is_leader(),
        "past the renew deadline the leader steps down"
    );
}

#[tokio::test]
async fn node_events_are_posted_with_a_node_reference() {
    let (client, mut api) = mock_client();
    let recorder = Arc::new(EventRecorder::new(
        client,
        "berth-daemon",
        Some("pod-a".into()),
    ));
    let task = {
        let r = recorder.clone();
        tokio::spawn(async move {
            r.publish(
                "ip-10-0-0-1",
                EventType::Warning,
                "DeregisterFailed",
                "DeregisterTargets",
                "access denied: elasticloadbalancing:DeregisterTargets",
            )
            .await
        })
    };
    let post = expect(
        &mut api,
        "POST",
        "/apis/events.k8s.io/v1/namespaces/default/events",
        201,
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "x", "namespace": "default"}, "eventTime": "2024-05-01T10:00:00.000000Z"}),
    )
    .await;
    task.await.unwrap().unwrap();
    let body = post.body;
    assert_eq!(body["type"], "Warning");
    assert_eq!(body["reason"], "DeregisterFailed");
    assert_eq!(body["action"], "DeregisterTargets");
    assert_eq!(
        body["note"],
        "access denied: elasticloadbalancing:DeregisterTargets"
    );
    assert_eq!(body["reportingController"], "berth-daemon");
    assert_eq!(body["reportingInstance"], "pod-a");
    assert_eq!(
        body["regarding"],
        json!({"apiVersion": "v1", "kind": "Node", "name": "ip-10-0-0-1", "uid": "ip-10-0-0-1"})
    );
}

const GROUP_A: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/a/1";
const GROUP_B: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/b/2";

fn config_map(name: &str, rv: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "berth", "resourceVersion": rv,
                     "annotations": {OWNER_ANNOTATION: "berth/test/daemon"}},
        "data": data
    })
}

#[tokio::test]
async fn ownership_claims_create_then_retry_on_a_cas_conflict() {
    let (client, mut api) = mock_client();
    let owner = Owner::new("berth/test/daemon").unwrap();
    let name = ConfigMapOwnership::config_map_name(&owner);
    let path = format!("/api/v1/namespaces/berth/configmaps/{name}");
    let ownership = Arc::new(ConfigMapOwnership::new(client, "berth", owner));
    let a = TargetGroupArn::new(GROUP_A).unwrap();
    let b = TargetGroupArn::new(GROUP_B).unwrap();
    let (key_a, key_b) = (encode_group(&a), encode_group(&b));

    // First claim: no ConfigMap yet → created with the owner annotation.
    let task = {
        let (o, a) = (ownership.clone(), a.clone());
        tokio::spawn(async move { o.claim(&a, &[Target::new("i-1", 80)]).await })
    };
    expect(&mut api, "GET", &path, 404, status(404, "NotFound")).await;
    let post = expect(
        &mut api,
        "POST",
        "/api/v1/namespaces/berth/configmaps",
        201,
        config_map(&name, "1", json!({key_a.clone(): "i-1:80"})),
    )
    .await;
    task.await.unwrap().unwrap();
    assert_eq!(post.body["metadata"]["name"], name.as_str());
    assert_eq!(
        post.body["metadata"]["annotations"][OWNER_ANNOTATION],
        "berth/test/daemon"
    );
    assert_eq!(post.body["data"], json!({key_a.clone(): "i-1:80"}));

    // Second claim loses a race: PUT 409, re-read (someone added group B), PUT again.
    let task = {
        let o = ownership.clone();
        tokio::spawn(async move {
            o.claim(&a, &[Target::new("i-2", 80), Target::new("i-1", 80)])
                .await
        })
    };
    expect(
        &mut api,
        "GET",
        &path,
        200,
        config_map(&name, "1", json!({key_a.clone(): "i-1:80"})),
    )
    .await;
    let first = expect(&mut api, "PUT", &path, 409, status(409, "Conflict")).await;
    assert_eq!(first.body["metadata"]["resourceVersion"], "1");
    expect(
        &mut api,
        "GET",
        &path,
        200,
        config_map(
            &name,
            "2",
            json!({key_a.clone(): "i-1:80", key_b.clone(): "i-9:443"}),
        ),
    )
    .await;
    let second = expect(
        &mut api,
        "PUT",
        &path,
        200,
        config_map(&name, "3", json!({})),
    )
    .await;
    task.await.unwrap().unwrap();
    assert_eq!(second.body["metadata"]["resourceVersion"], "2");
    assert_eq!(
        second.body["data"],
        json!({key_a: "i-1:80 i-2:80", key_b.clone(): "i-9:443"}),
        "the other writer's group is kept"
    );

    // Releasing the last target of a group removes its key.
    let task = {
        let o = ownership.clone();
        tokio::spawn(async move { o.release(&b, &[Target::new("i-9", 443)]).await })
    };
    expect(
        &mut api,
        "GET",
        &path,
        200,
        config_map(&name, "3", json!({key_b: "i-9:443"})),
    )
    .await;
    let put = expect(
        &mut api,
        "PUT",
        &path,
        200,
        config_map(&name, "4", json!({})),
    )
    .await;
    task.await.unwrap().unwrap();
    assert_eq!(put.body["data"], json!({}));
}

#[tokio::test]
async fn a_config_map_of_another_owner_is_refused() {
    let (client, mut api) = mock_client();
    let owner = Owner::new("berth/other/daemon").unwrap();
    let name = ConfigMapOwnership::config_map_name(&owner);
    let path = format!("/api/v1/namespaces/berth/configmaps/{name}");
    let ownership = Arc::new(ConfigMapOwnership::new(client, "berth", owner));
    let task = {
        let o = ownership.clone();
        tokio::spawn(async move { o.owned().await })
    };
    // The annotation names berth/test/daemon, not berth/other/daemon.
    expect(
        &mut api,
        "GET",
        &path,
        200,
        config_map(&name, "1", json!({})),
    )
    .await;
    let err = task.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("belongs to owner"), "{err}");
}
