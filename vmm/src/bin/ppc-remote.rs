//! `ppc-remote`: see `ppc-remote --help`.

fn main() -> std::process::ExitCode {
    vmm::remote::main(std::env::args_os())
}
