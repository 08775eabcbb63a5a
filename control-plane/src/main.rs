//! `control-plane` binary: a thin shell over the library.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, flag, file] if cmd == "check" && (flag == "-f" || flag == "--file") => {
            match control_plane::check_file(&PathBuf::from(file)) {
                Ok(s) => {
                    eprintln!(
                        "ok: {} providers, {} routes, {} keys",
                        s.providers.len(),
                        s.routes.len(),
                        s.keys.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: control-plane check -f FILE");
            ExitCode::from(2)
        }
    }
}
