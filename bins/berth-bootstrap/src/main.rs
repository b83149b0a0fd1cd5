//! berth-bootstrap's entry point; see the library for what it does.

fn main() -> std::process::ExitCode {
    berth_bootstrap::main_exit_code()
}
