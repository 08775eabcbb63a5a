//! The deploy files of `deploy/` validated offline, each by the tool its format belongs to:
//! - Kubernetes manifests by `kubernetes-validate --strict` (bundled schemas, from the test
//!   venv), plus what the schemas cannot say: non-root, read-only root, no capabilities,
//!   probes on the ops endpoints, requests and limits, scrape annotations, our image;
//! - the Grafana ConfigMaps are what `grafana-configmaps.sh` generates from `dashboards/` now,
//!   and hold those files byte for byte;
//! - the Compose file against the compose-spec JSON schema, and by Debian's `docker-compose
//!   config` (installed by deploy/local/test.sh; a missing tool fails the test);
//! - the NATS configs by `nats-server -t -c`;
//! - the systemd units by `systemd-analyze verify` (installed by deploy/local/test.sh), with no
//!   warning allowed;
//! - the Prometheus configs keep the job names the dashboards and alerts select on;
//! - every environment variable a deploy file sets is one a plane (or Grafana's provisioning)
//!   reads;
//! - the size of a typical usage event, which docs/SCALING.md's NATS and Postgres figures use.
//!
//! None of this runs a container, a cluster or a unit: no Docker engine or Kubernetes here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize as _;
use serde_yaml::Value;
use switchyard_tests::support::{binary, python, system_program, workspace_root};

fn deploy(dir: &str) -> PathBuf {
    workspace_root().join("deploy").join(dir)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn program(name: &str, install: &str) -> PathBuf {
    system_program(name).unwrap_or_else(|| {
        panic!("{name} not found: install it ({install}; deploy/local/test.sh does)")
    })
}

/// Every YAML document of a file, empty ones left out.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// The manifests `kubectl apply` takes: every YAML file of deploy/kubernetes/ but the Helm
/// values (input to the NATS chart, not a resource).
fn manifests() -> Vec<PathBuf> {
    files(&deploy("kubernetes"), "yaml")
        .into_iter()
        .filter(|p| !p.ends_with("nats-values.yaml"))
        .collect()
}

#[test]
fn deploy_kubernetes_manifests_pass_kubernetes_validate() {
    let manifests = manifests();
    assert!(manifests.len() >= 5, "{manifests:?}");
    let out = Command::new(python())
        .args(["-m", "kubernetes_validate", "--strict", "--quiet"])
        .args(&manifests)
        .output()
        .expect("running the venv's python");
    assert!(
        out.status.success(),
        "kubernetes-validate failed (install tests/py/requirements.txt into the venv of \
         SWITCHYARD_PYTHON: deploy/local/test.sh does):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The pod templates of the Deployments, by name.
fn deployments() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for path in manifests() {
        for doc in yaml_docs(&path) {
            if doc["kind"] == "Deployment" {
                let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
                out.push((name, doc));
            }
        }
    }
    out
}

#[test]
fn deploy_kubernetes_pods_are_hardened_probed_sized_and_scraped() {
    let deployments = deployments();
    let names: BTreeSet<&str> = deployments.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["switchyard-control-plane", "switchyard-data-plane"])
    );
    for (name, d) in &deployments {
        let pod = &d["spec"]["template"];
        let spec = &pod["spec"];
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{name}");
        let annotations = &pod["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{name}");
        assert_eq!(annotations["prometheus.io/path"], "/metrics", "{name}");
        let (binary_name, ops_port) = if name.contains("data-plane") {
            ("data-plane", "9090")
        } else {
            ("control-plane", "8081")
        };
        assert_eq!(annotations["prometheus.io/port"], ops_port, "{name}");
        let containers = spec["containers"].as_sequence().unwrap();
        assert_eq!(containers.len(), 1, "{name}");
        let c = &containers[0];
        assert_eq!(
            c["image"], "switchyard:latest",
            "{name}: the Dockerfile's image"
        );
        assert_eq!(c["command"][0], binary_name, "{name}");
        binary(binary_name).expect("the image's command is a workspace binary");
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{name}");
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    !c["resources"][kind][resource].is_null(),
                    "{name}: {kind}.{resource}"
                );
            }
        }
        // The probes hit the port the ops endpoints listen on.
        let port_of = |port_name: &Value| -> String {
            let port = c["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|p| &p["name"] == port_name)
                .unwrap_or_else(|| panic!("{name}: no port {port_name:?}"));
            port["containerPort"].as_u64().unwrap().to_string()
        };
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            let get = &c[probe]["httpGet"];
            assert_eq!(get["path"], path, "{name} {probe}");
            assert_eq!(port_of(&get["port"]), ops_port, "{name} {probe}");
        }
        if binary_name == "data-plane" {
            // Spool and snapshot cache writable under a read-only root.
            let env = env_of(c);
            let mounts: Vec<&str> = c["volumeMounts"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|m| m["mountPath"].as_str().unwrap())
                .collect();
            for var in ["SWITCHYARD_SPOOL_DIR", "SWITCHYARD_SNAPSHOT_CACHE"] {
                let value = env.get(var).unwrap_or_else(|| panic!("{name}: {var}"));
                assert!(
                    mounts.iter().any(|m| value.starts_with(m)),
                    "{name}: {var}={value} is on no volume ({mounts:?})"
                );
            }
        } else {
            assert_eq!(d["spec"]["replicas"], 2, "{name}");
        }
    }
    let kinds: BTreeSet<String> = manifests()
        .iter()
        .flat_map(|p| yaml_docs(p))
        .map(|d| {
            format!(
                "{} {}",
                d["apiVersion"].as_str().unwrap(),
                d["kind"].as_str().unwrap()
            )
        })
        .collect();
    for kind in [
        "autoscaling/v2 HorizontalPodAutoscaler",
        "policy/v1 PodDisruptionBudget",
        "v1 Secret",
        "v1 Namespace",
        "v1 Service",
    ] {
        assert!(kinds.contains(kind), "no {kind} among {kinds:?}");
    }
}

