//! Run one primary-backup node from a config file without the harness:
//! `cargo run -p faultline-primary-backup --example pb-node -- CONFIG.json`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: pb-node CONFIG.json");
        return ExitCode::from(254);
    };
    let config = match faultline_protocol::NodeConfig::load(path.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(254);
        }
    };
    match faultline_primary_backup::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(255)
        }
    }
}
