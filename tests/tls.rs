//! TLS to PostgreSQL: a server of the test's own that accepts TLS connections only, with a
//! certificate the test makes (openssl). The whole pipeline (upload, consume, detect, the COPY
//! commit path, LISTEN and the shard's advisory lock) runs over `sslmode=verify-full`; a client
//! without TLS is refused, and a certificate signed by another authority is rejected with an
//! error that names the database without its password.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod support {
    pub mod postgres;
}

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use common::*;
use support::postgres::{PgCluster, ServerTls};

/// Runs openssl (the test's certificates are made, never committed).
fn openssl(dir: &Path, args: &[&str]) {
    let out = StdCommand::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is needed to make the test certificates");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// An authority `NAME-ca.crt` and a server certificate for 127.0.0.1 it signed: (server, CA).
fn certificate(dir: &Path, name: &str) -> (ServerTls, PathBuf) {
    let (ca, ca_key) = (format!("{name}-ca.crt"), format!("{name}-ca.key"));
    let (cert, key, csr, ext) =
        (format!("{name}.crt"), format!("{name}.key"), format!("{name}.csr"), format!("{name}.ext"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test authority"),
            "-keyout",
            &ca_key,
            "-out",
            &ca,
        ],
    );
    openssl(
        dir,
        &["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", &key, "-out", &csr],
    );
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &cert,
            "-extfile",
            &ext,
        ],
    );
    (ServerTls { cert: dir.join(cert), key: dir.join(key) }, dir.join(ca))
}

#[test]
fn the_pipeline_runs_on_postgresql_over_verified_tls_and_refuses_what_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, authority) = certificate(dir.path(), "server");
    let pg = PgCluster::start_with_tls(&tls);
    pg.create_database("txp");
    let verified = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url("txp").replacen("postgres@", "postgres:s3cret@", 1),
        authority.display()
    );
    let (source, importance) = dataset(dir.path(), 6_000, 5);
    let source = source.display().to_string();
    let importance = importance.display().to_string();
    let env = |cmd: &mut assert_cmd::Command| {
        cmd.env("DATABASE_URL", &verified);
    };
    let mut upload = txp(dir.path());
    env(&mut upload);
    stdout(
        upload
            .args(["upload", "--source", &source, "--to", "input", "--interval", "0"])
            .args(["--chunk-rows", "1000"]),
    );
    let mut run = txp(dir.path());
    env(&mut run);
    stdout(run.args([
        "run",
        "--until-idle",
        "--shards",
        "2",
        "--output",
        "output",
        "--importance",
        &importance,
    ]));
    assert_output_verified(dir.path(), &source, 1000, &importance, "output");

    // Every connection the server saw was encrypted: it refuses any other (pg_hba).
    let plain = txp(dir.path())
        .args(["status", "--database", &pg.url("txp").replace("/txp", "/txp?sslmode=disable")])
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), Some(2), "{}", String::from_utf8_lossy(&plain.stderr));
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(stderr.contains("no encryption") || stderr.contains("pg_hba"), "{stderr}");

    // A server whose certificate another authority signed is not trusted.
    let (_, other) = certificate(dir.path(), "other");
    let wrong = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url("txp").replacen("postgres@", "postgres:s3cret@", 1),
        other.display()
    );
    let refused = txp(dir.path()).args(["status", "--database", &wrong]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "the password leaked: {stderr}");
}
