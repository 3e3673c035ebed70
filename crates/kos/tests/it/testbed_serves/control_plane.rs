//! The control plane reaches into the pod network: `kubectl logs`, `exec` and `port-forward`
//! to a pod on every worker (API server → kubelet over TLS → the pod), and an admission
//! webhook served by a pod on a worker, which the API server on the master calls through the
//! Service's ClusterIP (kube-proxy on the master, the router's route to the worker's pods).

use super::{Ctx, WORKERS, get_hostname};
use crate::harness::*;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

/// `kubectl port-forward pod/POD :8080`, then `GET /hostname` through it.
fn through_port_forward(ctx: &Ctx, pod: &str) -> String {
    let mut child = Child(
        Command::new(artifact_set().join("bin/kubectl"))
            .env("KUBECONFIG", ctx.c.kubeconfig())
            .args(["--context", &format!("kos-{}", ctx.c.name), "port-forward", "--address", "127.0.0.1", &format!("pod/{pod}"), ":8080"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl port-forward runs"),
    );
    let mut line = String::new();
    // Kept open while the connection lasts: kubectl writes "Handling connection for …" to it,
    // and would die of a closed pipe.
    let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout"));
    stdout.read_line(&mut line).expect("a line from port-forward");
    // `Forwarding from 127.0.0.1:41234 -> 8080`
    let port =
        line.split("127.0.0.1:").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_else(|| panic!("port-forward said {line:?}"));
    let port: u16 = port.parse().unwrap_or_else(|_| panic!("port-forward said {line:?}"));
    let body = get_hostname("127.0.0.1", port, 10).unwrap_or_default();
    drop(stdout);
    body
}

pub(crate) fn check(ctx: &Ctx) {
    for w in WORKERS {
        let pod = ctx.pod_on(w);
        let log = ctx.c.kubectl_ok(&["logs", pod]);
        assert!(log.contains("Started HTTP server on port 8080"), "kubectl logs {pod} (on {w}):\n{log}");
        assert_eq!(ctx.exec(pod, "hostname").as_deref(), Some(pod), "kubectl exec {pod} (on {w})");
        assert_eq!(through_port_forward(ctx, pod), pod, "kubectl port-forward {pod} (on {w})");
    }
    webhook(ctx);
}

/// A validating webhook (agnhost's, denying ConfigMaps that carry
/// `webhook-e2e-test: webhook-disallow`) in a pod on worker-2, with a serving certificate of
/// our own CA, for the ConfigMaps of one namespace.
fn webhook(ctx: &Ctx) {
    let dir = ctx.c.dir.path().join("webhook");
    std::fs::create_dir_all(&dir).expect("folder");
    let openssl = format!(
        "set -e; cd {d}\n\
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=kos-e2e-webhook-ca 2>/dev/null\n\
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout tls.key -out tls.csr -subj /CN=webhook.default.svc 2>/dev/null\n\
         printf 'subjectAltName=DNS:webhook.default.svc\\nextendedKeyUsage=serverAuth\\n' > ext.cnf\n\
         openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -days 1 -extfile ext.cnf 2>/dev/null\n\
         base64 -w0 ca.crt > ca.b64\n",
        d = dir.display()
    );
    let out = Command::new("bash").arg("-c").arg(&openssl).output().expect("openssl runs");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    let (crt, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    ctx.c.kubectl_ok(&[
        "create",
        "secret",
        "tls",
        "webhook-tls",
        &format!("--cert={}", crt.display()),
        &format!("--key={}", key.display()),
    ]);
    let ca = std::fs::read_to_string(dir.join("ca.b64")).expect("ca.b64");
    let agnhost = &ctx.agnhost;
    ctx.apply(
        "webhook",
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: kos-webhook, labels: {{kos-e2e: webhook}}}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {{name: webhook, labels: {{app: webhook}}}}\nspec:\n  nodeName: worker-2\n  \
             containers:\n  - name: webhook\n    image: {agnhost}\n    \
             args: [webhook, --tls-cert-file=/tls/tls.crt, --tls-private-key-file=/tls/tls.key, --port=8443]\n    \
             volumeMounts: [{{name: tls, mountPath: /tls, readOnly: true}}]\n    \
             readinessProbe: {{tcpSocket: {{port: 8443}}, periodSeconds: 2}}\n  \
             volumes: [{{name: tls, secret: {{secretName: webhook-tls}}}}]\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: webhook}}\nspec:\n  selector: {{app: webhook}}\n  \
             ports: [{{port: 443, targetPort: 8443}}]\n---\n\
             apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {{name: kos-e2e-deny}}\nwebhooks:\n\
             - name: deny.kos-e2e.example.org\n  \
               clientConfig: {{service: {{namespace: default, name: webhook, path: /configmaps, port: 443}}, caBundle: {ca}}}\n  \
               rules: [{{operations: [CREATE], apiGroups: [''], apiVersions: [v1], resources: [configmaps]}}]\n  \
               namespaceSelector: {{matchLabels: {{kos-e2e: webhook}}}}\n  \
               failurePolicy: Fail\n  sideEffects: None\n  admissionReviewVersions: [v1]\n  timeoutSeconds: 5\n"
        ),
    );
    pod_ip(&ctx.c, "webhook");
    // The API server calls the webhook for every ConfigMap created in the namespace: the
    // disallowed one is refused with the webhook's reason (retried while the configuration
    // propagates to the API server's informer).
    let denied = wait_for(
        "the API server calls the webhook and it denies",
        60,
        || {
            let _ = ctx.c.kubectl(&["-n", "kos-webhook", "delete", "configmap", "bad", "--ignore-not-found"]);
            let (ok, _, err) =
                ctx.c.kubectl(&["-n", "kos-webhook", "create", "configmap", "bad", "--from-literal=webhook-e2e-test=webhook-disallow"]);
            (!ok && err.contains("denied the request")).then_some(err)
        },
        || ctx.c.kubectl(&["-n", "kube-system", "logs", "kube-apiserver-master-1", "--tail=20"]).1,
    );
    assert!(denied.contains("deny.kos-e2e.example.org"), "the denial names the webhook: {denied}");
    // An allowed ConfigMap passes through the same webhook (failurePolicy: Fail would refuse
    // it if the API server could not reach the pod).
    ctx.c.kubectl_ok(&["-n", "kos-webhook", "create", "configmap", "good", "--from-literal=webhook-e2e-test=fine"]);
    ctx.c.kubectl_ok(&["delete", "validatingwebhookconfiguration", "kos-e2e-deny"]);
}
