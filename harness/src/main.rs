//! The `tcpdrill` command.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tcpdrill_stack::wire::{Checksums, TcpDatagram};

#[derive(Parser)]
#[command(name = "tcpdrill", version, about = "TCP conformance and fuzz test harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print IP/TCP datagrams given as hex in packetdrill notation (one datagram per argument, or one per
    /// line on standard input when no argument is given).
    Decode {
        /// Hex bytes of an IPv4 or IPv6 datagram; whitespace and ':' are ignored.
        hex: Vec<String>,
        /// Accept datagrams whose checksums do not verify (captures taken with checksum offload).
        #[arg(long)]
        ignore_checksums: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode { hex, ignore_checksums } => decode(hex, ignore_checksums),
    }
}

fn decode(args: Vec<String>, ignore_checksums: bool) -> ExitCode {
    let inputs: Vec<String> = if args.is_empty() {
        std::io::stdin().lines().map_while(Result::ok).filter(|l| !l.trim().is_empty()).collect()
    } else {
        args
    };
    let checksums = if ignore_checksums { Checksums::Ignore } else { Checksums::Verify };
    let mut failed = false;
    for (i, text) in inputs.iter().enumerate() {
        let n = i + 1;
        let bytes = match tcpdrill::hex::decode(text) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("datagram {n}: {e}");
                failed = true;
                continue;
            }
        };
        match TcpDatagram::parse(&bytes, checksums) {
            Ok(d) => {
                println!("{d}");
                if let Err(e) = d.tcp.options.validate() {
                    eprintln!("datagram {n}: warning: {e}");
                }
            }
            Err(e) => {
                eprintln!("datagram {n}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
