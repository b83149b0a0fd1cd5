//! `NodeTaints` against FakeApiServer: a taint is added once (one PATCH however often
//! asked), another writer's taints are kept, a concurrent change is retried, a missing
//! Node is an error (also for `current`, notice mode's start-up check); a removal takes
//! exactly the taints planned, once, and keeps a taint added meanwhile.

use berth_core::domain::{Taint, TaintEffect};
use berth_core::workflow::node_targets::TaintChange;
use berth_kube::fake::{ready_node, FakeApiServer};
use berth_kube::taints::NodeTaints;

fn missing(key: &'static str) -> impl Fn(&[Taint]) -> Vec<Taint> {
    move |current: &[Taint]| {
        if current.iter().any(|t| t.key == key) {
            Vec::new()
        } else {
            vec![Taint::new(key, TaintEffect::NoSchedule)]
        }
    }
}

fn patches(api: &FakeApiServer, node: &str) -> usize {
    let path = format!("PATCH /api/v1/nodes/{node}");
    api.requests()
        .iter()
        .filter(|r| r.starts_with(&path))
        .count()
}

fn taints(api: &FakeApiServer, node: &str) -> Vec<(String, String)> {
    api.node(node)
        .and_then(|n| n.spec)
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.effect))
        .collect()
}

#[tokio::test]
async fn a_taint_is_patched_once_and_other_taints_are_kept() {
    let api = FakeApiServer::start().expect("fake API server");
    let mut node = ready_node("n-1", "i-01", &[]);
    node.spec.get_or_insert_with(Default::default).taints =
        Some(vec![k8s_openapi::api::core::v1::Taint {
            key: "dedicated".into(),
            value: Some("web".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        }]);
    api.add_node(node);
    let taints_api = NodeTaints::new(api.client());

    let added = taints_api
        .add_missing("n-1", missing("berth.dev/spot-interruption"))
        .await
        .unwrap();
    assert_eq!(added.len(), 1);
    for _ in 0..5 {
        let added = taints_api
            .add_missing("n-1", missing("berth.dev/spot-interruption"))
            .await
            .unwrap();
        assert!(added.is_empty());
    }
    assert_eq!(patches(&api, "n-1"), 1, "{:?}", api.requests());
    assert_eq!(
        taints(&api, "n-1"),
        [
            ("dedicated".to_owned(), "NoSchedule".to_owned()),
            (
                "berth.dev/spot-interruption".to_owned(),
                "NoSchedule".to_owned()
            )
        ]
    );
    let dedicated = api.node("n-1").unwrap().spec.unwrap().taints.unwrap();
    assert_eq!(dedicated[0].value.as_deref(), Some("web"));
}

#[tokio::test]
async fn a_taint_added_meanwhile_by_another_writer_is_not_lost() {
    let api = FakeApiServer::start().expect("fake API server");
    api.add_node(ready_node("n-1", "i-01", &[]));
    let taints_api = NodeTaints::new(api.client());
    // Between our read and our patch, another writer taints the node: our patch carries
    // the old resourceVersion, is refused, and the next attempt keeps both taints.
    let raced = std::sync::atomic::AtomicBool::new(false);
    let added = taints_api
        .add_missing("n-1", |current: &[Taint]| {
            if !raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let mut node = api.node("n-1").unwrap();
                node.spec.get_or_insert_with(Default::default).taints =
                    Some(vec![k8s_openapi::api::core::v1::Taint {
                        key: "other".into(),
                        value: None,
                        effect: "NoExecute".into(),
                        time_added: None,
                    }]);
                api.update_node(node);
            }
            missing("berth.dev/rebalance-recommendation")(current)
        })
        .await
        .unwrap();
    assert_eq!(added.len(), 1);
    assert_eq!(patches(&api, "n-1"), 2, "one refused (409), one applied");
    let keys: Vec<String> = taints(&api, "n-1").into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["other", "berth.dev/rebalance-recommendation"]);
}

