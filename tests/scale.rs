//! Scale-out: three imgedge replicas behind nginx with consistent hashing on the object path, sharing
//! one S3 result store (the in-process s3s server). Every variant is transformed once across the
//! cluster and every original fetched once, counted on the replicas themselves.

use crate::util::servers::*;
use crate::util::*;
use std::time::Duration;

/// nginx in front of `backends`, hashing on `$uri` (the object path without the query), so all variants
/// of one original meet on one replica.
struct Nginx {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nginx(backends: &[std::net::SocketAddr]) -> Nginx {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("nginx is needed for the scale-out test: .ci/deps installs nginx-light");
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let servers: String = backends.iter().map(|a| format!("server {a};\n")).collect();
    let conf = format!(
        "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d};\n\
           fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
           upstream imgedge {{ hash $uri consistent; {servers} }}\n\
           server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://imgedge; proxy_set_header Host $host; }} }} }}\n",
        d = dir.path().display()
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = std::process::Command::new(nginx).arg("-c").arg(&path).spawn().unwrap();
    Nginx { child, base: format!("http://127.0.0.1:{port}"), _dir: dir }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_behind_nginx_transform_each_variant_once() {
    let s3 = start_s3().await;
    let c = s3_client(&s3.endpoint).await;
    c.create_bucket().bucket("results").send().await.unwrap();
    let endpoint = s3.endpoint.clone();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let ep = endpoint.clone();
        replicas.push(
            start_with(&corpus(), move |cfg| {
                cfg.cache.store.spec = format!("s3://results/v?endpoint={ep}&region=us-east-1&path_style=true");
                cfg.cache.store.options.access_key_id = Some(AK.into());
                cfg.cache.store.options.secret_access_key = Some(SK.into());
            })
            .await,
        );
    }
    let lb = start_nginx(&replicas.iter().map(|r| r.addr).collect::<Vec<_>>());
    for _ in 0..100 {
        if client().get(format!("{}/healthz", lb.base)).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let originals = [
        "photos/jolla_3264x2448.jpg",
        "photos/nikon-p6000_640x480_gps.jpg",
        "photos/hato_3082x2048.jpg",
        "webp/gallery4_1024x772_lossy.webp",
    ];
    let widths = [120, 240, 360];
    // each variant asked for three times, concurrently, through the load balancer
    let mut tasks = Vec::new();
    for o in originals {
        for w in widths {
            for _ in 0..3 {
                let url = format!("{}/{o}?w={w}&fm=webp", lb.base);
                tasks.push(tokio::spawn(async move { client().get(url).send().await.unwrap().status().as_u16() }));
            }
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let transforms: u64 = replicas.iter().map(|r| r.state.stats.transforms.get()).sum();
    let fetches: u64 = replicas.iter().map(|r| r.state.stats.origin_fetches.get()).sum();
    let busy = replicas.iter().filter(|r| r.state.stats.transforms.get() > 0).count();
    assert_eq!(transforms, (originals.len() * widths.len()) as u64, "each variant transformed once in the cluster");
    assert_eq!(fetches, originals.len() as u64, "each original fetched once in the cluster");
    assert!(busy >= 2, "the hash spreads objects over replicas ({busy} did work)");
}
