//! Starts the shared moto server, prints `MOTO_ENDPOINT=<url>`, then ends without any
//! cleanup: `exit` returns from the process at once (statics are never dropped),
//! `sleep` waits to be killed. `tests/harness.rs::moto_dies_with_the_test_process`
//! runs it and checks that moto dies with it either way.

use std::time::Duration;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if !matches!(mode.as_str(), "exit" | "sleep") {
        eprintln!("usage: moto-child exit|sleep");
        std::process::exit(2);
    }
    println!(
        "MOTO_ENDPOINT={}",
        berth_testing::MotoServer::shared().endpoint()
    );
    if mode == "exit" {
        std::process::exit(0);
    }
    std::thread::sleep(Duration::from_secs(60));
}