/// A container's literal environment values (secret references left out).
fn env_of(container: &Value) -> std::collections::BTreeMap<String, String> {
    container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

#[test]
fn deploy_kubernetes_grafana_configmaps_match_dashboards() {
    let dir = deploy("kubernetes");
    let generated = run(Command::new("bash")
        .arg(dir.join("grafana-configmaps.sh"))
        .arg("--stdout"))
    .stdout;
    let committed = read(&dir.join("grafana-dashboards.yaml"));
    assert!(
        String::from_utf8_lossy(&generated) == committed,
        "deploy/kubernetes/grafana-dashboards.yaml is stale: run \
         deploy/kubernetes/grafana-configmaps.sh and commit the result"
    );
    // And the ConfigMaps hold the files byte for byte (the script's quoting is right).
    let maps: Vec<Value> = yaml_docs(&dir.join("grafana-dashboards.yaml"));
    let data = |name: &str| -> Value {
        maps.iter()
            .find(|m| m["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no ConfigMap {name}"))["data"]
            .clone()
    };
    let dashboards = workspace_root().join("dashboards");
    let expected = [
        ("switchyard-grafana-dashboards", dashboards.clone(), "json"),
        (
            "switchyard-grafana-provisioning-dashboards",
            dashboards.join("provisioning/dashboards"),
            "yml",
        ),
        (
            "switchyard-grafana-provisioning-datasources",
            dashboards.join("provisioning/datasources"),
            "yml",
        ),
    ];
    for (map, dir, ext) in expected {
        let data = data(map);
        let sources = files(&dir, ext);
        assert!(!sources.is_empty(), "{}", dir.display());
        assert_eq!(
            data.as_mapping().unwrap().len(),
            sources.len(),
            "{map}: one entry per file of {}",
            dir.display()
        );
        for f in sources {
            let key = f.file_name().unwrap().to_str().unwrap();
            assert_eq!(data[key].as_str(), Some(read(&f).as_str()), "{map}: {key}");
        }
    }
}

/// Job names of a Prometheus config.
fn jobs(path: &Path) -> BTreeSet<String> {
    let config = &yaml_docs(path)[0];
    config["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|j| j["job_name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn deploy_prometheus_configs_keep_the_job_names_and_nats_values_a_cluster() {
    let shipped = jobs(&deploy("prometheus").join("prometheus.yml"));
    assert_eq!(
        shipped,
        BTreeSet::from([
            "switchyard-control-plane".to_owned(),
            "switchyard-data-plane".to_owned()
        ])
    );
    let kubernetes = deploy("kubernetes").join("prometheus-kubernetes.yml");
    assert_eq!(jobs(&kubernetes), shipped, "{}", kubernetes.display());
    let compose = deploy("compose").join("prometheus.yml");
    assert_eq!(jobs(&compose), shipped, "{}", compose.display());
    // Debian's promtool is built without Kubernetes discovery, so only the Compose config
    // goes through it; the Kubernetes one is checked for its shape below.
    let promtool = switchyard_tests::support::promtool().unwrap();
    run(Command::new(promtool)
        .args(["check", "config", "prometheus.yml"])
        .current_dir(deploy("compose")));
    let k8s = &yaml_docs(&kubernetes)[0];
    for job in k8s["scrape_configs"].as_sequence().unwrap() {
        let name = job["job_name"].as_str().unwrap();
        assert_eq!(job["kubernetes_sd_configs"][0]["role"], "pod", "{name}");
        let keeps_own_pods = job["relabel_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "keep" && r["regex"] == name);
        assert!(keeps_own_pods, "{name} keeps pods labelled {name}");
    }

    let values = &yaml_docs(&deploy("kubernetes").join("nats-values.yaml"))[0];
    let config = &values["config"];
    assert_eq!(config["cluster"]["enabled"], true);
    assert_eq!(config["cluster"]["replicas"], 3);
    assert_eq!(config["jetstream"]["enabled"], true);
    assert_eq!(config["jetstream"]["fileStore"]["enabled"], true);
    assert_eq!(config["jetstream"]["fileStore"]["pvc"]["enabled"], true);
}

/// Validates a YAML file against a JSON schema with the venv's `jsonschema` and `yaml` (both
/// come with schemathesis); prints each error and exits 1 on any.
const SCHEMA_CHECK: &str = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
doc = yaml.safe_load(open(sys.argv[2]))
errors = sorted(jsonschema.Draft201909Validator(schema).iter_errors(doc), key=str)
for e in errors:
    print("/".join(map(str, e.absolute_path)) + ": " + e.message)
sys.exit(1 if errors else 0)
"#;

#[test]
fn deploy_compose_file_passes_docker_compose_config() {
    let dir = deploy("compose");
    // The compose-spec schema Debian's docker-compose 1.29 validates with, vendored
    // (Apache-2.0): the file is checked against it as well as by docker-compose itself.
    let schema = workspace_root().join("tests/fixtures/compose_spec.json");
    run(Command::new(python())
        .args(["-c", SCHEMA_CHECK])
        .arg(&schema)
        .arg(dir.join("compose.yaml")));
    let compose = system_program("docker-compose").expect(
        "docker-compose is not installed (deploy/local/test.sh installs it: apt-get install docker-compose)",
    );
    let out = run(Command::new(compose)
        .args(["--env-file", "env.example", "-f", "compose.yaml", "config"])
        .current_dir(&dir));
    let config: Value = serde_yaml::from_slice(&out.stdout).unwrap();
    let services = config["services"].as_mapping().unwrap();
    let named = |prefix: &str| -> Vec<&Value> {
        services
            .iter()
            .filter(|(k, _)| k.as_str().unwrap().starts_with(prefix))
            .map(|(_, v)| v)
            .collect()
    };
    assert_eq!(named("nats-").len(), 3);
    assert_eq!(named("postgres").len(), 1);
    for (plane, binary_name) in [
        ("control-plane-", "control-plane"),
        ("data-plane-", "data-plane"),
    ] {
        let planes = named(plane);
        assert_eq!(planes.len(), 2, "{plane}*");
        for s in planes {
            assert_eq!(s["image"], "switchyard:latest");
            assert_eq!(s["command"][0], binary_name);
            assert_eq!(s["build"]["dockerfile"], "deploy/docker/Dockerfile");
        }
    }
    let grafana = &services["grafana"]["environment"];
    for var in ["SWITCHYARD_DASHBOARDS_DIR", "SWITCHYARD_PROMETHEUS_URL"] {
        assert!(!grafana[var].is_null(), "grafana needs {var}");
    }
    assert!(!services["prometheus"].is_null());
    // Every node routes to the three.
    for node in named("nats-") {
        let command: Vec<&str> = node["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(command.contains(&"--jetstream"), "{command:?}");
        assert!(
            command.contains(&"nats://nats-1:6222,nats://nats-2:6222,nats://nats-3:6222"),
            "{command:?}"
        );
    }
}

#[test]
fn deploy_nats_configs_pass_nats_server_check() {
    let nats = program("nats-server", "`apt-get install nats-server`");
    let configs = files(&deploy("nats"), "conf");
    assert_eq!(configs.len(), 3, "{configs:?}");
    for conf in configs {
        run(Command::new(&nats).arg("-t").arg("-c").arg(&conf));
    }
}

#[test]
fn deploy_systemd_units_pass_systemd_analyze_verify() {
    let units = files(&deploy("systemd"), "service");
    assert_eq!(units.len(), 2, "{units:?}");
    for unit in &units {
        let text = read(unit);
        for setting in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=\n",
            "RestrictAddressFamilies=",
            "SystemCallFilter=@system-service",
            "DynamicUser=yes",
            "EnvironmentFile=",
        ] {
            assert!(text.contains(setting), "{}: {setting}", unit.display());
        }
    }
    let analyze = system_program("systemd-analyze").expect(
        "systemd-analyze is not installed (deploy/local/test.sh installs it: apt-get install systemd)",
    );
    // A root of our own: the units, stand-ins for the binaries at their ExecStart paths (the
    // real ones are checked to exist in the workspace) and the system's own units.
    let root = tempfile::tempdir().unwrap();
    let system = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&system).unwrap();
    let mut names = Vec::new();
    for unit in &units {
        let text = read(unit);
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{}: no ExecStart", unit.display()));
        let exe = Path::new(exec.split_whitespace().next().unwrap());
        binary(exe.file_name().unwrap().to_str().unwrap()).expect("ExecStart names our binary");
        let stand_in = root.path().join(exe.strip_prefix("/").unwrap());
        std::fs::create_dir_all(stand_in.parent().unwrap()).unwrap();
        std::fs::write(&stand_in, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
        let name = unit.file_name().unwrap().to_str().unwrap().to_owned();
        std::fs::copy(unit, system.join(&name)).unwrap();
        names.push(name);
    }
    let lib = root.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&lib).unwrap();
    run(Command::new("cp")
        .arg("-r")
        .arg("/usr/lib/systemd/system")
        .arg(&lib));
    let out = run(Command::new(analyze)
        .arg("verify")
        .arg("--man=no")
        .arg(format!("--root={}", root.path().display()))
        .args(&names));
    // systemd-analyze exits 0 on unknown keys and bad values, only warning about them.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.trim().is_empty(), "systemd-analyze verify:\n{said}");
}

/// `SWITCHYARD_*` names (and the control plane's `DATABASE_URL`, `NATS_URL`) in a text.
fn env_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["SWITCHYARD_", "DATABASE_URL", "NATS_URL"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().next_back();
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            // `SWITCHYARD_NATS_URL` is not `NATS_URL`.
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                names.insert(tail[..end].to_owned());
            }
            rest = &tail[end.max(1)..];
        }
    }
    names
}

