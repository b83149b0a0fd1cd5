//! A target removed behind the sidecar's back (an operator, the daemon's IP target
//! GC) before the signal: the exit is clean, and the log and metrics say "already
//! absent", not "deregistered".

use super::*;

#[tokio::test]
async fn a_target_removed_behind_its_back_is_already_absent_not_deregistered() {
    let w = world(TargetState::Healthy, DeregisterBehaviour::Vanish);
    let run = start(w.groups.clone(), settings());
    run.until_ready().await;
    w.groups.remove(&w.web.arn, &Target::new(IP, 80));

    let (finish, status) = run.stop().await;

    assert_eq!(finish.code, 0, "{:?}", finish.error);
    assert!(finish.error.is_none());
    assert!(w.groups.members(&w.web.arn).is_empty());
    assert!(w.groups.members(&w.api.arn).is_empty());
    let text = status.metrics.render();
    for line in [
        "berth_sidecar_deregistrations_already_absent_total{target_group=\"web\"} 1",
        "berth_sidecar_deregistrations_total{target_group=\"api\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(
        !text.contains("berth_sidecar_deregistrations_total{target_group=\"web\"}"),
        "web was not deregistered by the sidecar:\n{text}"
    );
    assert!(
        !text.contains("berth_sidecar_failures_total"),
        "no failure:\n{text}"
    );
}
