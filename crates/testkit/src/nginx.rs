//! A real nginx (Debian's, on `PATH`) for tests: the anchors' micro-cache
//! in front of an origin on loopback, its files in a directory the test
//! owns, started in the foreground and stopped by its PID.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An nginx master the test started, stopped (SIGQUIT, then waited for)
/// when dropped.
pub struct RealNginx {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its prefix: `nginx.conf`, the pid file and the logs are here.
    pub dir: PathBuf,
}

impl Drop for RealNginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl RealNginx {
    /// Its configuration file.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("nginx.conf")
    }

    /// `nginx -t` on its configuration.
    pub fn test_config(&self) -> std::process::Output {
        Command::new("nginx")
            .args(["-t", "-p"])
            .arg(format!("{}/", self.dir.display()))
            .arg("-c")
            .arg(self.conf())
            .output()
            .expect("nginx -t runs")
    }
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

/// The server-level lines of the anchors' micro-cache, less ignoring
/// `Set-Cookie` (the issue-18 case): 60 s for a 200, the lock, the origin's
/// freshness headers ignored, cookies hidden.
pub const SERVER: &str = "        proxy_cache_valid 200 60s;\n        proxy_cache_lock on;\n        proxy_ignore_headers Cache-Control Expires X-Accel-Expires;\n        proxy_hide_header Set-Cookie;";

/// The micro-cache of the anchors (`../shared/anchors/nginx-microcache.conf`)
/// on `port` in front of `origin` (`127.0.0.1:3000`), its cache in `cache`,
/// with `http` lines in its `http` block, `server` lines ([`SERVER`], or a
/// broken variant) in its `server`, and `location` lines in its
/// `location /`, which proxies, caches and says `X-Cache-Status`.
pub fn micro_cache(
    cache: &Path,
    port: u16,
    origin: &str,
    http: &str,
    server: &str,
    location: &str,
) -> String {
    format!(
        "worker_processes 1;\ndaemon off;\nmaster_process on;\npid nginx.pid;\nerror_log error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_body_temp_path tmp/client_body;\n    proxy_temp_path tmp/proxy;\n\
         \x20   fastcgi_temp_path tmp/fastcgi;\n    uwsgi_temp_path tmp/uwsgi;\n    scgi_temp_path tmp/scgi;\n\
         \x20   proxy_cache_path {cache} levels=1:2 keys_zone=micro:1m inactive=90s use_temp_path=off;\n\
         {http}\n\
         \x20   upstream origin {{ server {origin}; keepalive 16; }}\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port};\n\
         {server}\n\
         \x20       location / {{\n\
         \x20           proxy_pass http://origin;\n\
         \x20           proxy_http_version 1.1;\n\
         \x20           proxy_set_header Connection \"\";\n\
         \x20           proxy_cache micro;\n\
         \x20           proxy_cache_key \"$uri$is_args$args\";\n\
         \x20           add_header X-Cache-Status $upstream_cache_status always;\n\
         {location}\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n",
        cache = cache.display(),
    )
}

/// Starts nginx on the configuration already written at `dir/nginx.conf`
/// (prefix `dir`) and waits until it accepts connections on `port`.
///
/// # Panics
/// When nginx cannot start or does not listen within 10 s (its error log
/// is in the message).
pub async fn start_nginx(dir: &Path, port: u16) -> RealNginx {
    std::fs::create_dir_all(dir.join("tmp")).expect("nginx's temp dir");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(format!("{}/", dir.display()))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts (apt-get install nginx)");
    let n = RealNginx {
        child,
        url: format!("http://127.0.0.1:{port}"),
        dir: dir.to_path_buf(),
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "nginx did not listen on {port}: {}",
        std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
    );
}
