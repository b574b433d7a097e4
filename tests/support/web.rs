//! A web server in a lab node's namespace, answering with the node's name.

use std::time::Duration;

use super::cluster::Cluster;

/// A web server on port 8080 in node `i`'s namespace: it answers on every address there (the
/// Service's on kube-lb0 too) with the node's name, which the load generator (`load.rs`) counts answers by.
pub struct WebServer(std::process::Child);

impl WebServer {
    pub fn start(c: &Cluster, i: usize) -> WebServer {
        let dir = std::path::PathBuf::from(c.var("CLUSTER_DIR")).join(format!("www-n{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), c.node_name(i)).unwrap();
        let child = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                c.node_var(i, "NS"),
                "python3",
                "-m",
                "http.server",
            ])
            .args(["8080", "--bind", "0.0.0.0", "--directory"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Listening before any request is sent (python starts slowly on a loaded machine:
        // CI once refused 1.7 s of requests to one node before the drain began).
        let listening = || {
            std::process::Command::new("ip")
                .args(["netns", "exec", c.node_var(i, "NS")])
                .args(["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !listening() {
            assert!(
                std::time::Instant::now() < deadline,
                "the web server of node {i} never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        WebServer(child)
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
