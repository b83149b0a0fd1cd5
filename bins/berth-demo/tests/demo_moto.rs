//! The compiled `berth-demo --aws-endpoint` against a real `moto_server` (started by
//! berth-testing; the test fails if it is not installed): the demo creates its estate
//! there and the daemon goes through berth's real ELBv2 adapter.

mod common;

use std::collections::BTreeSet;

use berth_testing::{sdk_config, MotoServer};
use common::demo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_the_scenario_through_the_elbv2_adapter_against_moto() {
    let moto = MotoServer::isolated().await;
    let endpoint = moto.endpoint();
    let run = tokio::task::spawn_blocking(move || demo(&["--aws-endpoint", &endpoint]))
        .await
        .expect("demo run");
    assert_eq!(run.code, Some(0), "{}", run.text());

    // Group names carry a per-run suffix and instance ids are moto's: compare the
    // groups' roles, nodes, states and who registered each target.
    let rows: Vec<String> = run
        .section("Target groups")
        .iter()
        .map(|row| {
            let cells: Vec<&str> = row.split(' ').collect();
            let role = cells[0].rsplit_once('-').map_or(cells[0], |(r, _)| r);
            let port = cells[1].rsplit_once(':').map_or("", |(_, p)| p);
            format!("{role} :{port} {}", cells[2..].join(" "))
        })
        .collect();
    let expected = [
        "web :30080 node-1 healthy berth",
        "web :30080 node-2 deregistered berth",
        "web :30080 node-3 healthy berth",
        "web :30080 node-4 deregistered berth",
        "web :30080 - healthy someone else",
        "api :30443 node-1 healthy berth",
        "api :30443 node-2 deregistered berth",
        "api :30443 node-3 healthy berth",
        "api :30443 node-4 deregistered berth",
        "batch :30090 node-5 deregistered berth",
        "batch :30090 node-6 deregistered berth",
        "batch-v2 :30091 node-5 healthy berth",
        "batch-v2 :30091 node-6 healthy berth",
    ];
    assert_eq!(rows, expected, "{}", run.text());

    // The calls were the adapter's, counted by its SDK interceptor.
    run.assert_counts_at_least(
        "AWS calls berth made",
        &[
            ("RegisterTargets", 4),
            ("DeregisterTargets", 5),
            ("DescribeTargetGroups", 1),
        ],
    );

    // moto itself holds what the table says: web keeps node-1, node-3 and the
    // foreign target.
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk_config(&moto.endpoint()));
    let groups = elb.describe_target_groups().send().await.expect("groups");
    let web = groups
        .target_groups()
        .iter()
        .find(|g| g.target_group_name().is_some_and(|n| n.starts_with("web-")))
        .and_then(|g| g.target_group_arn())
        .expect("the demo's web group")
        .to_owned();
    let health = elb
        .describe_target_health()
        .target_group_arn(&web)
        .send()
        .await
        .expect("DescribeTargetHealth");
    let in_moto: BTreeSet<String> = health
        .target_health_descriptions()
        .iter()
        .filter_map(|d| d.target()?.id().map(str::to_owned))
        .collect();
    let in_table: BTreeSet<String> = run
        .section("Target groups")
        .iter()
        .filter(|row| row.starts_with("web-") && row.contains(" healthy "))
        .filter_map(|row| row.split(' ').nth(1)?.split(':').next().map(str::to_owned))
        .collect();
    assert_eq!(in_moto.len(), 3, "{in_moto:?}");
    assert_eq!(in_moto, in_table, "{}", run.text());
}
