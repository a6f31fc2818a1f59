//! The `cutover` command: parse the command line, hand over to the library.

use clap::Parser;

/// mimalloc instead of glibc's malloc: the request path allocates many small,
/// short-lived objects (Pingora's sessions, headers, futures), and glibc's
/// allocator spent a tenth of the proxy's CPU on them in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = cutover::cli::Cli::parse();
    std::process::exit(cutover::cli::main(cli));
}