#[tokio::test]
async fn a_missing_node_is_an_error_and_nothing_is_written() {
    let api = FakeApiServer::start().expect("fake API server");
    let err = NodeTaints::new(api.client())
        .add_missing("gone", missing("berth.dev/spot-interruption"))
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), Some(404), "{err}");
    assert_eq!(patches(&api, "gone"), 0);
    let err = NodeTaints::new(api.client())
        .current("gone")
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), Some(404), "{err}");
    api.add_node(ready_node("gone", "i-01", &[]));
    let now = NodeTaints::new(api.client()).current("gone").await.unwrap();
    assert!(now.is_empty(), "{now:?}");
}

fn api_taint(key: &str, value: Option<&str>, effect: &str) -> k8s_openapi::api::core::v1::Taint {
    k8s_openapi::api::core::v1::Taint {
        key: key.into(),
        value: value.map(str::to_owned),
        effect: effect.into(),
        time_added: None,
    }
}

/// Removes every taint with `key` the node carries (as notice mode's plan does).
fn remove(key: &'static str) -> impl Fn(&[Taint]) -> TaintChange {
    move |current: &[Taint]| TaintChange {
        add: Vec::new(),
        remove: current.iter().filter(|t| t.key == key).cloned().collect(),
    }
}

#[tokio::test]
async fn a_planned_removal_takes_exactly_those_taints_once() {
    let api = FakeApiServer::start().expect("fake API server");
    let mut node = ready_node("n-1", "i-01", &[]);
    node.spec.get_or_insert_with(Default::default).taints = Some(vec![
        api_taint("dedicated", Some("web"), "NoSchedule"),
        api_taint("berth.dev/spot-interruption", None, "NoSchedule"),
        api_taint("berth.dev/spot-interruption", Some(""), "NoExecute"),
        api_taint(
            "berth.dev/rebalance-recommendation",
            None,
            "PreferNoSchedule",
        ),
    ]);
    api.add_node(node);
    let taints_api = NodeTaints::new(api.client());
    let change = taints_api
        .change("n-1", remove("berth.dev/spot-interruption"))
        .await
        .unwrap();
    assert_eq!(change.remove.len(), 2, "{change:?}");
    for _ in 0..3 {
        let again = taints_api
            .change("n-1", remove("berth.dev/spot-interruption"))
            .await
            .unwrap();
        assert!(again.is_empty(), "{again:?}");
    }
    assert_eq!(patches(&api, "n-1"), 1, "{:?}", api.requests());
    assert_eq!(
        taints(&api, "n-1"),
        [
            ("dedicated".to_owned(), "NoSchedule".to_owned()),
            (
                "berth.dev/rebalance-recommendation".to_owned(),
                "PreferNoSchedule".to_owned()
            )
        ]
    );
    // The last one goes too: the list is written empty.
    taints_api
        .change("n-1", |current: &[Taint]| TaintChange {
            add: Vec::new(),
            remove: current.to_vec(),
        })
        .await
        .unwrap();
    assert!(taints(&api, "n-1").is_empty());
}

#[tokio::test]
async fn a_removal_racing_another_writer_keeps_its_taint() {
    let api = FakeApiServer::start().expect("fake API server");
    let mut node = ready_node("n-1", "i-01", &[]);
    node.spec.get_or_insert_with(Default::default).taints = Some(vec![api_taint(
        "berth.dev/spot-interruption",
        None,
        "NoSchedule",
    )]);
    api.add_node(node);
    let taints_api = NodeTaints::new(api.client());
    let raced = std::sync::atomic::AtomicBool::new(false);
    let change = taints_api
        .change("n-1", |current: &[Taint]| {
            if !raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let mut node = api.node("n-1").unwrap();
                node.spec
                    .get_or_insert_with(Default::default)
                    .taints
                    .get_or_insert_with(Vec::new)
                    .push(api_taint("other", None, "NoExecute"));
                api.update_node(node);
            }
            remove("berth.dev/spot-interruption")(current)
        })
        .await
        .unwrap();
    assert_eq!(change.remove.len(), 1);
    assert_eq!(patches(&api, "n-1"), 2, "one refused (409), one applied");
    assert_eq!(
        taints(&api, "n-1"),
        [("other".to_owned(), "NoExecute".to_owned())]
    );
}
