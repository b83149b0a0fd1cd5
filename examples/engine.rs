//! berth-core as a library: a small estate in the in-memory providers, planned,
//! printed, applied and reported — the same observe → desire → plan → apply loop every
//! berth mode runs.
//!
//! ```text
//! cargo run -p berth-core --features test-util --example engine
//! ```

use std::sync::Arc;

use berth_core::domain::{Owner, Target, TargetState, TargetType};
use berth_core::engine::{ApplyOptions, Engine, MembershipProviders};
use berth_core::memory::{MemoryLedger, MemoryTargetGroups};
use berth_core::plan::{plan_membership, DesiredMembership};
use berth_core::provider::{LedgerOwnership, TargetGroups, TargetOwnership};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), berth_core::Error> {
    // The estate: two target groups; one already holds a target someone else put there.
    let groups = Arc::new(MemoryTargetGroups::default());
    let web = groups.add_group("web", TargetType::Instance, Some(30080));
    let api = groups.add_group("api", TargetType::Instance, Some(30443));
    groups.set_state(
        &web.arn,
        Target::new("i-0manual", 30080),
        TargetState::Healthy,
    );
    let ownership = Arc::new(LedgerOwnership::new(
        Arc::new(MemoryLedger::default()),
        Owner::new("berth/example")?,
    ));

    // Desire: three nodes in web, two of them also in api on an explicit port.
    let mut desired = DesiredMembership::new();
    for node in ["i-0aaa", "i-0bbb", "i-0ccc"] {
        desired.want(&web, node, None, None)?;
    }
    for node in ["i-0aaa", "i-0bbb"] {
        desired.want(&api, node, Some(8443), None)?;
    }

    // The engine applies any plan; the providers a plan needs are typed by its changes.
    let engine = Engine::new(ApplyOptions::default());
    let providers = MembershipProviders::new(groups.clone(), ownership.clone());

    // Observe, plan, print, apply, report.
    let owned = ownership.owned().await?;
    let (observed, _) = engine
        .observe_membership(groups.as_ref(), desired.groups().chain(owned.keys()))
        .await;
    let plan = plan_membership(&desired, &observed, &owned);
    println!("plan ({} changes):\n{plan}", plan.len());
    let report = engine.apply(&providers, &plan).await;
    println!("report:\n{report}\n");

    // A node leaves: only what berth registered is deregistered; i-0manual stays.
    let mut fewer = DesiredMembership::new();
    desired.groups().for_each(|g| fewer.declare_group(g));
    for node in ["i-0aaa", "i-0bbb"] {
        fewer.want(&web, node, None, None)?;
        fewer.want(&api, node, Some(8443), None)?;
    }
    let (plan, report) = engine.reconcile_membership(&providers, &fewer).await?;
    println!("after i-0ccc left, plan:\n{plan}report:\n{report}\n");
    println!("calls (calls/attempts): {}", engine.caller().tally());
    for (name, g) in [("web", &web), ("api", &api)] {
        let members: Vec<String> = groups
            .health(&g.arn)
            .await?
            .iter()
            .map(|h| format!("{} {}", h.target, h.state))
            .collect();
        println!("{name}: {}", members.join(", "));
    }
    Ok(())
}
