//! The program under test in `tests/cli`: the same `main` as the `consul-kv` binary, built
//! under another name so that Cargo builds it for this package's tests.

fn main() -> std::process::ExitCode {
    consul_kv_cli::main_entry()
}
