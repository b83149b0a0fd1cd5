//! The function against its deadline (Lambda kills an invocation at its timeout):
//! the sweep stops 2 s before it and reports what it left, and the next sweep goes
//! on; a state change stops too and fails clearly, and its redelivery binds. The
//! deterministic cases run by default; a hundred lost instances under fire is an
//! ignored benchmark (figures in docs/benchmarks.md).

/// The sweep keeps the function's deadline: with every association stuck, it stops
/// 2 s before the deadline and says what it left (the log line's `unfinished`,
/// outcome `swept_in_part`, WARN); nothing is half-done but claims, and the next
/// sweep finishes the work.
use super::under_fire::{repaired, Fire};
use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_near_the_function_deadline_stops_reports_what_is_left_and_the_next_finishes() {
    let fire = Fire::calm(8, 1).await;
    let instances = fire.aws.launch(5, MATCHING).await;
    // Their running events are lost; every association hangs, then fails (so that a
    // stuck request never reaches moto after the sweep let it go).
    let stuck = fire.proxy.add(Rule::new(
        "AssociateAddress",
        Fault::Delay(Duration::from_secs(60)),
    ));
    fire.proxy.add(Rule::new(
        "AssociateAddress",
        Fault::ServerError { status: 503 },
    ));
    fire.api.set_function_timeout(Duration::from_secs(10));
    let swept = fire.sweep("sweep-short").await;
    assert_eq!(swept["outcome"], "swept_in_part", "{swept}");
    let unfinished: BTreeSet<&str> = swept["sweep"]["unfinished"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    let binds: Vec<String> = instances.iter().map(|i| format!("bind {i}")).collect();
    assert_eq!(
        unfinished,
        binds.iter().map(String::as_str).collect(),
        "{swept}"
    );
    assert_eq!(swept["sweep"]["bound"], json!([]), "{swept}");
    assert!(fire.proxy.fired(stuck) >= 1, "the associations were stuck");
    fire.runtimes.wait_outcomes(1).await;
    let line = fire.runtimes.outcomes().into_values().next().unwrap();
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(
        line["message"].as_str().unwrap().contains("deadline"),
        "{line}"
    );
    // Nothing half-done but the claims the cut binds made.
    let pool = fire.aws.pool().await;
    assert!(pool.values().all(Option::is_none), "{pool:?}");
    assert!(fire.aws.a_records().await.is_empty());
    let rows = fire.aws.rows().await;
    assert!(
        rows.values()
            .all(|r| r["state"] == "claimed" || r["state"] == "free"),
        "{rows:?}"
    );

    // The next sweep, with AWS answering, finishes it: every instance bound once.
    fire.proxy.clear();
    fire.api.set_function_timeout(Duration::from_secs(60));
    let swept = fire.sweep("sweep-next").await;
    assert_eq!(swept["outcome"], "swept", "{swept}");
    assert_eq!(swept["sweep"]["unfinished"], json!([]), "{swept}");
    assert_eq!(
        swept["sweep"]["bound"].as_array().unwrap().len(),
        instances.len(),
        "{swept}"
    );
    fire.assert_bound_exactly(&instances).await;
}

/// A state change keeps the deadline too: with the association stuck, the invocation
/// fails `DeadlineReached` 2 s before its timeout and its line is written; nothing is
/// associated, and the redelivery (AWS answering again) binds the instance.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_event_near_the_function_deadline_fails_clearly_and_its_redelivery_binds() {
    let fire = Fire::calm(4, 1).await;
    let instances = fire.aws.launch(1, MATCHING).await;
    let stuck = fire.proxy.add(Rule::new(
        "AssociateAddress",
        Fault::Delay(Duration::from_secs(60)),
    ));
    fire.proxy.add(Rule::new(
        "AssociateAddress",
        Fault::ServerError { status: 503 },
    ));
    fire.api.set_function_timeout(Duration::from_secs(8));
    let running = event(&instances[0], "running");
    let results = deliver(&fire.api, std::slice::from_ref(&running)).await;
    assert!(results[0].1.is_error(), "{:?}", results[0].1);
    let body: Value = serde_json::from_str(results[0].1.body()).unwrap();
    assert_eq!(body["errorType"], "DeadlineReached", "{body}");
    assert!(
        body["errorMessage"].as_str().unwrap().contains("running"),
        "{body}"
    );
    assert!(fire.proxy.fired(stuck) >= 1, "the association was stuck");
    fire.runtimes.wait_outcomes(1).await;
    let line = fire.runtimes.outcomes().into_values().next().unwrap();
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["error_type"], "DeadlineReached", "{line}");
    let pool = fire.aws.pool().await;
    assert!(pool.values().all(Option::is_none), "{pool:?}");
    assert!(fire.aws.a_records().await.is_empty());

    fire.proxy.clear();
    fire.api.set_function_timeout(Duration::from_secs(60));
    let results = deliver(&fire.api, &[running]).await;
    assert_eq!(
        response(&results[0].1)["outcome"],
        "bound",
        "{:?}",
        results[0].1
    );
    fire.assert_bound_exactly(&instances).await;
}

/// The 100 instances under fire, every running event lost: the sweeps
/// (60 s function timeout) bind them all, each stopping at its deadline if it must.
/// Prints each sweep's time and what it left (docs/benchmarks.md).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: minutes on 2 cores (docs/benchmarks.md)"]
async fn sweep_benchmark_a_hundred_lost_running_events_under_fire() {
    let fire = Fire::start(100).await;
    let instances = fire.aws.launch(100, MATCHING).await;
    let started = Instant::now();
    let sweeps = fire.sweep_to_the_end("sweep-hundred").await;
    eprintln!(
        "a hundred lost running events under fire: {} sweep(s) in {:?}; requests {} ({:?})",
        sweeps.len(),
        started.elapsed(),
        fire.proxy.total(),
        fire.proxy.counts()
    );
    assert_eq!(
        repaired(&sweeps, "bound"),
        instances.iter().cloned().collect(),
        "{sweeps:?}"
    );
    fire.proxy.clear();
    fire.assert_bound_exactly(&instances).await;
}
