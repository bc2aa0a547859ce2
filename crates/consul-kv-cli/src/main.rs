//! The `consul-kv` binary: see the library's documentation.

fn main() -> std::process::ExitCode {
    consul_kv_cli::main_entry()
}
