//! The `covet` binary: parses the command line and hands over to [`covet::cli`].

fn main() -> std::process::ExitCode {
    covet::cli::main()
}
