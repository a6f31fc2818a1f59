//! The `cutover` command: parse the command line, hand over to the library.

use clap::Parser;

fn main() {
    let cli = cutover::cli::Cli::parse();
    std::process::exit(cutover::cli::main(cli));
}
