//! berth-daemon: see the library crate for what it does.

fn main() {
    std::process::exit(berth_daemon::main_exit_code());
}
