//! The `daemonic` binary; everything is in the library (`src/lib.rs`).

fn main() -> std::process::ExitCode {
    daemonic_cli::main()
}