#[test]
fn deploy_files_set_only_variables_the_planes_read() {
    let root = workspace_root();
    let mut known = BTreeSet::new();
    for source in [
        "data-plane/src/config.rs",
        "control-plane/src/config.rs",
        "proto/src/replicas.rs",
        "dashboards/provisioning/dashboards/switchyard.yml",
        "dashboards/provisioning/datasources/switchyard.yml",
    ] {
        known.extend(env_names(&read(&root.join(source))));
    }
    let mut checked = 0;
    for dir in ["kubernetes", "compose", "systemd", "docker"] {
        for entry in std::fs::read_dir(deploy(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() && !path.ends_with("grafana-dashboards.yaml") {
                for name in env_names(&read(&path)) {
                    assert!(
                        known.contains(&name),
                        "{} sets {name}, which no plane reads",
                        path.display()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} names found");
}

/// docs/SCALING.md counts NATS and Postgres bytes from this event: a chat request with a key,
/// a team, two tags, a routed deployment and prompt caching, as a proxy publishes it (one
/// NDJSON line of a batch).
#[test]
fn deploy_scaling_typical_usage_event_size() {
    let event = proto::UsageEvent {
        id: "0193a4c2-7d1e-7b3a-9f00-5e2d4c1b0a99".into(),
        time_ms: 1_796_000_000_000,
        proxy: "switchyard-data-plane-7c9f8d6b5-x2x9k".into(),
        key_id: Some("0193a4c2-1111-7000-8000-000000000001".into()),
        key_name: Some("checkout-service".into()),
        team: Some("0193a4c2-2222-7000-8000-000000000002".into()),
        tags: [("env", "prod"), ("feature", "search")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        endpoint: "chat".into(),
        alias: "gpt-4o".into(),
        provider: Some("openai".into()),
        deployment: Some("openai/gpt-4o-2024-08-06".into()),
        model: Some("gpt-4o-2024-08-06".into()),
        usage: proto::TokenUsage {
            prompt_tokens: 1_834,
            completion_tokens: 412,
            cached_input_tokens: 1_024,
            reasoning_tokens: 0,
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
        },
        usage_estimated: false,
        cost_usd: "0.0075350".parse().unwrap(),
        saved_cost_usd: Default::default(),
        guardrail: Default::default(),
        latency_ms: 2_841,
        ttft_ms: Some(312),
        status: 200,
        outcome: proto::Outcome::Ok,
        refused: None,
        streamed: true,
        abandoned: false,
        attempts: 1,
        fallbacks: 0,
        cache_hit: false,
        route_reason: Some("weighted".into()),
        log: proto::LogPayloads::default(),
    };
    let line = serde_json::to_vec(&event).unwrap();
    eprintln!("typical usage event: {} bytes of JSON", line.len());
    // docs/SCALING.md counts 720 bytes per event (this one) and 800 with longer names.
    assert!(
        (650..=800).contains(&line.len()),
        "{} bytes: update docs/SCALING.md",
        line.len()
    );
}
