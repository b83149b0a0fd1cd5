//! Secrets never leak (#14.4): the compiled bootstrap, signing with a local CA at
//! `--log-level trace` in text and in JSON, never prints the CA's private key nor
//! the node key it generates — not in its log, its summary or an error about a bad
//! key file.

mod node;

use node::Node;

const MODULES: &str = "modules: [hostname, dns, certificates]\n";

/// The base64 lines of a PEM private key (each a recognisable piece of the secret).
fn key_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(str::to_owned)
        .collect()
}

fn assert_no_key(what: &str, text: &str, keys: &[String]) {
    assert!(!text.contains("PRIVATE KEY"), "{what} shows a PEM key");
    for line in keys {
        assert!(!text.contains(line.as_str()), "{what} shows a key line");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_private_key_in_trace_logs_or_the_summary() {
    let node = Node::start(&[("Role", "master")]).await;
    let (ca, ca_key) = node.local_ca();
    let certs = format!(
        "  ca_cert_file: {}\n  ca_key_file: {}\n  validity_days: 30\n",
        ca.display(),
        ca_key.display()
    );
    let config = node.config(&certs, MODULES);
    let mut keys = key_lines(&std::fs::read_to_string(&ca_key).unwrap());
    for format in ["text", "json"] {
        let run = node
            .run(&[
                "-c",
                config.to_str().unwrap(),
                "--log-level",
                "trace",
                "--log-format",
                format,
            ])
            .await;
        assert_eq!(run.code, 0, "{}\n{}", run.summary, run.stderr);
        let node_key = node
            .root()
            .join(format!("etc/ssl/node_certs/{}-key.pem", node.fqdn()));
        keys.extend(key_lines(&std::fs::read_to_string(node_key).unwrap()));
        assert!(run.stderr.to_lowercase().contains("trace"), "trace on");
        assert_no_key(&format!("the {format} log"), &run.stderr, &keys);
        assert_no_key("the summary", &run.summary.to_string(), &keys);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_ca_key_file_is_refused_without_printing_it() {
    let node = Node::start(&[("Role", "master")]).await;
    let (ca, ca_key) = node.local_ca();
    // A key file that is not a key but holds secret-looking text.
    let secret = "c2VjcmV0LWNhLWtleS1tYXRlcmlhbC03ZjNhOWMxZQ==";
    std::fs::write(
        &ca_key,
        format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    let certs = format!(
        "  ca_cert_file: {}\n  ca_key_file: {}\n",
        ca.display(),
        ca_key.display()
    );
    let config = node.config(&certs, MODULES);
    let run = node
        .run(&["-c", config.to_str().unwrap(), "--log-level", "trace"])
        .await;
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert_no_key(
        "the error",
        &format!("{}{}", run.stderr, run.summary),
        &[secret.to_owned()],
    );
}
