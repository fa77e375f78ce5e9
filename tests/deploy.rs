//! The deployment files, checked offline by deploy/check-manifests with the tools `make tools`
//! installs into .tools/venv: every kustomize overlay renders (`kubectl kustomize`), its built-in
//! objects pass `kubernetes-validate --strict`, its custom resources (KEDA, Prometheus operator)
//! pass deploy/schemas/*.json, the pipeline's own invariants hold (shards = replicas, in-flight
//! messages counted by the autoscaler, grace period, probes, PodMonitor ports) and checkov finds
//! nothing; docker-compose.yml passes `docker compose config`. A broken copy shows that each of
//! those checks can fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const OVERLAYS: [&str; 3] = ["rabbitmq", "sqs", "hpa"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python, after checking that every tool the script uses is there.
fn python() -> PathBuf {
    let bin = root().join(".tools/venv/bin");
    for tool in ["python", "kubectl", "kubernetes-validate", "checkov"] {
        let path = bin.join(tool);
        assert!(
            path.exists(),
            "{} is missing: run make tools (it installs the deployment checkers into .tools/venv)",
            path.display()
        );
    }
    bin.join("python")
}

/// Runs deploy/check-manifests with these arguments, its rendered files in a temporary folder.
fn check_manifests(args: &[&Path]) -> Output {
    let out = tempdir();
    let output = Command::new(python())
        .arg(root().join("deploy/check-manifests"))
        .arg("--out")
        .arg(out.path())
        .args(args)
        .current_dir(root())
        .output()
        .expect("running deploy/check-manifests");
    eprintln!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    output
}

/// A temporary folder whose name does not start with a dot (checkov skips those).
fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("txp-deploy-").tempdir().unwrap()
}

fn assert_passes(args: &[&Path]) {
    let output = check_manifests(args);
    assert!(
        output.status.success(),
        "deploy/check-manifests failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn overlay_passes(name: &str) {
    let overlay = root().join("deploy/k8s/overlays").join(name);
    assert_passes(&[&overlay]);
}

#[test]
fn rabbitmq_overlay_renders_and_validates() {
    overlay_passes("rabbitmq");
}

#[test]
fn sqs_overlay_renders_and_validates() {
    overlay_passes("sqs");
}

#[test]
fn hpa_overlay_renders_and_validates() {
    overlay_passes("hpa");
}

#[test]
fn every_overlay_is_tested() {
    let mut found: Vec<String> = fs::read_dir(root().join("deploy/k8s/overlays"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut expected: Vec<String> = OVERLAYS.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(found, expected, "add a test for each overlay in tests/deploy.rs");
}

#[test]
fn compose_file_is_valid() {
    assert_passes(&[Path::new("--compose"), &root().join("docker-compose.yml")]);
}

#[test]
fn every_schema_says_where_it_came_from() {
    for kind in ["ScaledObject", "TriggerAuthentication", "PodMonitor"] {
        let path = root().join("deploy/schemas").join(format!("{kind}.json"));
        let schema: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let comment = schema["$comment"].as_str().unwrap_or_default();
        assert!(comment.contains("openAPIV3Schema"), "{}: $comment should name its CRD", path.display());
        assert_eq!(schema["properties"]["kind"]["const"], kind);
        assert_eq!(
            schema["properties"]["spec"]["additionalProperties"], false,
            "{kind}: spec must reject unknown fields"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Replaces the first `from` in the file by `to` (the text must be there).
fn break_file(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no `{from}` to break", path.display());
    fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn validators_reject_broken_manifests() {
    let dir = tempdir();
    let k8s = dir.path().join("k8s");
    copy_dir(&root().join("deploy/k8s"), &k8s);
    // schema: a misspelt ScaledObject field, a misspelt trigger metadata key.
    break_file(&k8s.join("overlays/rabbitmq/keda.yaml"), "pollingInterval:", "pollingIntervall:");
    break_file(&k8s.join("overlays/rabbitmq/keda.yaml"), "queueName:", "queueNmae:");
    // invariants: a RabbitMQ trigger over AMQP sees ready messages only.
    break_file(&k8s.join("overlays/rabbitmq/keda.yaml"), "protocol: http\n", "protocol: amqp\n");
    // invariants (and schema): an SQS trigger not counting in-flight messages.
    break_file(
        &k8s.join("overlays/sqs/keda.yaml"),
        "scaleOnInFlight: \"true\"",
        "scaleOnInFlight: \"false\"",
    );
    // kubernetes: a misspelt Deployment field; an API version Kubernetes 1.28 no longer has.
    break_file(
        &k8s.join("base/consumer.yaml"),
        "terminationGracePeriodSeconds: 60",
        "terminationGracePeriodSecond: 60",
    );
    break_file(&k8s.join("base/pdb.yaml"), "apiVersion: policy/v1", "apiVersion: policy/v1beta1");
    // checkov: a writable root filesystem.
    break_file(
        &k8s.join("base/detector.yaml"),
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: false",
    );
    // render: an overlay whose base is not there.
    break_file(&k8s.join("overlays/hpa/kustomization.yaml"), "- ../../base\n", "- ../../base-missing\n");

    let overlays = ["rabbitmq", "sqs", "hpa"].map(|o| k8s.join("overlays").join(o));
    let output = check_manifests(&overlays.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    assert!(!output.status.success(), "the broken manifests passed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for (check, needle) in [
        ("schema", "pollingIntervall"),
        ("schema", "queueNmae"),
        ("invariants", "rabbitmq trigger must count unacked"),
        ("invariants", "scaleOnInFlight"),
        ("kubernetes", "terminationGracePeriodSecond"),
        ("kubernetes", "policy/v1beta1"),
        ("checkov", "CKV_K8S_22"),
        ("render", "base-missing"),
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(&format!("FAIL [{check}]")) && l.contains(needle)),
            "expected a FAIL [{check}] line mentioning {needle}:\n{stderr}"
        );
    }
}

#[test]
fn shard_count_must_follow_the_replicas() {
    let dir = tempdir();
    let k8s = dir.path().join("k8s");
    copy_dir(&root().join("deploy/k8s"), &k8s);
    let overlay = k8s.join("overlays/hpa");
    let kustomization = overlay.join("kustomization.yaml");
    // Three shards: the replacement copies the count into TXP_SHARDS, and that passes.
    let text = fs::read_to_string(&kustomization).unwrap();
    fs::write(&kustomization, format!("{text}\nreplicas:\n  - name: txp-detector\n    count: 3\n")).unwrap();
    assert_passes(&[&overlay]);
    // Without the replacement TXP_SHARDS stays 2 while there are 3 pods: rejected.
    let text = fs::read_to_string(&kustomization).unwrap();
    let cut = text.find("replacements:").unwrap();
    let end = text.find("\nreplicas:").unwrap();
    fs::write(&kustomization, format!("{}{}", &text[..cut], &text[end..])).unwrap();
    let output = check_manifests(&[&overlay]);
    assert!(!output.status.success(), "TXP_SHARDS != replicas passed");
    assert!(String::from_utf8_lossy(&output.stderr).contains("TXP_SHARDS='2' but replicas=3"));
}

#[test]
fn compose_check_rejects_a_broken_file() {
    let dir = tempdir();
    let text = fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let broken = dir.path().join("docker-compose.yml");
    fs::write(&broken, text.replacen("stop_grace_period:", "stop_grace_periods:", 1)).unwrap();
    let output = check_manifests(&[Path::new("--compose"), &broken]);
    assert!(!output.status.success(), "the broken compose file passed");
    assert!(String::from_utf8_lossy(&output.stderr).contains("stop_grace_periods"));
}
