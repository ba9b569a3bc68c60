//! Classifies the files named on the command line and prints each result as
//! one JSON line: `cargo run -p bounce --example classify -- FILE...`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for path in std::env::args().skip(1) {
        let outcome = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|raw| bounce::classify(&raw).map_err(|e| e.to_string()))
            .and_then(|b| serde_json::to_string(&b).map_err(|e| e.to_string()));
        match outcome {
            Ok(json) => println!("{{\"file\":{:?},\"bounce\":{json}}}", path),
            Err(e) => {
                eprintln!("{path}: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
