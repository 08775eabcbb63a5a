//! Benchmark helper: time to first streamed chunk.
//!
//! Sends `--requests` streaming chat requests one after another to `--url` and measures, for
//! each, the time from sending to the first SSE `data:` bytes arriving, then prints
//! `{"p50_ms":..,"p99_ms":..,"mean_ms":..,"n":..}` on stdout.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;

#[derive(Parser)]
struct Args {
    /// Chat completions URL, e.g. http://127.0.0.1:8080/v1/chat/completions.
    #[arg(long)]
    url: String,
    /// Bearer key.
    #[arg(long, default_value = "")]
    key: String,
    /// Model alias.
    #[arg(long)]
    model: String,
    #[arg(long, default_value_t = 1000)]
    requests: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let body = serde_json::json!({
        "model": args.model,
        "stream": true,
        "messages": [{"role": "user", "content": "Say hello to the benchmark"}],
    });
    let mut samples: Vec<Duration> = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let start = Instant::now();
        let response = client
            .post(&args.url)
            .bearer_auth(&args.key)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        let mut stream = response.bytes_stream();
        let mut first = None;
        while let Some(piece) = stream.next().await {
            let piece = piece?;
            if first.is_none() && piece.windows(5).any(|w| w == b"data:") {
                first = Some(start.elapsed());
            }
        }
        samples.push(first.ok_or_else(|| anyhow::anyhow!("stream had no data"))?);
    }
    samples.sort_unstable();
    let pick =
        |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64 * 1e3;
    println!(
        "{}",
        serde_json::json!({"p50_ms": pick(0.5), "p99_ms": pick(0.99), "mean_ms": mean, "n": samples.len()})
    );
    Ok(())
}
